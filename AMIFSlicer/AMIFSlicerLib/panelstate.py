"""Decisions the AMIF panel makes about its own state, kept Qt-free so they are tested headless."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import slicer

from amif_core.runtime import runner  # torch-free until a run
from amif_core.transforms.colour import table_choices  # numpy only
from AMIFSlicerLib import readiness
from AMIFSlicerLib.coremessages import coreMessage
from AMIFSlicerLib.i18n import tr as _


def deviceSelection(saved: str, available: list[str], torchInstalled: bool) -> tuple[str, str | None]:
    """The device to select for a saved choice: ``(device id, message for the panel or None)``.

    ``saved``: the parameter node's device (perhaps saved with a scene on
    another computer); ``available``: the device ids of the list. A device
    that is not in the list is replaced by automatic, in the parameter node
    too, so a saved GPU can never block Protect; the message says why.
    """
    if saved in available:
        return saved, None
    if not torchInstalled:
        return runner.AUTO, _("Device '{device}' was saved with this scene; GPUs are listed once PyTorch is "
                              "installed. Using automatic.").format(device=saved)
    return runner.AUTO, _("Device '{device}' is not available on this computer; using automatic.").format(device=saved)


def dependencyStatus(summary: str | None = None) -> str:
    """The dependency line of the panel: ``summary`` of the last check, or what is known without importing torch
    (torch is imported only in the worker process; a broken install shows when the worker's check fails)."""
    if summary:
        return summary
    if not runner.torch_installed():
        return _("PyTorch is not installed yet: it is installed (after asking) on the first Protect or Unlock, and "
                 "GPUs appear in the Device list then.")
    return ""


def deviceItems(reported: list[list[str]] | None) -> list[tuple[str, str]]:
    """The Device list as (label, device id): what the worker's check ``reported`` (its "devices"), else automatic
    and the CPU, which need no look at the hardware (the panel never imports torch to list GPUs)."""
    if reported:
        return [(label, deviceId) for label, deviceId in reported]
    return [(option.label, option.device_id) for option in runner.available_devices(probe=False)]


def passphraseProblem(passphrase: str, confirmation: str) -> str | None:
    """Why the key passphrase fields block Protect (they differ), or None (empty: no encryption; or both equal)."""
    if passphrase != confirmation:
        return _("The two passphrase fields differ; type the same passphrase in both (or clear both to write an "
                 "unencrypted key).")
    return None


def keyResultLine(keyPath: str, encrypted: bool) -> str:
    """The panel's line about the written key: where it is and whether it is encrypted."""
    state = _("encrypted with your passphrase") if encrypted else _("not encrypted")
    return _("Key written to {path} ({state}). Keep it safe and apart from the image: only it unlocks the "
             "fusion.").format(path=keyPath, state=state)


def isExpectedError(error: BaseException) -> bool:
    """True for failures the panel explains in its own line: AMIF's errors (bad input, a key that does not fit, a
    wrong passphrase, memory), the Slicer logic's (a node to change, a declined install) and file-system errors
    (a full disk, a missing folder, a file that exists). Anything else is a bug, shown with its traceback."""
    from amif_core.errors import AMIFError
    from AMIFSlicerLib.errors import AMIFSlicerError

    return isinstance(error, (AMIFError, AMIFSlicerError, OSError))


_DATE = re.compile(r"\b\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}\b")
_LONG_NUMBER = re.compile(r"\d{6,}")
_PERSON = re.compile(r"\b[A-Z][a-z]+,?\s+[A-Z][a-z]+\b|\b[A-Z]+\^[A-Z]+")  # "Jane Doe", "Doe, Jane", "DOE^JANE"
_OWNER_WORDS = re.compile(r"(?i)\b(amif|clinic|hospital|university|institute|centre|center|department|dept|"
                          r"lab|inc|ltd|gmbh|copyright)\b|\u00a9")


def identifierWarning(text: str) -> str | None:
    """A warning when the owner / copyright text looks like patient data (a name, a date or an ID), else None.

    The text is burnt into every slice and shown to everyone who gets the
    image, so it must never carry protected health information.
    """
    if not text:
        return None
    looksLike = [what for what, pattern in ((_("a date"), _DATE), (_("an ID number"), _LONG_NUMBER))
                 if pattern.search(text)]
    if _PERSON.search(text) and not _OWNER_WORDS.search(text):
        looksLike.insert(0, _("a person's name"))
    if not looksLike:
        return None
    return _("The owner / copyright text looks like {kinds}. It is burnt into every slice and seen by everyone who "
             "gets the image: use the owner's copyright text, never patient data.").format(
        kinds=_(" and ").join(looksLike))


MINIMUM_SLICER = (5, 10)  # the first Slicer with Python >= 3.10, which amif_core and current PyTorch need


def slicerVersionProblem(major: int, minor: int) -> str | None:
    """Why this Slicer is too old for AMIF (None when it is new enough)."""
    if (major, minor) >= MINIMUM_SLICER:
        return None
    return _("AMIF needs 3D Slicer {needed} or later (Python 3.10 or newer); this is Slicer {version}. Install a "
             "current Slicer from download.slicer.org.").format(needed="{}.{}".format(*MINIMUM_SLICER),
                                                                 version=f"{major}.{minor}")


def progressText(done: int, total: int, elapsedSeconds: float) -> str:
    """The progress bar's text: slices done of total, and the time left once a slice has run."""
    text = _("{done} of {total} slices").format(done=done, total=total)
    if 0 < done < total and elapsedSeconds > 0:
        left = elapsedSeconds / done * (total - done)
        text += (_(", about {seconds:.0f} s left").format(seconds=left) if left < 90 else
                 _(", about {minutes:.0f} min left").format(minutes=left / 60))
    return text


def isUnsetPath(path: object) -> bool:
    """True for a path field left empty (the parameter node's unset ``Path`` reads as ".")."""
    return path is None or str(path).strip() in ("", ".")


class DefaultKeyPath:
    """The key path the panel proposes: chosen once per MRI, and never over a path the user picked.

    ``avoidFolders()`` names folders the default must not go into (Slicer's
    DICOM database), besides those :func:`AMIFSlicerLib.readiness.defaultKeyPlace`
    always avoids.
    """

    def __init__(self, avoidFolders: Callable[[], Sequence[str]] = lambda: ()) -> None:
        self.avoidFolders = avoidFolders
        self.forNode: str | None = None
        self.path: str | None = None

    def forget(self) -> None:
        """Forget the MRI the default was chosen for: after a scene closes, node IDs start again, and the next
        scene's MRI (perhaps with the same ID) gets a default of its own."""
        self.forNode = self.path = None

    def update(self, scene: slicer.vtkMRMLScene, mriNode: slicer.vtkMRMLScalarVolumeNode | None,
               keyPath: str) -> tuple[str | None, str | None]:
        """``(path to set, hint)`` for the current MRI and key path: a new default when the MRI changed and the
        path is unset or still the default (else None), and the line saying where the key goes (None: unchanged)."""
        mriId = mriNode.GetID() if mriNode is not None else None
        if mriId and mriId != self.forNode and (isUnsetPath(keyPath) or keyPath == self.path):
            place = readiness.defaultKeyPlace(scene, mriNode, avoid=[Path(f) for f in self.avoidFolders() if f])
            self.forNode, self.path = mriId, str(place.path)
            return self.path, _("The key goes {reason}.").format(reason=place.reason)
        if isUnsetPath(keyPath):
            return None, ""
        return None, None if keyPath == self.path else _("The key goes where you chose.")


@dataclass(frozen=True)
class PanelState:
    """What the panel shows for its current choices: why each button is off (None: it is on) and the warnings."""

    protectBlocker: str | None
    colourToolTip: str
    warnings: str
    showReady: bool
    unlockBlocker: str | None


def panelState(scene: slicer.vtkMRMLScene, parameters: Any, passphrase: str, confirmation: str) -> PanelState:
    """The panel's state for ``parameters`` (the parameter node: mriVolume, otherVolume, colourMode,
    identifierText, keyPath, protectedVolume, unlockKeyPath) and the two passphrase fields."""
    keyPath = None if isUnsetPath(parameters.keyPath) else parameters.keyPath
    protect = readiness.protectBlocker(parameters.mriVolume, parameters.otherVolume, parameters.identifierText, keyPath,
                                     colour=parameters.colourMode) or passphraseProblem(passphrase, confirmation)
    warnings = readiness.inputWarnings(parameters.mriVolume, parameters.otherVolume) + readiness.volumesNotOffered(scene)
    ownerWarning = identifierWarning(parameters.identifierText)
    unlockKey = None if isUnsetPath(parameters.unlockKeyPath) else parameters.unlockKeyPath
    return PanelState(
        protectBlocker=protect,
        colourToolTip=readiness.colourDescription(parameters.otherVolume, parameters.colourMode),
        warnings="\n".join(warnings + ([ownerWarning] if ownerWarning else [])),
        showReady=all((parameters.mriVolume, parameters.otherVolume, parameters.protectedVolume)),
        unlockBlocker=readiness.unlockBlocker(parameters.protectedVolume, unlockKey),
    )


def preselectVolumes(scene: slicer.vtkMRMLScene, parameters: Any) -> None:
    """Fill the parameter node's empty volume choices from the scene (:func:`AMIFSlicerLib.readiness.suggestInputs`
    and the newest protected volume); a choice already made is kept."""
    if not parameters.mriVolume or not parameters.otherVolume:
        mri, other = readiness.suggestInputs(scene)
        if not parameters.mriVolume and mri:
            parameters.mriVolume = mri
        if not parameters.otherVolume and other and other is not parameters.mriVolume:
            parameters.otherVolume = other
    if not parameters.protectedVolume:
        protected = readiness.suggestProtectedVolume(scene)
        if protected:
            parameters.protectedVolume = protected


def panelMessage(error: Exception) -> str:
    """The error's message in the panel's language (:func:`AMIFSlicerLib.coremessages.coreMessage`), with the
    panel's advice for the setting that fixes it (core errors name one), as :meth:`amif_core.errors.AMIFError.hint`
    adds it."""
    hints = {
        "axis": _("The slice axis follows the MRI's orientation; reorient or crop the MRI."),
        "device": _("Choose CPU in the Device list (Advanced)."),
        "overwrite": _("Choose another key file."),
        "passphrase": _("Enter it in the Passphrase field."),
        "identifier": _("Change the Owner / copyright text."),
        "colour": _("Change the Colour choice."),
    }
    message = coreMessage(error)
    advice = hints.get(getattr(error, "setting", None))
    return f"{message} {advice}" if advice else message


def colourItems() -> list[tuple[str, str]]:
    """The Colour list: (label, choice) for each of :data:`AMIFSlicerLib.readiness.COLOUR_CHOICES`: automatic, each
    of amif_core's colour tables (:func:`amif_core.transforms.colour.table_choices`), grey."""
    tables = [(_("{name} colours ({look})").format(name=name.upper(), look=look), name)
              for name, look in table_choices()]
    return [(_("Automatic: PET/SPECT in colour, CT grey"), readiness.COLOUR_AUTO), *tables,
            (_("Keep grey"), readiness.COLOUR_GREY)]


def selectComboData(comboBox: Any, data: str) -> None:
    """Show the item of ``comboBox`` whose data is ``data`` (else the first), without emitting its signals."""
    wasBlocked = comboBox.blockSignals(True)
    comboBox.currentIndex = max(comboBox.findData(data), 0)
    comboBox.blockSignals(wasBlocked)
