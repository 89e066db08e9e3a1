"""AMIFSceneLogic: protect and unlock volume nodes, show them, and tell the panel what is ready.

Protect reads the MRI and the CT/PET/SPECT node in world space, runs
:func:`amif_core.inference.pipeline.protect_volume`, writes the key file and only then
adds the protected node; unlock reads the key and adds the unlocked node.
Input nodes are never modified, and key material never enters the scene:
output nodes carry only provenance attributes (``AMIF.*``: role, AMIF
version, model version, weights checksum, device, identifier text).
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Callable

import numpy as np
import SimpleITK as sitk
import slicer

from amif_core.constants import (
    DEFAULT_IDENTIFIER,  # torch-free: importable before PyTorch is installed
)
from amif_core.inference import runner  # torch-free until a run: lists devices before PyTorch is installed
from AMIFSlicerLib import display
from AMIFSlicerLib.errors import DependencyError, InvalidInputError
from AMIFSlicerLib.volumenodes import (
    addScalarVolumeNode,
    isRgbNode,
    localIjkToRas,
    sitkImageFromArray,
    volumeProblem,
    voxelArray,
    worldBounds,
    worldVoxels,
)

if TYPE_CHECKING:  # amif_core imports torch: only type checkers import it here
    from amif_core import AMIFModel
    from amif_core.key.core import Key

PROTECTED_SUFFIX = " AMIF protected"
UNLOCKED_SUFFIX = " AMIF unlocked"
KEY_SUFFIX = ".amifkey"
ROLE_ATTRIBUTE = "AMIF.role"
PROVENANCE_ATTRIBUTES = ("AMIF.role", "AMIF.version", "AMIF.modelVersion", "AMIF.weightsSHA256", "AMIF.device",
                         "AMIF.identifier")
MRI_ROLE = "MRI"
OTHER_ROLE = "CT/PET/SPECT volume"
PROTECTED_ROLE = "protected volume"
COLOUR_AUTO, COLOUR_GREY = "auto", "grey"
COLOUR_CHOICES = (COLOUR_AUTO, "pet", "spect", COLOUR_GREY)  # "pet" and "spect": amif_core's colour tables
AUTO_TABLES = {display.PET: "pet", display.SPECT: "spect"}
PARTIAL_OVERLAP_WARNING = 0.5  # warn when the second scan covers less than this fraction of the MRI
CORE_MODULES = ("amif_core.inference.pipeline", "amif_core.inference.runner", "amif_core.inference.weights",
                "amif_core.io.geometry", "amif_core.key.file", "amif_core.transforms.colour")

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]
Notice = Callable[[str], None]


@dataclass(frozen=True)
class KeyPlace:
    """The default key file: ``path`` and ``reason``, the words the panel shows for why it goes there."""

    path: Path
    reason: str


class AMIFSceneLogic:
    """Headless logic of the AMIF module on one MRML scene.

    ``applicationLogic`` is needed only to show the comparison layouts (in
    Slicer: ``slicer.app.applicationLogic()``); ``afterLayout`` defers fitting
    the views until the new layout is laid out (see
    :func:`AMIFSlicerLib.display.showLayout`). ``weightsPath`` overrides the
    weights shipped with ``amif_core``. Loaded models are kept per device.
    """

    def __init__(self, scene: slicer.vtkMRMLScene, applicationLogic: slicer.vtkMRMLApplicationLogic | None = None,
                 weightsPath: str | Path | None = None,
                 afterLayout: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.scene = scene
        self.applicationLogic = applicationLogic
        self.afterLayout = afterLayout
        self.weightsPath = Path(weightsPath) if weightsPath is not None else None
        self._models: dict[str, AMIFModel] = {}

    # ------------------------------------------------------------------ core access

    @staticmethod
    def core() -> ModuleType:
        """The ``amif_core`` package with its volume and key-file modules loaded.

        Raises :class:`DependencyError` (saying what to install) when it or
        one of its packages cannot be imported.
        """
        try:
            core = importlib.import_module("amif_core")
            for name in CORE_MODULES:
                importlib.import_module(name)
        except ModuleNotFoundError as error:
            raise DependencyError(
                f"AMIF cannot start: the Python package '{error.name}' is missing. Open the AMIF module and click "
                "Protect or Unlock to install the dependencies, or reinstall the AMIF extension.") from error
        return core

    def model(self, device: str) -> AMIFModel:
        """The AMIF model on ``device``, loaded once per device (the batch size is each call's)."""
        if device not in self._models:
            self._models[device] = self.core().load_model(device, weights=self.weightsPath)
        return self._models[device]

    def _provenance(self, node: slicer.vtkMRMLScalarVolumeNode, role: str, model: AMIFModel, device: str,
                    identifier: str) -> None:
        core = self.core()
        weights = self.weightsPath or core.inference.weights.DEFAULT_WEIGHTS
        values = {
            "AMIF.role": role,
            "AMIF.version": core.__version__,
            "AMIF.modelVersion": f"{Path(weights).stem} (weights format {model.metadata.get('version', '?')})",
            "AMIF.weightsSHA256": model.model_id,
            "AMIF.device": runner.device_label(device) + ("" if device == runner.CPU else f" ({device})"),
            "AMIF.identifier": identifier,
        }
        for name in PROVENANCE_ATTRIBUTES:
            node.SetAttribute(name, values[name])

    @staticmethod
    def _plan(image: sitk.Image, axis: int, device: str) -> runner.RunPlan:
        shape = sitk.GetArrayViewFromImage(image).shape
        return runner.plan_for(int(np.prod(shape)), tuple(s for i, s in enumerate(shape) if i != axis), device)

    # ------------------------------------------------------------------ protect

    @staticmethod
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

    def colourDescription(self, otherNode: slicer.vtkMRMLScalarVolumeNode | None, choice: str = COLOUR_AUTO) -> str:
        """One line for the panel: how the fusion of ``otherNode`` will look with ``choice``."""
        if otherNode is None:
            return ""
        if isRgbNode(otherNode):
            return ("Grey fusion of the colour volume's luma." if choice == COLOUR_GREY else
                    "Colour fusion: the RGB volume's own colours on the fused luma.")
        table = self.colourTable(otherNode, choice)
        if table is None:
            return "Grey fusion."
        return f"Colour fusion through the '{table}' colour table (RGB result)."

    def protect(self, mriNode: slicer.vtkMRMLScalarVolumeNode, otherNode: slicer.vtkMRMLScalarVolumeNode,
                keyPath: str | Path, identifier: str = DEFAULT_IDENTIFIER, device: str = runner.AUTO,
                progress: Progress | None = None, cancel: Cancel | None = None, passphrase: str | None = None,
                overwriteKey: bool = False, notice: Notice | None = None, colour: str = COLOUR_AUTO
                ) -> slicer.vtkMRMLScalarVolumeNode:
        """Fuse ``mriNode`` with ``otherNode``, burn in ``identifier``, write the key; return the new protected node.

        ``colour`` (one of :data:`COLOUR_CHOICES`): a PET or SPECT is fused in
        colour by default (:meth:`colourTable`), and so is an RGB
        ``otherNode``; the protected node is then an RGB vector volume.
        "grey" keeps the fusion grey.

        Both inputs are used in world space (parent transforms applied); the
        result, "<MRI name> AMIF protected", lies on the MRI's world grid
        (exactly the MRI's IJK-to-RAS when the MRI has no parent transform),
        with a window/level for viewing. The key goes to ``keyPath``
        (encrypted when ``passphrase`` is given; an existing file is replaced
        only with ``overwriteKey``). ``progress(done, total)`` counts slices;
        ``cancel()`` returning True stops the run, and nothing is written.
        ``notice`` receives one-line remarks (resampling, memory fallbacks).
        """
        notice = notice or (lambda text: None)
        passphrase = passphrase or None
        problem = self.protectBlocker(mriNode, otherNode, identifier, keyPath, overwriteKey, colour)
        if problem is not None:
            raise InvalidInputError(problem)
        keyPath = keyFilePath(keyPath)
        core = self.core()
        try:
            identifier = core.transforms.identifier.validate_identifier(identifier)
        except ValueError as error:
            raise InvalidInputError(str(error)) from error

        images = {}
        for role, node in ((MRI_ROLE, mriNode), (OTHER_ROLE, otherNode)):
            voxels, ijkToWorld, resampled = worldVoxels(node)
            if resampled:
                notice(f"'{node.GetName()}' is under a non-linear or shearing transform; it was resampled through "
                       "that transform into world space.")
            if role == OTHER_ROLE and np.ndim(voxels) == 4 and colour == COLOUR_GREY:
                voxels = core.transforms.colour.luma(core.transforms.colour.rgb_unit(voxels, "CT/PET/SPECT volume"))
            images[role] = (sitkImageFromArray(voxels, ijkToWorld), ijkToWorld)
        mriImage, mriIjkToWorld = images[MRI_ROLE]
        table = self.colourTable(otherNode, colour)
        otherImage = images[OTHER_ROLE][0]
        plan = self._plan(mriImage, core.io.geometry.slice_axis(mriImage), device)
        for note in plan.notes:
            notice(note)

        def run(runDevice: str, batchSize: int) -> tuple[sitk.Image, Key]:
            return core.inference.pipeline.protect_volume(self.model(runDevice), mriImage, otherImage, identifier,
                                                          colour_table=table, progress=progress, cancel=cancel,
                                                          notice=notice, batch_size=batchSize)

        (protectedImage, key), ranOn = runner.run_with_memory_fallback(run, plan, notice)
        core.key.file.write_key(keyPath, key, passphrase=passphrase, force=overwriteKey)
        voxels = sitk.GetArrayViewFromImage(protectedImage)
        node = addScalarVolumeNode(self.scene, voxels, mriIjkToWorld, mriNode.GetName() + PROTECTED_SUFFIX)
        display.setWindowLevel(node, *(display.RGB_WINDOW_LEVEL if voxels.ndim == 4 else
                                       display.fusionWindowLevel(voxels)))
        self._provenance(node, "protected", self._models[ranOn], ranOn, identifier)
        return node

    # ------------------------------------------------------------------ unlock

    def keyNeedsPassphrase(self, keyPath: str | Path) -> bool:
        """True when the key file at ``keyPath`` is encrypted; False when it is not, or cannot be read yet."""
        path = keyFilePath(keyPath)
        if not path.is_file():
            return False
        try:
            return bool(importlib.import_module("amif_core.key.file").key_needs_passphrase(path))
        except Exception:
            return False  # unreadable: unlock reports the reason (reading a key header needs no PyTorch)

    def unlock(self, protectedNode: slicer.vtkMRMLScalarVolumeNode, keyPath: str | Path,
               passphrase: str | None = None, device: str = runner.AUTO, progress: Progress | None = None,
               cancel: Cancel | None = None, notice: Notice | None = None) -> slicer.vtkMRMLScalarVolumeNode:
        """Recover the watermark-free fusion of ``protectedNode`` with the key at ``keyPath``; return the new node.

        The voxels are used as stored (no resampling: the key is bound to
        them), so the new node "<name> AMIF unlocked" has the protected
        node's IJK-to-RAS and parent transform. A wrong key, passphrase or
        volume raises the core's error (its message says which) and changes
        nothing in the scene.
        """
        notice = notice or (lambda text: None)
        passphrase = passphrase or None
        problem = self.unlockBlocker(protectedNode, keyPath)
        if problem is not None:
            raise InvalidInputError(problem)
        keyPath = keyFilePath(keyPath)
        core = self.core()
        if passphrase is None and core.key.file.key_needs_passphrase(keyPath):
            raise InvalidInputError("This key file is protected by a passphrase. Enter it in the Passphrase field "
                                    "and click Unlock again.")
        key = core.key.file.read_key(keyPath, passphrase=passphrase)
        ijkToRas = localIjkToRas(protectedNode)
        protectedImage = sitkImageFromArray(voxelArray(protectedNode), ijkToRas)
        plan = self._plan(protectedImage, key.axis, device)
        for note in plan.notes:
            notice(note)

        def run(runDevice: str, batchSize: int) -> sitk.Image:
            return core.inference.pipeline.unlock_volume(self.model(runDevice), protectedImage, key,
                                                         progress=progress, cancel=cancel, batch_size=batchSize)

        unlockedImage, ranOn = runner.run_with_memory_fallback(run, plan, notice)
        voxels = sitk.GetArrayViewFromImage(unlockedImage)
        baseName = re.sub(re.escape(PROTECTED_SUFFIX) + r"(_\d+)?$", "", protectedNode.GetName())
        node = addScalarVolumeNode(self.scene, voxels, ijkToRas, baseName + UNLOCKED_SUFFIX,
                                   protectedNode.GetParentTransformNode())
        protectedDisplay = protectedNode.GetDisplayNode()
        if voxels.ndim == 4:
            display.setWindowLevel(node, *display.RGB_WINDOW_LEVEL)
        elif protectedDisplay is not None and not protectedDisplay.GetAutoWindowLevel():
            display.setWindowLevel(node, protectedDisplay.GetWindow(), protectedDisplay.GetLevel())
        else:
            display.setWindowLevel(node, *display.fusionWindowLevel(voxels))
        self._provenance(node, "unlocked", self._models[ranOn], ranOn, key.identifier)
        return node

    # ------------------------------------------------------------------ showing

    def showComparison(self, mriNode: slicer.vtkMRMLScalarVolumeNode, otherNode: slicer.vtkMRMLScalarVolumeNode,
                       protectedNode: slicer.vtkMRMLScalarVolumeNode) -> str | None:
        """Show MRI | CT/PET/SPECT | protected in the linked AMIF comparison layout, centred on the MRI.

        A PET or SPECT volume still in default grey gets a PET colour table
        and window/level preset; returns that preset's name (None if unchanged).
        """
        preset = display.applyFunctionalDisplay(otherNode)
        display.showLayout(self.scene, self._applicationLogic(), display.COMPARISON_LAYOUT_ID,
                           [mriNode, otherNode, protectedNode], centreOn=mriNode, afterLayout=self.afterLayout)
        return preset

    def showUnlocked(self, protectedNode: slicer.vtkMRMLScalarVolumeNode,
                     unlockedNode: slicer.vtkMRMLScalarVolumeNode) -> None:
        """Show protected | unlocked side by side in the linked AMIF unlock layout."""
        display.showLayout(self.scene, self._applicationLogic(), display.UNLOCK_LAYOUT_ID,
                           [protectedNode, unlockedNode], centreOn=protectedNode, afterLayout=self.afterLayout)

    def _applicationLogic(self) -> slicer.vtkMRMLApplicationLogic:
        if self.applicationLogic is None:
            raise InvalidInputError("This AMIF logic has no application logic, so it cannot show views.")
        return self.applicationLogic

    # ------------------------------------------------------------------ panel state

    @staticmethod
    def isAmifOutput(node: slicer.vtkMRMLNode) -> bool:
        """True for nodes this module created (protected or unlocked volumes)."""
        return bool(node.GetAttribute(ROLE_ATTRIBUTE))

    def suggestInputs(self) -> tuple[slicer.vtkMRMLScalarVolumeNode | None, slicer.vtkMRMLScalarVolumeNode | None]:
        """The first suitable (MRI, CT/PET/SPECT) pair of the scene, by modality, for preselection.

        Label maps, other vector volumes and AMIF outputs are skipped. The MRI
        is the first scalar volume that looks like MR (else the first that is
        not CT/PET/SPECT); the other is the first CT/PET/SPECT volume, RGB
        included (else the next suitable one).
        """
        candidates = [node for node in self._scalarVolumes()
                      if volumeProblem(node, OTHER_ROLE, rgb=True) is None and not self.isAmifOutput(node)]
        modalities = {node.GetID(): display.guessModality(node) for node in candidates}
        scalars = [n for n in candidates if not isRgbNode(n)]
        mri = next((n for n in scalars if modalities[n.GetID()] == display.MR), None)
        mri = mri or next((n for n in scalars if modalities[n.GetID()] not in (display.CT, *display.FUNCTIONAL_MODALITIES)),
                          None)
        others = [n for n in candidates if n is not mri]
        other = next((n for n in others if modalities[n.GetID()] in (display.CT, *display.FUNCTIONAL_MODALITIES)), None)
        return mri, other or next(iter(others), None)

    def suggestProtectedVolume(self) -> slicer.vtkMRMLScalarVolumeNode | None:
        """The most recently added protected volume of the scene, for the unlock selector."""
        protected = [n for n in self._scalarVolumes() if n.GetAttribute(ROLE_ATTRIBUTE) == "protected"]
        return protected[-1] if protected else None

    def _scalarVolumes(self) -> list[slicer.vtkMRMLScalarVolumeNode]:
        return [self.scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
                for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]

    def protectBlocker(self, mriNode: slicer.vtkMRMLScalarVolumeNode | None,
                       otherNode: slicer.vtkMRMLScalarVolumeNode | None, identifier: str,
                       keyPath: str | Path | None, overwriteKey: bool = True, colour: str = COLOUR_AUTO) -> str | None:
        """Why Protect cannot run with these choices (the button's tooltip), or None when it can."""
        problem = volumeProblem(mriNode, MRI_ROLE) or volumeProblem(otherNode, OTHER_ROLE, rgb=True)
        if problem is not None:
            return problem
        if colour not in COLOUR_CHOICES:
            return f"Unknown colour choice '{colour}'; choose one of {', '.join(COLOUR_CHOICES)}."
        if isRgbNode(otherNode) and colour not in (COLOUR_AUTO, COLOUR_GREY):
            return (f"'{otherNode.GetName()}' is already a colour (RGB) volume, so no colour table applies; choose "
                    "Automatic (its own colours) or Keep grey.")
        if mriNode is otherNode:
            return "The MRI and the CT/PET/SPECT volume are the same node; select two different volumes."
        for node in (mriNode, otherNode):
            if self.isAmifOutput(node):
                return (f"'{node.GetName()}' is an AMIF {node.GetAttribute(ROLE_ATTRIBUTE)} volume; select the "
                        "original scans.")
        if not identifier or not identifier.strip():
            return "Enter the identifier text (for example 'AMIF \u00a9')."
        return keyPathProblem(keyPath, mustExist=False, overwrite=overwriteKey)

    def unlockBlocker(self, protectedNode: slicer.vtkMRMLScalarVolumeNode | None,
                      keyPath: str | Path | None) -> str | None:
        """Why Unlock cannot run with these choices (the button's tooltip), or None when it can."""
        return volumeProblem(protectedNode, PROTECTED_ROLE, rgb=True) or keyPathProblem(keyPath, mustExist=True)

    def inputWarnings(self, mriNode: slicer.vtkMRMLScalarVolumeNode | None,
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
            warnings.append(f"'{mriNode.GetName()}' and '{otherNode.GetName()}' do not overlap in world space. "
                            "Register them first (for example with the General Registration (Elastix or BRAINS) "
                            "module) and place the second scan under the resulting transform.")
        elif covered < PARTIAL_OVERLAP_WARNING:
            warnings.append(f"'{otherNode.GetName()}' covers only about {covered:.0%} of the MRI's field of view; "
                            "outside it the fusion shows the MRI alone. Check the registration.")
        for node in (mriNode, otherNode):
            transform = node.GetParentTransformNode()
            if transform is not None:
                warnings.append(f"'{node.GetName()}' is used in world space, through its transform "
                                f"'{transform.GetName()}'.")
        return warnings

    def volumesNotOffered(self) -> list[str]:
        """One line per loaded volume that the selectors do not offer (label maps, 4D and other vector volumes),
        saying why, so a user who looks for it learns what to do."""
        lines = []
        for index in range(self.scene.GetNumberOfNodesByClass("vtkMRMLVolumeNode")):
            node = self.scene.GetNthNodeByClass(index, "vtkMRMLVolumeNode")
            offered = node.GetClassName() in ("vtkMRMLScalarVolumeNode", "vtkMRMLVectorVolumeNode")
            problem = volumeProblem(node, OTHER_ROLE, rgb=True)
            if self.isAmifOutput(node) or (offered and problem is None) or node.GetImageData() is None:
                continue
            lines.append(f"Not offered: {problem or node.GetName() + ' is not a scalar or RGB volume.'}")
        return lines

    def defaultKeyPlace(self, mriNode: slicer.vtkMRMLScalarVolumeNode, now: datetime | None = None) -> KeyPlace:
        """Where Protect writes the key unless the user chooses: a path and the reason, for the panel to show.

        The file "<MRI name> AMIF key.amifkey" goes next to the MRI's file when
        the MRI was loaded from one, else into the scene's folder (Slicer's
        default scene location). When that name is taken, the key's name gets
        the date and time (``now``, default the current time), and the reason
        says so: a default never moves silently, and never replaces a key.
        """
        storage = mriNode.GetStorageNode()
        fileName = storage.GetFileName() if storage is not None else None
        if fileName and Path(fileName).parent.is_dir():
            folder, why = Path(fileName).parent, "next to the MRI's file"
        else:
            folder = Path(self.scene.GetRootDirectory() or ".").expanduser().resolve()
            why = "in the scene's folder (Slicer's default scene location), as the MRI has no file of its own"
        stem = re.sub(r'[<>:"/\\|?*\x00-\x1f]', "_", mriNode.GetName()).strip(" .") or "volume"
        path = folder / f"{stem} AMIF key{KEY_SUFFIX}"
        if path.exists():
            stamp = (now or datetime.now()).strftime("%Y-%m-%d %H%M%S")
            why += f"; '{path.name}' exists there already, so this key's name carries the date and time"
            path = folder / f"{stem} AMIF key {stamp}{KEY_SUFFIX}"
        return KeyPlace(path, why)


def keyFilePath(keyPath: str | Path) -> Path:
    """The key file a path names: surrounding blanks dropped and ``~`` expanded (the one place this is done)."""
    return Path(str(keyPath).strip()).expanduser()


def keyPathProblem(keyPath: str | Path | None, mustExist: bool, overwrite: bool = True) -> str | None:
    """What is wrong with a key file path (to read when ``mustExist``, else to write), or None."""
    text = str(keyPath).strip() if keyPath is not None else ""
    if not text or text == ".":
        return "Choose the key file." if mustExist else "Choose where to save the key file."
    path = keyFilePath(text)
    if mustExist:
        return None if path.is_file() else f"The key file '{path}' does not exist; choose the key written with the protected volume."
    if path.is_dir():
        return f"'{path}' is a folder; give a key file name such as 'patient{KEY_SUFFIX}'."
    if not path.parent.is_dir():
        return f"The folder '{path.parent}' does not exist; choose another place for the key file."
    if path.exists() and not overwrite:
        return f"The key file '{path}' exists already; choose another name, or confirm that it may be replaced."
    return None
