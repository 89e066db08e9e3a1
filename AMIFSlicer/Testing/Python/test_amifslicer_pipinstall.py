"""pip runs with its progress in the panel: real pip on a local wheel, and pip's own progress lines."""
from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from AMIFSlicerLib.errors import DependencyError
from AMIFSlicerLib.pipinstall import PipStatus, installedPipVersion, pipCommand, pipSupportsRawProgress, runPip


def buildWheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel (one module, valid RECORD hashes) in ``folder``."""
    files = {
        f"{name}/__init__.py": b"VALUE = 42\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: amif-test\nRoot-Is-Purelib: true\n"
                                              b"Tag: py3-none-any\n",
    }
    record = f"{name}-{version}.dist-info/RECORD"
    lines = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{path},sha256={digest},{len(data)}")
    files[record] = ("\n".join([*lines, f"{record},,"]) + "\n").encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def launch(command: list[str]) -> subprocess.Popen:
    """What ``slicer.util.launchConsoleProcess`` gives: stdout and stderr merged, as text lines."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_pip_installs_with_its_steps_shown_and_every_line_logged(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    wheels.mkdir()
    buildWheel(wheels, "amif_pip_probe", "1.0")
    statuses, logged = [], []
    runPip(["amif_pip_probe==1.0", "--no-index", "--find-links", str(wheels), "--target", str(target)], launch,
           statuses.append, python=sys.executable, log=logged.append)
    assert (target / "amif_pip_probe" / "__init__.py").read_text() == "VALUE = 42\n"
    assert statuses[-2] == "Installing amif_pip_probe; this can take a minute"
    assert statuses[-1].startswith("Installed amif_pip_probe-1.0")
    assert any(line.startswith("Successfully installed amif_pip_probe-1.0") for line in logged)
    bar = "raw" if pipSupportsRawProgress(installedPipVersion()) else "off"  # this venv's pip decides
    assert logged[0].split()[1:6] == ["-m", "pip", "install", "--progress-bar", bar]


def test_a_failing_pip_raises_with_its_last_lines(tmp_path):
    with pytest.raises(DependencyError, match=r"(?s)could not install amif_no_such_package.*exit code [1-9].*"
                                              r"No matching distribution"):
        runPip(["amif_no_such_package", "--no-index", "--find-links", str(tmp_path)], launch, lambda text: None,
               python=sys.executable, log=lambda line: None)


def test_pips_download_lines_become_a_percentage():
    describe = PipStatus()
    assert describe("Progress 0 of 100") is None  # no download named yet
    assert describe("Collecting torch>=2.4") == "Looking for torch>=2.4"
    assert describe("  Downloading https://download.pytorch.org/whl/cpu/torch-2.5.1%2Bcpu-cp312-cp312-linux_x86_64"
                    ".whl (174.7 MB)") == "Downloading torch-2.5.1%2Bcpu-cp312-cp312-linux_x86_64.whl (174.7 MB)"
    assert describe("Progress 87350000 of 174700000") == ("Downloading torch-2.5.1%2Bcpu-cp312-cp312-linux_x86_64.whl:"
                                                          " 50 % of 175 MB")
    assert describe("Progress 0 of 0") is None  # pip did not know the size
    assert describe("Requirement already satisfied: numpy in ./site-packages (2.1.0)") is None
    assert describe("Installing collected packages: torch") == "Installing torch; this can take a minute"


@pytest.mark.parametrize("version, bar", [("25.0.1", "raw"), ("24.1", "raw"), ("24.0", "off"), (None, "off")])
def test_the_raw_progress_bar_is_asked_of_pips_that_have_it(version, bar):
    assert pipCommand("py", ["torch>=2.4"], version) == ["py", "-m", "pip", "install", "--progress-bar", bar,
                                                          "torch>=2.4"]
