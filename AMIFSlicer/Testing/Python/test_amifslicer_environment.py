"""The dependency installer (with stand-in dialogs); devices and memory planning are the core runner's (tests/test_runner.py)."""
from __future__ import annotations

from pathlib import Path

import numpy
import pytest
import SimpleITK
import torch

from AMIFSlicerLib import dependencies
from AMIFSlicerLib.dependencies import DependencyInstaller, Requirement
from AMIFSlicerLib.errors import DependencyError

GB = 2**30


def fakePackage(site: Path, requirement: Requirement, version: str) -> None:
    """Install a minimal distribution (module + dist-info) into ``site``, as pip would."""
    (site / requirement.importName).mkdir(parents=True)
    (site / requirement.importName / "__init__.py").write_text("")
    distInfo = site / f"{requirement.distribution.replace('-', '_')}-{version}.dist-info"
    distInfo.mkdir()
    (distInfo / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {requirement.distribution}\nVersion: {version}\n")


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """An empty folder on sys.path where the stand-in installers put packages."""
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


FAKE_TORCH = Requirement("amif-test-torch", "amif_test_torch", "2.4", "runs the network")
FAKE_SMALL = Requirement("amif-test-wavelets", "amif_test_wavelets", "0.1.9", "wavelet transforms")


def test_missing_packages_are_installed_after_consent_and_never_replace_slicers_own(site):
    questions, pipCalls, torchCalls = [], [], []

    def pipInstall(arguments: list[str]) -> None:
        constraints = Path(arguments[arguments.index("-c") + 1]).read_text().split()
        pipCalls.append((arguments[:arguments.index("-c")], constraints))
        fakePackage(site, FAKE_SMALL, "0.2.0")

    def torchInstaller(specifier: str) -> bool:
        torchCalls.append(specifier)
        fakePackage(site, FAKE_TORCH, "2.5.1+cu121")
        return True

    installer = DependencyInstaller(lambda question: questions.append(question) or True, pipInstall, torchInstaller,
                                    testing=False, requirements=(FAKE_TORCH, FAKE_SMALL), torch=FAKE_TORCH)
    summary = installer.ensure("cpu")

    assert summary.startswith(f"PyTorch {torch.__version__} runs on cpu")
    assert "PyTorch (amif-test-torch>=2.4)" in questions[0] and "PyTorch extension" in questions[0]
    assert "amif-test-wavelets>=0.1.9: wavelet transforms" in questions[1]
    assert torchCalls == [">=2.4"]
    assert pipCalls == [(["amif-test-wavelets>=0.1.9"],
                         [f"numpy=={numpy.__version__}", f"SimpleITK=={SimpleITK.Version.VersionString()}",
                          "amif-test-torch==2.5.1+cu121"])]
    assert dependencies.missingRequirements((FAKE_TORCH, FAKE_SMALL)) == []


def test_without_the_pytorch_extension_torch_comes_from_pip_constrained(site):
    pipCalls = []

    def pipInstall(arguments: list[str]) -> None:
        pipCalls.append((arguments[0], Path(arguments[arguments.index("-c") + 1]).read_text().split()))
        fakePackage(site, FAKE_TORCH, "2.6.0")

    DependencyInstaller(lambda question: True, pipInstall, None, testing=False, requirements=(FAKE_TORCH,),
                        torch=FAKE_TORCH).ensure("cpu")
    assert pipCalls == [("amif-test-torch>=2.4",
                         [f"numpy=={numpy.__version__}", f"SimpleITK=={SimpleITK.Version.VersionString()}"])]


def test_declining_or_testing_mode_installs_nothing(site):
    def refuse(arguments):
        raise AssertionError("nothing may be installed")

    with pytest.raises(DependencyError, match="cannot run without PyTorch; its installation was cancelled"):
        DependencyInstaller(lambda question: False, refuse, refuse, testing=False,
                            requirements=(FAKE_TORCH, FAKE_SMALL), torch=FAKE_TORCH).ensure("cpu")
    with pytest.raises(DependencyError, match="Testing mode: AMIF does not install Python packages. Missing: "
                                              "amif-test-torch>=2.4, amif-test-wavelets>=0.1.9"):
        DependencyInstaller(refuse, refuse, refuse, testing=True, requirements=(FAKE_TORCH, FAKE_SMALL),
                            torch=FAKE_TORCH).ensure("cpu")
    fakePackage(site, FAKE_SMALL, "0.1.2")  # installed, but too old
    assert dependencies.missingRequirements((FAKE_SMALL,)) == [FAKE_SMALL]


def test_amif_requirements_are_satisfied_here_and_torch_runs():
    assert dependencies.missingRequirements() == []
    assert DependencyInstaller(None, None, None, testing=True).ensure("cpu").endswith("runs on cpu.")
    assert dependencies.pyTorchUtilsInstaller() is None  # no PyTorch extension outside Slicer
    assert dependencies.versionTuple("2.5.1+cu121") == (2, 5, 1)
    assert dependencies.versionTuple("41.0.0rc1") == (41, 0, 0)
    assert dependencies.versionTuple("0.1.9") < dependencies.versionTuple("0.1.10")


def test_a_chosen_pytorch_build_comes_from_pytorchs_index_without_torchvision(site):
    pipCalls, statuses = [], []

    def pipInstall(arguments: list[str]) -> None:
        pipCalls.append(arguments[:arguments.index("-c")])
        fakePackage(site, FAKE_TORCH, "2.9.0+cu128")

    def extension(specifier: str) -> bool:
        raise AssertionError("an explicit build bypasses the PyTorch extension's own choice")

    DependencyInstaller(lambda question: True, pipInstall, extension, testing=False, requirements=(FAKE_TORCH,),
                        torch=FAKE_TORCH, backend="cu128", freeDiskBytes=lambda: 50 * GB,
                        status=statuses.append).ensure("cpu")
    assert pipCalls == [["amif-test-torch>=2.4", "--index-url", "https://download.pytorch.org/whl/cu128",
                         "--extra-index-url", "https://pypi.org/simple"]]
    assert not any("torchvision" in argument for argument in pipCalls[0])
    assert statuses and "Installing PyTorch" in statuses[0] and "CUDA 12.8" in statuses[0]
    with pytest.raises(ValueError, match="unknown PyTorch build 'cu99'"):
        DependencyInstaller(lambda question: True, pipInstall, None, testing=False, backend="cu99")


def test_too_little_disk_space_stops_before_asking_or_downloading(site):
    questions = []

    def refuse(arguments):
        raise AssertionError("nothing may be installed")

    installer = DependencyInstaller(lambda question: questions.append(question) or True, refuse, None,
                                    testing=False, requirements=(FAKE_TORCH,), torch=FAKE_TORCH,
                                    freeDiskBytes=lambda: int(1.5 * GB))
    with pytest.raises(DependencyError, match=r"needs about 6 GB of free disk space .* only 1\.5 GB is free"):
        installer.ensure("cpu")
    assert questions == []
