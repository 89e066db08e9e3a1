"""What the scene offers the AMIF panel and what blocks a run: reads of the scene and of paths, never writes.

The panel asks here which volumes to preselect, why Protect or Unlock cannot
run yet (the buttons' tooltips), which warnings to show, how the fusion will
look (grey or colour), and where the key goes by default.
"""
from __future__ import annotations

import importlib.util
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Sequence

import numpy as np
import slicer

from amif_core.transforms.colour import COLOUR_TABLES  # numpy only
from AMIFSlicerLib import display
from AMIFSlicerLib.i18n import tr as _
from AMIFSlicerLib.volumenodes import isRgbNode, volumeProblem, worldBounds

KEY_SUFFIX = ".amifkey"
ROLE_ATTRIBUTE = "AMIF.role"
MRI_ROLE = "MRI"
OTHER_ROLE = "CT/PET/SPECT volume"
PROTECTED_ROLE = "protected volume"
COLOUR_AUTO, COLOUR_GREY = "auto", "grey"
COLOUR_CHOICES = (COLOUR_AUTO, *COLOUR_TABLES, COLOUR_GREY)  # automatic, each of amif_core's colour tables, grey
AUTO_TABLES = {modality: modality.lower() for modality in display.FUNCTIONAL_MODALITIES
               if modality.lower() in COLOUR_TABLES}  # PET -> "pet", SPECT -> "spect"
PARTIAL_OVERLAP_WARNING = 0.5  # warn when the second scan covers less than this fraction of the MRI


@dataclass(frozen=True)
class KeyPlace:
    """The default key file: ``path`` and ``reason``, the words the panel shows for why it goes there."""

    path: Path
    reason: str


def colourTable(otherNode: slicer.vtkMRMLScalarVolumeNode | None, choice: str = COLOUR_AUTO) -> str | None:
    """The colour table a scalar ``otherNode`` is fused through for ``choice`` (one of
    :data:`COLOUR_CHOICES`), or None (grey, or an RGB node's own colours).

    "auto" gives PET the "pet" (hot iron) table and SPECT the "spect"
    table, and keeps CT and unrecognised scans grey.
    """
    if otherNode is None or isRgbNode(otherNode) or choice == COLOUR_GREY:
        return None
    if choice == COLOUR_AUTO:
        return AUTO_TABLES.get(display.guessModality(otherNode))
    return choice


def colourDescription(otherNode: slicer.vtkMRMLScalarVolumeNode | None, choice: str = COLOUR_AUTO) -> str:
    """One line for the panel: how the fusion of ``otherNode`` will look with ``choice``."""
    if otherNode is None:
        return ""
    if isRgbNode(otherNode):
        return (_("Grey fusion of the colour volume's luma.") if choice == COLOUR_GREY else
                _("Colour fusion: the RGB volume's own colours on the fused luma."))
    table = colourTable(otherNode, choice)
    if table is None:
        return _("Grey fusion.")
    return _("Colour fusion through the '{table}' colour table (RGB result).").format(table=table)


def isAmifOutput(node: slicer.vtkMRMLNode) -> bool:
    """True for nodes this module created (protected or unlocked volumes)."""
    return bool(node.GetAttribute(ROLE_ATTRIBUTE))


def suggestInputs(scene: slicer.vtkMRMLScene
                  ) -> tuple[slicer.vtkMRMLScalarVolumeNode | None, slicer.vtkMRMLScalarVolumeNode | None]:
    """The first suitable (MRI, CT/PET/SPECT) pair of the scene, by modality, for preselection.

    Label maps, other vector volumes and AMIF outputs are skipped. The MRI
    is the first scalar volume that looks like MR (else the first that is
    not CT/PET/SPECT); the other is the first CT/PET/SPECT volume, RGB
    included (else the next suitable one).
    """
    candidates = [node for node in _scalarVolumes(scene)
                  if volumeProblem(node, OTHER_ROLE, rgb=True) is None and not isAmifOutput(node)]
    modalities = {node.GetID(): display.guessModality(node) for node in candidates}
    scalars = [n for n in candidates if not isRgbNode(n)]
    mri = next((n for n in scalars if modalities[n.GetID()] == display.MR), None)
    mri = mri or next((n for n in scalars if modalities[n.GetID()] not in (display.CT, *display.FUNCTIONAL_MODALITIES)),
                      None)
    others = [n for n in candidates if n is not mri]
    other = next((n for n in others if modalities[n.GetID()] in (display.CT, *display.FUNCTIONAL_MODALITIES)), None)
    return mri, other or next(iter(others), None)


def suggestProtectedVolume(scene: slicer.vtkMRMLScene) -> slicer.vtkMRMLScalarVolumeNode | None:
    """The most recently added protected volume of the scene, for the unlock selector."""
    protected = [n for n in _scalarVolumes(scene) if n.GetAttribute(ROLE_ATTRIBUTE) == "protected"]
    return protected[-1] if protected else None


def _scalarVolumes(scene: slicer.vtkMRMLScene) -> list[slicer.vtkMRMLScalarVolumeNode]:
    return [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
            for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]


def protectBlocker(mriNode: slicer.vtkMRMLScalarVolumeNode | None,
                   otherNode: slicer.vtkMRMLScalarVolumeNode | None, identifier: str,
                   keyPath: str | Path | None, overwriteKey: bool = True, colour: str = COLOUR_AUTO) -> str | None:
    """Why Protect cannot run with these choices (the button's tooltip), or None when it can."""
    problem = volumeProblem(mriNode, MRI_ROLE) or volumeProblem(otherNode, OTHER_ROLE, rgb=True)
    if problem is not None:
        return problem
    if colour not in COLOUR_CHOICES:
        return _("Unknown colour choice '{colour}'; choose one of {choices}.").format(
            colour=colour, choices=", ".join(COLOUR_CHOICES))
    if isRgbNode(otherNode) and colour not in (COLOUR_AUTO, COLOUR_GREY):
        return _("'{name}' is already a colour (RGB) volume, so no colour table applies; choose Automatic (its "
                 "own colours) or Keep grey.").format(name=otherNode.GetName())
    if mriNode is otherNode:
        return _("The MRI and the CT/PET/SPECT volume are the same node; select two different volumes.")
    for node in (mriNode, otherNode):
        if isAmifOutput(node):
            return _("'{name}' is an AMIF {role} volume; select the original scans.").format(
                name=node.GetName(), role=node.GetAttribute(ROLE_ATTRIBUTE))
    if not identifier or not identifier.strip():
        return _("Enter the identifier text (for example 'AMIF \u00a9').")
    return keyPathProblem(keyPath, mustExist=False, overwrite=overwriteKey)


def unlockBlocker(protectedNode: slicer.vtkMRMLScalarVolumeNode | None,
                  keyPath: str | Path | None) -> str | None:
    """Why Unlock cannot run with these choices (the button's tooltip), or None when it can."""
    return volumeProblem(protectedNode, PROTECTED_ROLE, rgb=True) or keyPathProblem(keyPath, mustExist=True)


def inputWarnings(mriNode: slicer.vtkMRMLScalarVolumeNode | None,
                  otherNode: slicer.vtkMRMLScalarVolumeNode | None) -> list[str]:
    """Warnings about a valid input pair: no or little overlap in world space, transforms in use."""
    if volumeProblem(mriNode, MRI_ROLE) or volumeProblem(otherNode, OTHER_ROLE, rgb=True) or mriNode is otherNode:
        return []
    warnings = []
    mriBox, otherBox = worldBounds(mriNode), worldBounds(otherNode)
    low, high = np.maximum(mriBox[:, 0], otherBox[:, 0]), np.minimum(mriBox[:, 1], otherBox[:, 1])
    shared = float(np.prod(np.clip(high - low, 0, None)))
    covered = shared / max(float(np.prod(mriBox[:, 1] - mriBox[:, 0])), 1e-12)
    if shared <= 0:
        warnings.append(_("'{mri}' and '{other}' do not overlap in world space. Register them first (for example "
                          "with the General Registration (Elastix or BRAINS) module) and place the second scan "
                          "under the resulting transform.").format(mri=mriNode.GetName(), other=otherNode.GetName()))
    elif covered < PARTIAL_OVERLAP_WARNING:
        warnings.append(_("'{other}' covers only about {covered:.0%} of the MRI's field of view; outside it the "
                          "fusion shows the MRI alone. Check the registration.").format(other=otherNode.GetName(),
                                                                                      covered=covered))
    for node in (mriNode, otherNode):
        transform = node.GetParentTransformNode()
        if transform is not None:
            warnings.append(_("'{name}' is used in world space, through its transform '{transform}'.").format(
                name=node.GetName(), transform=transform.GetName()))
    return warnings


def volumesNotOffered(scene: slicer.vtkMRMLScene) -> list[str]:
    """One line per loaded volume that the selectors do not offer (label maps, 4D and other vector volumes),
    saying why, so a user who looks for it learns what to do."""
    lines = []
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLVolumeNode")):
        node = scene.GetNthNodeByClass(index, "vtkMRMLVolumeNode")
        offered = node.GetClassName() in ("vtkMRMLScalarVolumeNode", "vtkMRMLVectorVolumeNode")
        problem = volumeProblem(node, OTHER_ROLE, rgb=True)
        if isAmifOutput(node) or (offered and problem is None) or node.GetImageData() is None:
            continue
        reason = problem or _("{name} is not a scalar or RGB volume.").format(name=node.GetName())
        lines.append(_("Not offered: {reason}").format(reason=reason))
    return lines


def installFolders() -> tuple[Path, ...]:
    """The folders of this module and of ``amif_core`` (the extension's install, or the checkout): a key written
    there is lost when the extension is updated or removed."""
    core = importlib.util.find_spec("amif_core")
    folders = [Path(__file__).resolve().parents[1]]
    if core is not None and core.submodule_search_locations:
        folders.append(Path(list(core.submodule_search_locations)[0]).resolve())
    return tuple(folders)


def isInside(folder: Path, parents: Sequence[Path]) -> bool:
    """True when ``folder`` is one of ``parents`` or lies below one (both resolved)."""
    folder = folder.expanduser().resolve()
    return any(folder == parent or parent in folder.parents for parent in
               (Path(p).expanduser().resolve() for p in parents))


def folderWritable(folder: Path) -> bool:
    """True when a file can be created in ``folder``: tried, not read from permission bits, which a read-only
    mount (a DICOM archive share) or administrator rights make misleading."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def defaultKeyPlace(scene: slicer.vtkMRMLScene, mriNode: slicer.vtkMRMLScalarVolumeNode,
                    now: datetime | None = None, avoid: Sequence[Path] = ()) -> KeyPlace:
    """Where Protect writes the key unless the user chooses: a path and the reason, for the panel to show.

    The file "<MRI name> AMIF key.amifkey" goes next to the MRI's file when
    the MRI was loaded from one, else into the scene's folder (Slicer's
    default scene location), else the home folder. A folder is passed over,
    and the reason says why, when it cannot be written (a read-only archive
    a DICOM series was linked from) or lies in ``avoid`` (Slicer's DICOM
    database, where deleting the study deletes the key) or in the extension's
    own folders (:func:`installFolders`: the bundled demo). When the name is
    taken, the key's name gets the date and time (``now``, default the
    current time), and the reason says so: a default never moves silently,
    and never replaces a key.
    """
    storage = mriNode.GetStorageNode()
    fileName = storage.GetFileName() if storage is not None else None
    candidates = []
    if fileName and Path(fileName).parent.is_dir():
        candidates.append((Path(fileName).parent, _("next to the MRI's file")))
        sceneReason = _("in the scene's folder (Slicer's default scene location)")
    else:
        sceneReason = _("in the scene's folder (Slicer's default scene location), as the MRI has no file of its own")
    candidates += [(Path(scene.GetRootDirectory() or "."), sceneReason), (Path.home(), _("in your home folder"))]
    passedOver = []
    avoided = (*avoid, *installFolders())
    for folder, why in candidates:
        folder = folder.expanduser().resolve()
        if isInside(folder, avoid):
            passedOver.append(_("'{folder}' is inside Slicer's DICOM database").format(folder=folder))
        elif isInside(folder, avoided):
            passedOver.append(_("'{folder}' belongs to the AMIF extension").format(folder=folder))
        elif not folderWritable(folder):
            passedOver.append(_("'{folder}' cannot be written").format(folder=folder))
        else:
            break
    if passedOver:
        why += _(" ({reasons})").format(reasons="; ".join(passedOver))
    stem = re.sub(r'[<>:"/\\|?*\x00-\x1f]', "_", mriNode.GetName()).strip(" .") or "volume"
    path = folder / f"{stem} AMIF key{KEY_SUFFIX}"
    if path.exists():
        stamp = (now or datetime.now()).strftime("%Y-%m-%d %H%M%S")
        why += _("; '{name}' exists there already, so this key's name carries the date and time").format(
            name=path.name)
        path = folder / f"{stem} AMIF key {stamp}{KEY_SUFFIX}"
    return KeyPlace(path, why)


def keyFilePath(keyPath: str | Path) -> Path:
    """The key file a path names: surrounding blanks dropped and ``~`` expanded (the one place this is done)."""
    return Path(str(keyPath).strip()).expanduser()


def keyPathProblem(keyPath: str | Path | None, mustExist: bool, overwrite: bool = True) -> str | None:
    """What is wrong with a key file path (to read when ``mustExist``, else to write), or None."""
    text = str(keyPath).strip() if keyPath is not None else ""
    if not text or text == ".":
        return _("Choose the key file.") if mustExist else _("Choose where to save the key file.")
    path = keyFilePath(text)
    if mustExist:
        return None if path.is_file() else _("The key file '{path}' does not exist; choose the key written with "
                                             "the protected volume.").format(path=path)
    if path.is_dir():
        return _("'{path}' is a folder; give a key file name such as 'patient{suffix}'.").format(
            path=path, suffix=KEY_SUFFIX)
    if not path.parent.is_dir():
        return _("The folder '{folder}' does not exist; choose another place for the key file.").format(
            folder=path.parent)
    if not folderWritable(path.parent):
        return _("The folder '{folder}' cannot be written; choose another place for the key file.").format(
            folder=path.parent)
    if path.exists() and not overwrite:
        return _("The key file '{path}' exists already; choose another name, or confirm that it may be "
                 "replaced.").format(path=path)
    return None
