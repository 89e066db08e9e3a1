"""Protected nodes through an archive and back, on real MRML: saved as Slicer's Save does (the archetype storage
node), or as a DICOM series read back the way Slicer's DICOM module loads one, then unlocked by the panel's logic.

The slicer-core wheel has no DICOM module, so the series is written by
amif_core's DICOM writer from the node's voxels and geometry; Slicer's own
DICOM export (CreateDICOMSeries) is not available to run here.
"""
from __future__ import annotations

import numpy as np
import pytest
import slicer
from AMIFSlicerLib.selftest import cleanFusion
from AMIFSlicerLib.testdata import addPhantomPair, loadWithStorageNode
from AMIFSlicerLib.volumenodes import localIjkToRas, sitkImageFromArray, voxelArray

from amif_core.evaluation.psnr import psnr
from amif_core.atomic import write_atomically
from amif_core.io.dicom import dicom_series_output


@pytest.mark.parametrize("colour", ["grey", "auto"])
@pytest.mark.parametrize("store", ["nrrd", "nii.gz", "dicom"])
def test_a_protected_node_unlocks_after_a_save_or_a_dicom_round_trip(workspace, coreModel, colour: str,
                                                                     store: str) -> None:
    scene, logic = workspace.scene, workspace.logic
    mri, pet = addPhantomPair(scene, (6, 40, 36))
    keyPath = workspace.directory / "k.amifkey"
    protected = logic.protect(mri, pet, keyPath, device="cpu", colour=colour)
    assert voxelArray(protected).dtype == (np.uint16 if colour == "grey" else np.uint8)
    if store == "dicom":
        series = workspace.directory / "series"
        image = sitkImageFromArray(voxelArray(protected), localIjkToRas(protected))
        write_atomically([dicom_series_output(image, series, protected.GetAttribute("AMIF.identifier"))])
        files = sorted(series.glob("*.dcm"))
    else:
        files = [workspace.directory / f"protected.{store}"]
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
        scene.AddNode(storage)
        storage.SetFileName(str(files[0]))
        assert storage.WriteData(protected) == 1
    loaded = loadWithStorageNode(scene, files, protected.GetClassName())
    assert np.array_equal(voxelArray(loaded), voxelArray(protected))
    assert np.allclose(localIjkToRas(loaded), localIjkToRas(protected), atol=1e-4)
    unlocked = logic.unlock(loaded, keyPath, device="cpu")
    clean = cleanFusion(coreModel, mri, pet, colourTable=None if colour == "grey" else "pet")
    assert psnr(voxelArray(unlocked), clean) >= 50.0
