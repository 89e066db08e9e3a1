"""Rendered slice views (vtkMRMLSliceLogic, as Slicer blends them): the identifier shows before unlocking only."""
from __future__ import annotations

import numpy as np
from AMIFSlicerLib.selftest import cleanFusion
from AMIFSlicerLib import display
from AMIFSlicerLib.volumenodes import addScalarVolumeNode, localIjkToRas

from amif_core.key.file import read_key

STROKE_MARGIN_PIXELS = 4  # rendered strokes blur (linear interpolation) this far beyond the mask


def grey(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64).mean(axis=2)


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    grown = mask.copy()
    for _ in range(pixels):
        grown[1:] |= grown[:-1]
        grown[:-1] |= grown[1:]
        grown[:, 1:] |= grown[:, :-1]
        grown[:, :-1] |= grown[:, 1:]
    return grown


def test_rendered_protected_view_shows_the_identifier_and_unlocked_view_does_not(protectedPhantom, coreModel):
    space = protectedPhantom
    key = read_key(space.keyPath)
    geometry = localIjkToRas(space.mri)
    mask = np.moveaxis(coreModel.identifier_mask(key), 0, key.axis).astype(np.float32)
    cleanNode = addScalarVolumeNode(space.scene, cleanFusion(coreModel, space.mri, space.pet), geometry, "clean")
    maskNode = addScalarVolumeNode(space.scene, mask, geometry, "identifier mask")
    display.setWindowLevel(maskNode, 1.0, 0.5)
    maskNode.GetDisplayNode().SetInterpolate(False)

    unlocked = space.logic.unlock(space.protected, space.keyPath, device="cpu")
    unlockedDisplay = unlocked.GetDisplayNode()  # the clean fusion is float, as the unlocked one
    display.setWindowLevel(cleanNode, unlockedDisplay.GetWindow(), unlockedDisplay.GetLevel())
    space.logic.showUnlocked(space.protected, unlocked)
    protectedView = grey(space.views.render(display.PROTECTED_VIEW.name))
    unlockedView = grey(space.views.render(display.UNLOCKED_VIEW.name))
    composite = space.views.sliceLogic(display.UNLOCKED_VIEW.name).GetSliceCompositeNode()
    composite.SetBackgroundVolumeID(cleanNode.GetID())
    cleanView = grey(space.views.render(display.UNLOCKED_VIEW.name))
    composite.SetBackgroundVolumeID(maskNode.GetID())
    strokes = grey(space.views.render(display.UNLOCKED_VIEW.name)) > 127
    composite.SetBackgroundVolumeID(unlocked.GetID())

    away = ~dilate(strokes, STROKE_MARGIN_PIXELS)
    assert strokes.sum() > 500, "the identifier must cross the rendered slice"
    protectedDifference = np.abs(protectedView - cleanView)
    protectedOn, protectedOff = protectedDifference[strokes].mean(), protectedDifference[away].mean()
    assert protectedOn > 10.0, f"identifier strokes differ by only {protectedOn:.1f} grey levels from the clean fusion"
    assert protectedOn > 2.0 * protectedOff + 1.0, "the difference must follow the identifier's strokes"

    unlockedDifference = np.abs(unlockedView - cleanView)
    unlockedOn, unlockedOff = unlockedDifference[strokes].mean(), unlockedDifference[away].mean()
    assert unlockedOn < 0.2 * protectedOn and unlockedOn < unlockedOff + 2.0, "no trace of the strokes may remain"
    assert unlockedDifference.mean() < 3.0  # about 2 grey levels is what 50 dB PSNR allows at this window
