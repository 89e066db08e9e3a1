"""Inpainting attacks: fill the identifier strokes from the pixels around them.

The attacker is given a mask of the strokes (the true one, or an estimate from
:mod:`~amif_core.evaluation.attacks.mask_estimation`). The mask is first dilated by
:data:`MASK_DILATION_PX` pixel (3x3 square), so the stroke borders, where the
coupling network blends ink and content, are filled too rather than used as
the boundary the fill starts from.

* Telea and Navier-Stokes: ``cv2.inpaint`` on the image quantised to 8 bits
  (what OpenCV's inpainting takes), radius :data:`INPAINT_RADIUS` pixels; the
  result is mapped back to [0, 1].
* Biharmonic: ``skimage.restoration.inpaint_biharmonic`` in float (slow on
  large images, fine on 256 x 256).

Each takes a grey (H, W) or an RGB (H, W, 3) image; RGB is filled with all
three channels at once, as OpenCV and scikit-image do.
"""
from __future__ import annotations

import numpy as np

from amif_core.evaluation.attacks import require

cv2 = require("cv2")
restoration = require("skimage.restoration")

INPAINT_RADIUS = 3
MASK_DILATION_PX = 1


def dilate(mask: np.ndarray, pixels: int = MASK_DILATION_PX) -> np.ndarray:
    """Grow a (H, W) mask (non-zero = stroke) by ``pixels`` with a 3x3 square; returns uint8 {0, 1}."""
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    return cv2.dilate(binary, np.ones((3, 3), np.uint8), iterations=pixels) if pixels > 0 else binary


def _opencv(image: np.ndarray, mask: np.ndarray, method: int) -> np.ndarray:
    grey = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    filled = cv2.inpaint(grey, dilate(mask), INPAINT_RADIUS, method)
    return filled.astype(np.float32) / 255.0


def inpaint_telea(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """OpenCV Telea (fast marching) inpainting of ``mask``.

    ``image``: (H, W) or (H, W, 3) float in [0, 1]; ``mask``: (H, W), non-zero
    on strokes. Returns float32 of the image's shape in [0, 1] on 8-bit levels.
    """
    return _opencv(image, mask, cv2.INPAINT_TELEA)


def inpaint_navier_stokes(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """OpenCV Navier-Stokes inpainting of ``mask``; same contract as :func:`inpaint_telea`."""
    return _opencv(image, mask, cv2.INPAINT_NS)


def inpaint_biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """scikit-image biharmonic inpainting of ``mask``.

    ``image``: (H, W) or (H, W, 3) float in [0, 1]; ``mask``: (H, W), non-zero
    on strokes. Returns float32 of the image's shape in [0, 1].
    """
    image = np.asarray(image, np.float64)
    filled = restoration.inpaint_biharmonic(image, dilate(mask).astype(bool),
                                            channel_axis=-1 if image.ndim == 3 else None)
    return np.clip(filled, 0.0, 1.0).astype(np.float32)
