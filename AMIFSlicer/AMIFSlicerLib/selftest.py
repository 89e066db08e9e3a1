"""The module's self-test checks, on any MRML scene: Slicer's "Reload and Test" and CTest run them, and so
does the headless suite (on the slicer-core wheel's MRML).

Each check takes a ``unittest.TestCase`` for its assertions, the scene logic to
drive, a folder for key files, ``say(text)`` for progress (Slicer's
``delayDisplay``) and ``show`` to also show the layouts (only with a layout
manager).
"""
from __future__ import annotations

import unittest
from pathlib import Path
from typing import Callable

import numpy as np
import slicer

from amif_core.runtime import runner
from AMIFSlicerLib.errors import InvalidInputError
from AMIFSlicerLib.logic import AMIFSceneLogic
from AMIFSlicerLib.testdata import addPhantomPair
from AMIFSlicerLib.volumenodes import localIjkToRas, sitkImageFromArray, voxelArray


def cleanFusion(model, mriNode: slicer.vtkMRMLScalarVolumeNode, otherNode: slicer.vtkMRMLScalarVolumeNode,
                colourTable: str | None = "pet") -> np.ndarray:
    """The watermark-free fusion of two nodes (no parent transforms) on the MRI grid, (k, j, i) float32 in [0, 1],
    or (k, j, i, 3) RGB through ``colourTable`` (the panel's default for a PET; None: grey).

    Built independently of the Slicer logic: both nodes as SimpleITK images,
    fused by :func:`amif_core.evaluation.archive.clean_fusion` along the MRI's
    slice axis.
    """
    from amif_core.evaluation.archive import clean_fusion
    from amif_core.io.geometry import slice_axis

    mri = sitkImageFromArray(voxelArray(mriNode), localIjkToRas(mriNode))
    other = sitkImageFromArray(voxelArray(otherNode), localIjkToRas(otherNode))
    return clean_fusion(model, mri, other, slice_axis(mri), colourTable)


def requireDependencies(case: unittest.TestCase, testing: bool, install: Callable[[], object]) -> None:
    """Outside testing mode, ``install()`` what is missing (it asks first); in testing mode skip ``case`` without
    it, as testing mode installs nothing."""
    from AMIFSlicerLib.dependencies import missingRequirements

    missing = missingRequirements()
    if missing and testing:
        case.skipTest("AMIF's Python packages are not installed (" + ", ".join(r.specifier for r in missing)
                      + ") and testing mode installs nothing; install them first.")
    if missing:
        install()


def checkProtectAndUnlock(case: unittest.TestCase, logic: AMIFSceneLogic, workDir: Path,
                          say: Callable[[str], None], show: bool = False) -> None:
    """Protect an oblique, anisotropic MRI with a PET on another grid (in colour), then unlock it exactly."""
    say("Building synthetic MRI and PET")
    mri, pet = addPhantomPair(logic.scene)
    mriBefore, petBefore = voxelArray(mri).copy(), voxelArray(pet).copy()
    keyPath = Path(workDir) / "selftest.amifkey"

    say("Protecting")
    protected = logic.protect(mri, pet, keyPath, identifier="Self-test \u00a9", device=runner.CPU)
    case.assertEqual(protected.GetName(), "phantom T1 AMIF protected")
    case.assertTrue(np.array_equal(localIjkToRas(protected), localIjkToRas(mri)))
    case.assertEqual(voxelArray(protected).shape, voxelArray(mri).shape + (3,))  # a PET fuses in colour
    case.assertEqual(voxelArray(protected).dtype, np.uint8)  # 8-bit RGB, as an archive keeps it
    case.assertEqual(protected.GetAttribute("AMIF.identifier"), "Self-test \u00a9")
    case.assertTrue(keyPath.is_file())
    if show:
        logic.showComparison(mri, pet, protected)

    say("Unlocking")
    unlocked = logic.unlock(protected, keyPath, device=runner.CPU)
    case.assertEqual(unlocked.GetName(), "phantom T1 AMIF unlocked")
    case.assertTrue(np.array_equal(localIjkToRas(unlocked), localIjkToRas(mri)))
    from amif_core.evaluation.psnr import psnr

    clean = cleanFusion(logic.model(runner.CPU), mri, pet)
    case.assertGreaterEqual(psnr(voxelArray(unlocked), clean), 50.0, "unlocking must give back the clean fusion")
    case.assertLess(psnr(voxelArray(protected) / 255.0, clean), 40.0, "the protected volume must carry the identifier")
    case.assertTrue(np.array_equal(voxelArray(mri), mriBefore))
    case.assertTrue(np.array_equal(voxelArray(pet), petBefore))
    if show:
        logic.showUnlocked(protected, unlocked)
    keyPath.unlink()
    say("Protect and unlock passed")


def checkRejectsWrongInputs(case: unittest.TestCase, logic: AMIFSceneLogic, workDir: Path,
                            say: Callable[[str], None]) -> None:
    """A label map as input and a key of another volume give their own messages and add no node."""
    scene = logic.scene
    mri, pet = addPhantomPair(scene, mriShape=(10, 32, 28))
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    labels.SetAndObserveImageData(mri.GetImageData())
    keyPath = Path(workDir) / "selftest-wrong.amifkey"
    nodes = scene.GetNumberOfNodes()
    with case.assertRaises(InvalidInputError) as raised:
        logic.protect(labels, pet, keyPath, device=runner.CPU)
    case.assertIn("label map", str(raised.exception))
    case.assertEqual(scene.GetNumberOfNodes(), nodes)
    case.assertFalse(keyPath.exists())

    otherMri, otherPet = addPhantomPair(scene, mriShape=(10, 30, 28), seed=1)
    protected = logic.protect(mri, pet, keyPath, device=runner.CPU)
    otherKey = Path(workDir) / "selftest-other.amifkey"
    logic.protect(otherMri, otherPet, otherKey, device=runner.CPU)
    nodes = scene.GetNumberOfNodes()
    with case.assertRaises(Exception) as raised:
        logic.unlock(protected, otherKey, device=runner.CPU)
    case.assertIn("belongs to another volume", str(raised.exception))
    case.assertEqual(scene.GetNumberOfNodes(), nodes)
    keyPath.unlink()
    otherKey.unlink()
    say("Wrong inputs rejected")
