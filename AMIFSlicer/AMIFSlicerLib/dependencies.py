"""Installing the Python packages AMIF needs into Slicer, with the user's consent.

Slicer bundles numpy, SimpleITK and VTK but not PyTorch. On first use the
module asks before installing PyTorch (through the PyTorch extension's
``PyTorchUtils`` when present, which picks the right CUDA build, else with
pip), then asks before installing the small packages. Every pip call is
constrained to the installed numpy and SimpleITK (and torch, once present),
so pip can never replace Slicer's own builds. Nothing is installed at import
time or in testing mode; after installing, PyTorch must run a small tensor
operation on the chosen device.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import re
import shutil
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from AMIFSlicerLib.errors import DependencyError
from AMIFSlicerLib.i18n import tr as _

PROTECTED_DISTRIBUTIONS = ("numpy", "SimpleITK")
# PyTorch builds the panel offers: "auto" lets the PyTorch extension pick (else pip's default), the others
# come from PyTorch's own index; cu128 is the first build with kernels for RTX 50xx (Blackwell) GPUs.
TORCH_BACKENDS = {"auto": "Automatic", "cpu": "CPU only", "cu126": "CUDA 12.6", "cu128": "CUDA 12.8 (RTX 50xx)"}
TORCH_INDEX = "https://download.pytorch.org/whl/{backend}"
# Free space a PyTorch install needs (download, unpacked wheel and pip's cache): CUDA builds are several GB.
TORCH_DISK_BYTES = {"cpu": 2 * 2**30, "auto": 6 * 2**30, "cu126": 6 * 2**30, "cu128": 6 * 2**30}


@dataclass(frozen=True)
class Requirement:
    """A package AMIF imports: pip name, import name, minimum version and what it is for."""

    distribution: str
    importName: str
    minimumVersion: str
    purpose: str

    @property
    def specifier(self) -> str:
        """The pip requirement, e.g. ``ptwt>=0.1.9``."""
        return f"{self.distribution}>={self.minimumVersion}"


TORCH = Requirement("torch", "torch", "2.4", "runs the AMIF network")
SMALL_REQUIREMENTS = (
    Requirement("ptwt", "ptwt", "0.1.9", "wavelet transforms"),
    Requirement("cryptography", "cryptography", "41", "passphrase-protected key files"),
    Requirement("pillow", "PIL", "10.1", "drawing the identifier text"),
)
REQUIREMENTS = (TORCH, *SMALL_REQUIREMENTS)


def versionTuple(version: str) -> tuple[int, ...]:
    """Leading numeric release parts of a version: "2.5.1+cu121" -> (2, 5, 1), "41.0.0rc1" -> (41, 0, 0)."""
    parts = []
    for piece in version.split("+")[0].split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
        if match.end() < len(piece):
            break
    return tuple(parts)


def installedVersion(distribution: str) -> str | None:
    """Installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def isSatisfied(requirement: Requirement) -> bool:
    """True when the package imports and is at least the minimum version."""
    version = installedVersion(requirement.distribution)
    if version is None or importlib.util.find_spec(requirement.importName) is None:
        return False
    return versionTuple(version) >= versionTuple(requirement.minimumVersion)


def missingRequirements(requirements: tuple[Requirement, ...] = REQUIREMENTS) -> list[Requirement]:
    """The requirements not installed, or installed in a version that is too old."""
    return [r for r in requirements if not isSatisfied(r)]


def writeConstraints(directory: Path, distributions: tuple[str, ...]) -> Path:
    """Write a pip constraints file pinning each installed distribution of ``distributions`` to its version."""
    lines = [f"{name}=={version}" for name in distributions if (version := installedVersion(name)) is not None]
    path = Path(directory) / "amif-constraints.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sitePackagesFreeBytes() -> int:
    """Free bytes on the disk that holds this Python's site-packages (where PyTorch would go)."""
    return shutil.disk_usage(sysconfig.get_paths()["purelib"]).free


def pyTorchUtilsInstaller() -> Callable[[str], bool] | None:
    """An installer using the PyTorch extension's ``PyTorchUtils`` (right CUDA build), or None without it.

    The returned function takes a version specifier such as ">=2.4" and
    returns whether torch got installed.
    """
    if importlib.util.find_spec("PyTorchUtils") is None:
        return None

    def install(versionSpecifier: str) -> bool:
        import PyTorchUtils

        torchLogic = PyTorchUtils.PyTorchUtilsLogic()
        return torchLogic.installTorch(askConfirmation=False, torchVersionRequirement=versionSpecifier) is not None

    return install


def verifyTorch(device: str) -> str:
    """Import torch and run a small tensor operation on ``device``; return a one-line summary.

    Raises :class:`DependencyError` when it cannot run there.
    """
    try:
        import torch

        from amif_core.runtime.runner import resolve

        resolved = resolve(device)
        value = (torch.ones(2, 2, device=resolved) @ torch.ones(2, 2, device=resolved)).sum().item()
    except Exception as error:
        raise DependencyError(_("PyTorch is installed but could not run on the {device} device: {error}. Choose CPU "
                                "as the device, or reinstall PyTorch with the PyTorch Utils module.").format(
            device=device, error=error)) from error
    if value != 8.0:
        raise DependencyError(_("PyTorch gave a wrong result on {device} ({value} instead of 8); choose CPU.").format(
            device=resolved, value=value))
    return _("PyTorch {version} runs on {device}.").format(version=torch.__version__, device=resolved)


class WorkerTorchCheck:
    """:func:`verifyTorch`'s check done by the worker process (``check(device)``:
    :meth:`AMIFSlicerLib.worker.WorkerEngine.check`), so torch is never imported in Slicer; it remembers the
    devices that passed (a check starts torch, which takes seconds) and the devices the worker listed."""

    def __init__(self, check: Callable[[str], dict]) -> None:
        self.check = check
        self.passed: dict[str, str] = {}
        self.devices: list[list[str]] = []

    def __call__(self, device: str) -> str:
        """The summary for ``device`` (checked once); :class:`DependencyError` when PyTorch cannot run there."""
        if device not in self.passed:
            try:
                result = self.check(device)
            except Exception as error:
                raise DependencyError(_("PyTorch is installed but could not run on the {device} device: {error}. "
                                        "Choose CPU as the device, or reinstall PyTorch with the PyTorch Utils "
                                        "module.").format(device=device, error=error)) from error
            self.devices = result["devices"]
            self.passed[device] = _("PyTorch {version} runs on {device}.").format(version=result["torch"],
                                                                                 device=result["device"])
        return self.passed[device]


class DependencyInstaller:
    """Checks and installs AMIF's packages; the caller supplies the dialogs and the installers.

    ``confirm(question) -> bool`` asks the user (an OK/Cancel dialog in
    Slicer); ``pipInstall(arguments)`` runs ``pip install`` with a list of
    arguments (:func:`AMIFSlicerLib.pipinstall.runPip`, which shows pip's progress); ``torchInstaller(specifier) ->
    bool`` installs PyTorch the PyTorch extension's way, or is None to use
    pip; ``testing`` (Slicer's testing mode) forbids installing.
    ``requirements`` and ``torch`` (the entry of ``requirements`` installed
    the PyTorch way) default to AMIF's own. ``backend`` (a key of
    :data:`TORCH_BACKENDS`): "auto" uses ``torchInstaller`` when there is one,
    any other installs only torch (no torchvision) from PyTorch's index for
    that build. ``freeDiskBytes()`` is checked against
    :data:`TORCH_DISK_BYTES` before PyTorch is downloaded. ``status(text)``
    tells the panel what is going on. ``verify(device)`` checks that PyTorch
    runs there and returns a one-line summary (default :func:`verifyTorch`, in
    this process; the panel's :class:`WorkerTorchCheck` runs it in the worker).
    """

    def __init__(self, confirm: Callable[[str], bool], pipInstall: Callable[[list[str]], None],
                 torchInstaller: Callable[[str], bool] | None, testing: bool,
                 log: Callable[[str], None] = logging.info, requirements: tuple[Requirement, ...] = REQUIREMENTS,
                 torch: Requirement = TORCH, backend: str = "auto",
                 freeDiskBytes: Callable[[], int] = sitePackagesFreeBytes,
                 status: Callable[[str], None] = lambda text: None,
                 verify: Callable[[str], str] = verifyTorch) -> None:
        if backend not in TORCH_BACKENDS:
            raise ValueError(f"unknown PyTorch build {backend!r}; choose one of {', '.join(TORCH_BACKENDS)}")
        self.backend = backend
        self.verify = verify
        self.freeDiskBytes = freeDiskBytes
        self.status = status
        self.confirm = confirm
        self.pipInstall = pipInstall
        self.torchInstaller = torchInstaller
        self.testing = testing
        self.log = log
        self.requirements = requirements
        self.torch = torch

    def ensure(self, device: str) -> str:
        """Make sure every requirement is installed (asking first) and PyTorch runs on ``device``.

        Returns ``verify``'s summary. Raises :class:`DependencyError`
        when the user declines, an install fails, or in testing mode.
        """
        missing = missingRequirements(self.requirements)
        if missing and self.testing:
            raise DependencyError(_("Testing mode: AMIF does not install Python packages. Missing: {missing}. "
                                    "Install them before running the tests.").format(
                missing=", ".join(r.specifier for r in missing)))
        if self.torch in missing:
            self._installTorch()
        small = [r for r in missing if r != self.torch]
        if small:
            self._installSmall(small)
        if missing:
            importlib.invalidate_caches()
            stillMissing = missingRequirements(self.requirements)
            if stillMissing:
                raise DependencyError(_("Installing {packages} did not succeed; see the Python console for pip's "
                                        "messages. Restart Slicer and try again.").format(
                    packages=", ".join(r.specifier for r in stillMissing)))
        return self.verify(device)

    def _installTorch(self) -> None:
        viaExtension = self.torchInstaller is not None and self.backend == "auto"
        if viaExtension:
            how = _("with the PyTorch extension (it picks the build for your GPU)")
        elif self.backend == "auto":
            how = _("with pip (its default build)")
        else:
            how = _("with pip, the {build} build").format(build=TORCH_BACKENDS[self.backend])
        needed, free = TORCH_DISK_BYTES[self.backend], self.freeDiskBytes()
        if free < needed:
            raise DependencyError(_("Installing PyTorch needs about {needed:.0f} GB of free disk space where Slicer "
                                    "keeps its Python packages, but only {free:.1f} GB is free. Free some space (or "
                                    "choose the CPU-only build under Advanced) and try again.").format(
                needed=needed / 2**30, free=free / 2**30))
        if not self.confirm(_("AMIF needs PyTorch ({torch}) to run its network, and it is not installed in this "
                              "Slicer.\n\nInstall it now {how}? This downloads about 1 to 3 GB and can take several "
                              "minutes.").format(torch=self.torch.specifier, how=how)):
            raise DependencyError(_("AMIF cannot run without PyTorch; its installation was cancelled. Click the "
                                    "button again to be asked again."))
        self.status(_("Installing PyTorch {how}; this can take several minutes...").format(how=how))
        self.log(f"Installing {self.torch.specifier} {how}...")
        if viaExtension:
            if not self.torchInstaller(f">={self.torch.minimumVersion}"):
                raise DependencyError(_("The PyTorch extension did not install PyTorch; see the Python console."))
            return
        index = [] if self.backend == "auto" else ["--index-url", TORCH_INDEX.format(backend=self.backend),
                                                   "--extra-index-url", "https://pypi.org/simple"]
        with tempfile.TemporaryDirectory() as directory:
            constraints = writeConstraints(Path(directory), PROTECTED_DISTRIBUTIONS)
            self.pipInstall([self.torch.specifier, *index, "-c", str(constraints)])

    def _installSmall(self, requirements: list[Requirement]) -> None:
        listed = "\n".join(f"  - {r.specifier}: {r.purpose}" for r in requirements)
        if not self.confirm(_("AMIF needs these Python packages:\n{listed}\n\nInstall them now with pip?").format(
                listed=listed)):
            raise DependencyError(_("AMIF cannot run without {packages}; the installation was cancelled. Click the "
                                    "button again to be asked again.").format(
                packages=", ".join(r.distribution for r in requirements)))
        self.log(f"Installing {', '.join(r.specifier for r in requirements)}...")
        with tempfile.TemporaryDirectory() as directory:
            constraints = writeConstraints(Path(directory), (*PROTECTED_DISTRIBUTIONS, self.torch.distribution))
            self.pipInstall([*(r.specifier for r in requirements), "-c", str(constraints)])
