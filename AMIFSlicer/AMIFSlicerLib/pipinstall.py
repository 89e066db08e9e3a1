"""Running ``pip install`` with its progress shown in the panel, not only in the Python console.

``slicer.util.pip_install`` logs pip's output line by line to the Python
console and gives the caller nothing while it runs. A PyTorch download takes
minutes, so :func:`runPip` starts the same pip (Slicer's ``PythonSlicer -m pip
install``, through ``slicer.util.launchConsoleProcess``) and turns each output
line into a short status for the panel, with the download's percentage where
pip reports one (``--progress-bar raw``, pip 24.1 and later). Every line still
goes to the log.
"""
from __future__ import annotations

import importlib.metadata
import logging
import re
import shutil
import sys
from collections import deque
from typing import Callable, Iterable, Protocol

from AMIFSlicerLib.dependencies import versionTuple
from AMIFSlicerLib.errors import DependencyError
from AMIFSlicerLib.i18n import tr as _

RAW_PROGRESS_PIP = (24, 1)  # the first pip with "--progress-bar raw" ("Progress <bytes> of <total>" lines)
TAIL_LINES = 12  # pip's last lines quoted when it fails

_PROGRESS = re.compile(r"^Progress (\d+) of (\d+)$")
_DOWNLOADING = re.compile(r"^Downloading (\S+?)(?:\s+\(([^)]*)\))?$")
_COLLECTING = re.compile(r"^Collecting (\S+)")
_INSTALLING = re.compile(r"^Installing collected packages: (.+)$")
_INSTALLED = re.compile(r"^Successfully installed (.+)$")


class PipProcess(Protocol):
    """What :func:`runPip` needs of a started process (a ``subprocess.Popen`` with text stdout)."""

    stdout: Iterable[str]

    def wait(self) -> int: ...


def pipSupportsRawProgress(pipVersion: str | None) -> bool:
    """True when this pip prints machine-readable download progress (``--progress-bar raw``)."""
    return pipVersion is not None and versionTuple(pipVersion) >= RAW_PROGRESS_PIP


def pipCommand(python: str, arguments: list[str], pipVersion: str | None) -> list[str]:
    """The command line ``python -m pip install <arguments>`` with the progress bar the panel can read."""
    progress = "raw" if pipSupportsRawProgress(pipVersion) else "off"
    return [python, "-m", "pip", "install", "--progress-bar", progress, *arguments]


class PipStatus:
    """Turns pip's output lines into one-line statuses for the panel (None: the line changes nothing)."""

    def __init__(self) -> None:
        self.downloading: str | None = None

    def __call__(self, line: str) -> str | None:
        """The panel's status after pip printed ``line`` (one line of its output, without the newline)."""
        line = line.strip()
        if match := _PROGRESS.match(line):
            done, total = int(match.group(1)), int(match.group(2))
            if total <= 0 or self.downloading is None:
                return None
            return _("Downloading {name}: {percent:.0f} % of {total:.0f} MB").format(
                name=self.downloading, percent=100 * done / total, total=total / 1e6)
        if match := _DOWNLOADING.match(line):
            self.downloading = match.group(1).rsplit("/", 1)[-1]
            size = match.group(2)
            return (_("Downloading {name} ({size})").format(name=self.downloading, size=size) if size
                    else _("Downloading {name}").format(name=self.downloading))
        if match := _COLLECTING.match(line):
            return _("Looking for {requirement}").format(requirement=match.group(1))
        if match := _INSTALLING.match(line):
            return _("Installing {packages}; this can take a minute").format(packages=match.group(1))
        if match := _INSTALLED.match(line):
            return _("Installed {packages}").format(packages=match.group(1))
        return None


def slicerPython() -> str:
    """Slicer's own Python interpreter (``PythonSlicer``, on the PATH inside Slicer), else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def installedPipVersion() -> str | None:
    """The version of the pip that Slicer's Python would run, or None when it has none."""
    try:
        return importlib.metadata.version("pip")
    except importlib.metadata.PackageNotFoundError:
        return None


def runPip(arguments: list[str], launch: Callable[[list[str]], PipProcess], status: Callable[[str], None],
           python: str | None = None, pipVersion: str | None = None,
           log: Callable[[str], None] = logging.info) -> None:
    """Run ``pip install <arguments>``, calling ``status(text)`` whenever pip's progress changes.

    ``launch(commandLine)`` starts the process with stdout (and stderr) as text
    lines: ``slicer.util.launchConsoleProcess`` in Slicer. ``python`` and
    ``pipVersion`` default to Slicer's. Every line goes to ``log``. Raises
    :class:`DependencyError`, quoting pip's last lines, when pip fails.
    """
    command = pipCommand(python or slicerPython(), arguments,
                         pipVersion if pipVersion is not None else installedPipVersion())
    log(" ".join(command))
    process = launch(command)
    describe, tail = PipStatus(), deque(maxlen=TAIL_LINES)
    for line in process.stdout:
        line = line.rstrip("\r\n")
        if not _PROGRESS.match(line.strip()):
            log(line)
            tail.append(line)
        text = describe(line)
        if text is not None:
            status(text)
    returnCode = process.wait()
    if returnCode != 0:
        raise DependencyError(_("pip could not install {packages} (exit code {code}). Its last lines:\n{tail}").format(
            packages=" ".join(a for a in arguments if not a.startswith("-") and "/" not in a and "\\" not in a),
            code=returnCode, tail="\n".join(tail)))
