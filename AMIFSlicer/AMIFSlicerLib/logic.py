"""AMIFSceneLogic: protect and unlock volume nodes and show them (what is ready: :mod:`AMIFSlicerLib.readiness`).

Protect reads the MRI and the CT/PET/SPECT node in world space, runs
:func:`amif_core.inference.pipeline.protect_volume`, writes the key file and only then
adds the protected node; unlock reads the key and adds the unlocked node.
Input nodes are never modified, and key material never enters the scene:
output nodes carry only provenance attributes (``AMIF.*``: role, AMIF
version, model version, weights checksum, device, identifier text).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import SimpleITK as sitk
import slicer

from amif_core.constants import DEFAULT_IDENTIFIER, VERSION  # torch-free: importable before PyTorch is installed
from amif_core.errors import CancelledError
from amif_core.runtime import runner  # torch-free until a run: lists devices before PyTorch is installed
from amif_core.runtime.callbacks import Cancel, Notice, Progress
from amif_core.transforms.colour import luma, rgb_unit  # numpy only
from AMIFSlicerLib import display
from AMIFSlicerLib.engines import Engine, InProcessEngine
from AMIFSlicerLib.readiness import (
    COLOUR_AUTO,
    COLOUR_GREY,
    MRI_ROLE,
    OTHER_ROLE,
    colourTable,
    keyFilePath,
    protectBlocker,
    unlockBlocker,
)
from AMIFSlicerLib.coremessages import coreMessage
from AMIFSlicerLib.errors import InvalidInputError
from AMIFSlicerLib.i18n import tr as _
from AMIFSlicerLib.volumenodes import (
    addScalarVolumeNode,
    localIjkToRas,
    sitkImageFromArray,
    voxelArray,
    worldVoxels,
)

if TYPE_CHECKING:  # amif_core imports torch: only type checkers import it here
    from amif_core import AMIFModel

PROTECTED_SUFFIX = " AMIF protected"
UNLOCKED_SUFFIX = " AMIF unlocked"
PROVENANCE_ATTRIBUTES = ("AMIF.role", "AMIF.version", "AMIF.modelVersion", "AMIF.weightsSHA256", "AMIF.device",
                         "AMIF.identifier")



def stopIfCancelled(cancel: Cancel | None) -> None:
    """Raise the core's :class:`~amif_core.errors.CancelledError` when ``cancel()`` says so: a cancel, or a scene
    close, that arrives with the last slice still stops the run before it writes a key or adds a node."""
    if cancel is not None and cancel():
        raise CancelledError("Cancelled by the user; nothing was written.")


class AMIFSceneLogic:
    """Headless logic of the AMIF module on one MRML scene.

    ``applicationLogic`` is needed only to show the comparison layouts (in
    Slicer: ``slicer.app.applicationLogic()``); ``afterLayout`` defers fitting
    the views until the new layout is laid out (see
    :func:`AMIFSlicerLib.display.showLayout`). ``engine`` runs the network
    (:mod:`AMIFSlicerLib.engines`): by default in this process, with
    ``weightsPath`` overriding the weights shipped with ``amif_core``; the
    panel passes a :class:`AMIFSlicerLib.worker.WorkerEngine`.
    """

    def __init__(self, scene: slicer.vtkMRMLScene, applicationLogic: slicer.vtkMRMLApplicationLogic | None = None,
                 weightsPath: str | Path | None = None,
                 afterLayout: Callable[[Callable[[], None]], None] | None = None, engine: Engine | None = None) -> None:
        self.scene = scene
        self.applicationLogic = applicationLogic
        self.afterLayout = afterLayout
        self.weightsPath = Path(weightsPath) if weightsPath is not None else None
        self.engine = engine if engine is not None else InProcessEngine(self.weightsPath)

    def model(self, device: str) -> AMIFModel:
        """The AMIF model of the weights this logic protects with, loaded in this process on ``device`` (the
        self-test's reference fusion)."""
        engine = self.engine if isinstance(self.engine, InProcessEngine) else InProcessEngine(self.weightsPath)
        return engine.model(device)

    def _provenance(self, node: slicer.vtkMRMLScalarVolumeNode, role: str, provenance: dict[str, str],
                    identifier: str) -> None:
        device = provenance["device"]
        values = {
            "AMIF.role": role,
            "AMIF.version": VERSION,
            "AMIF.modelVersion": provenance["modelVersion"],
            "AMIF.weightsSHA256": provenance["modelId"],
            "AMIF.device": runner.device_label(device) + ("" if device == runner.CPU else f" ({device})"),
            "AMIF.identifier": identifier,
        }
        for name in PROVENANCE_ATTRIBUTES:
            node.SetAttribute(name, values[name])

    # ------------------------------------------------------------------ protect

    def protect(self, mriNode: slicer.vtkMRMLScalarVolumeNode, otherNode: slicer.vtkMRMLScalarVolumeNode,
                keyPath: str | Path, identifier: str = DEFAULT_IDENTIFIER, device: str = runner.AUTO,
                progress: Progress | None = None, cancel: Cancel | None = None, passphrase: str | None = None,
                overwriteKey: bool = False, notice: Notice | None = None, colour: str = COLOUR_AUTO,
                ownerSecret: str | Path | None = None) -> slicer.vtkMRMLScalarVolumeNode:
        """Fuse ``mriNode`` with ``otherNode``, burn in ``identifier``, write the key; return the new protected node.

        ``colour`` (one of :data:`AMIFSlicerLib.readiness.COLOUR_CHOICES`): a PET or SPECT is fused in
        colour by default (:func:`AMIFSlicerLib.readiness.colourTable`), and so is an RGB
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
        ``ownerSecret``: the owner secret file (``amif owner init``) whose
        invisible trace mark the fusion carries; None or empty:
        ``$AMIF_OWNER_SECRET``, else the public demo secret, which ``notice``
        announces. Only the path is passed on; the secret stays in its file.
        """
        notice = notice or (lambda text: None)
        passphrase = passphrase or None
        problem = protectBlocker(mriNode, otherNode, identifier, keyPath, overwriteKey, colour)
        if problem is not None:
            raise InvalidInputError(problem)
        keyPath = keyFilePath(keyPath)
        from amif_core.key.file import write_key  # Pillow and cryptography: installed with consent, before a run
        from amif_core.transforms.identifier import validate_identifier

        try:
            identifier = validate_identifier(identifier)
        except ValueError as error:
            raise InvalidInputError(coreMessage(error)) from error

        images = {}
        for role, node in ((MRI_ROLE, mriNode), (OTHER_ROLE, otherNode)):
            voxels, ijkToWorld, resampled = worldVoxels(node)
            if resampled:
                notice(_("'{name}' is under a non-linear or shearing transform; it was resampled through that "
                         "transform into world space.").format(name=node.GetName()))
            if role == OTHER_ROLE and np.ndim(voxels) == 4 and colour == COLOUR_GREY:
                voxels = luma(rgb_unit(voxels, OTHER_ROLE))
            images[role] = (sitkImageFromArray(voxels, ijkToWorld), ijkToWorld)
        mriImage, mriIjkToWorld = images[MRI_ROLE]
        result = self.engine.protect(mriImage, images[OTHER_ROLE][0], identifier, colourTable(otherNode, colour),
                                     device, progress, cancel, notice, ownerSecret=ownerSecret)
        stopIfCancelled(cancel)
        write_key(keyPath, result.key, passphrase=passphrase, force=overwriteKey)
        voxels = sitk.GetArrayViewFromImage(result.image)
        node = addScalarVolumeNode(self.scene, voxels, mriIjkToWorld, mriNode.GetName() + PROTECTED_SUFFIX)
        display.setWindowLevel(node, *(display.rgbWindowLevel(voxels) if voxels.ndim == 4 else
                                       display.fusionWindowLevel(voxels)))
        self._provenance(node, "protected", result.provenance, identifier)
        return node

    # ------------------------------------------------------------------ unlock

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
        problem = unlockBlocker(protectedNode, keyPath)
        if problem is not None:
            raise InvalidInputError(problem)
        from amif_core.key.file import open_key_file  # cryptography: installed with consent, before a run

        keyFile = open_key_file(keyFilePath(keyPath))  # the one read of the key file
        if passphrase is None and keyFile.needs_passphrase:
            raise InvalidInputError(_("This key file is protected by a passphrase. Enter it in the Passphrase "
                                      "field and click Unlock again."))
        key = keyFile.key(passphrase)
        ijkToRas = localIjkToRas(protectedNode)
        protectedImage = sitkImageFromArray(voxelArray(protectedNode), ijkToRas)
        result = self.engine.unlock(protectedImage, key, device, progress, cancel, notice)
        stopIfCancelled(cancel)
        voxels = sitk.GetArrayViewFromImage(result.image)
        baseName = re.sub(re.escape(PROTECTED_SUFFIX) + r"(_\d+)?$", "", protectedNode.GetName())
        node = addScalarVolumeNode(self.scene, voxels, ijkToRas, baseName + UNLOCKED_SUFFIX,
                                   protectedNode.GetParentTransformNode())
        protectedDisplay = protectedNode.GetDisplayNode()
        if voxels.ndim == 4:
            display.setWindowLevel(node, *display.rgbWindowLevel(voxels))
        elif protectedDisplay is not None and not protectedDisplay.GetAutoWindowLevel():
            display.setWindowLevel(node, protectedDisplay.GetWindow(), protectedDisplay.GetLevel())
        else:
            display.setWindowLevel(node, *display.fusionWindowLevel(voxels))
        self._provenance(node, "unlocked", result.provenance, key.identifier)
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
            raise InvalidInputError(_("This AMIF logic has no application logic, so it cannot show views."))
        return self.applicationLogic

