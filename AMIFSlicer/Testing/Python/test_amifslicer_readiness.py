"""What the panel is offered and told (AMIFSlicerLib.readiness) on real MRML: preselection, blockers, the default
key place, and the volumes the selectors do not offer."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
import vtk
from AMIFSlicerLib import display, readiness
from AMIFSlicerLib.errors import InvalidInputError
from AMIFSlicerLib.testdata import addPhantomPair
from AMIFSlicerLib.volumenodes import addScalarVolumeNode

SMALL_MRI_SHAPE = (6, 24, 20)


def test_panel_helpers_preselect_and_explain(workspace):
    scene, logic = workspace.scene, workspace.logic
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "segmentation")
    labels.SetAndObserveImageData(vtk.vtkImageData())
    ct = addScalarVolumeNode(scene, np.full((4, 8, 8), -1000, np.int16), np.eye(4), "head scan")
    mri, pet = addPhantomPair(scene, SMALL_MRI_SHAPE)
    pet.SetName("FDG_PET")
    assert display.guessModality(ct) == display.CT
    assert display.guessModality(pet) == display.PET
    assert display.guessModality(mri) == display.MR
    assert readiness.suggestInputs(logic.scene) == (mri, ct)  # the first CT/PET/SPECT volume in the scene

    assert readiness.protectBlocker(None, pet, "AMIF", "k.amifkey") == "Select the MRI."
    assert "label map" in readiness.protectBlocker(labels, pet, "AMIF", "k.amifkey")
    assert readiness.protectBlocker(mri, pet, "  ", "k.amifkey").startswith("Enter the identifier text")
    assert readiness.protectBlocker(mri, pet, "AMIF", None) == "Choose where to save the key file."
    assert "does not exist" in readiness.protectBlocker(mri, pet, "AMIF", workspace.directory / "no" / "k.amifkey")
    assert readiness.protectBlocker(mri, pet, "AMIF", workspace.directory / "k.amifkey") is None
    assert readiness.unlockBlocker(mri, None) == "Choose the key file."

    sceneFolder = workspace.directory / "Slicer scenes"
    sceneFolder.mkdir()
    scene.SetRootDirectory(str(sceneFolder))
    place = readiness.defaultKeyPlace(logic.scene, mri)  # a node made in memory: no file of its own
    assert place.path == sceneFolder / "phantom T1 AMIF key.amifkey" and "scene's folder" in place.reason
    place.path.write_bytes(b"someone's key")
    again = readiness.defaultKeyPlace(logic.scene, mri, now=datetime(2026, 3, 14, 9, 26, 53))
    assert again.path == sceneFolder / "phantom T1 AMIF key 2026-03-14 092653.amifkey"
    assert "exists there already" in again.reason and place.path.read_bytes() == b"someone's key"

    mriFolder = workspace.directory / "patient 7"
    mriFolder.mkdir()
    mri.AddDefaultStorageNode()
    mri.GetStorageNode().SetFileName(str(mriFolder / "t1.nrrd"))  # as after loading the MRI from that file
    place = readiness.defaultKeyPlace(logic.scene, mri)
    assert place.path == mriFolder / "phantom T1 AMIF key.amifkey" and place.reason == "next to the MRI's file"


def test_multi_frame_volumes_are_named_and_hidden_volumes_are_explained(workspace):
    scene, logic = workspace.scene, workspace.logic
    mri, pet = addPhantomPair(scene, SMALL_MRI_SHAPE)
    frames = vtk.vtkImageData()
    frames.SetDimensions(20, 24, 6)
    frames.AllocateScalars(vtk.VTK_FLOAT, 10)
    dynamic = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "dynamic PET")
    dynamic.SetAndObserveImageData(frames)
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "brain labels")
    labels.SetAndObserveImageData(mri.GetImageData())
    with pytest.raises(InvalidInputError, match=r"'dynamic PET' is a 4D \(multi-frame\) volume with 10 frames"):
        logic.protect(mri, dynamic, workspace.directory / "k.amifkey", device="cpu")
    hidden = readiness.volumesNotOffered(logic.scene)
    assert len(hidden) == 2
    assert any("'dynamic PET' is a 4D" in line for line in hidden)
    assert any("'brain labels' is a label map" in line for line in hidden)
