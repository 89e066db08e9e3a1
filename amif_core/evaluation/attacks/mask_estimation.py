"""Estimating the identifier mask from the protected image alone.

AMIF draws the identifier with ink chosen against the local content (bright
ink on dark background, dark ink on bright tissue, at least about 0.45 apart),
so its strokes are near-saturated and contrast sharply with their
surroundings. The estimate:

1. background: a median filter over a window of :data:`BACKGROUND_WINDOW` of
   the smaller image side (41 px on 256 x 256; computed at half resolution),
   wide enough that the thin strokes, which cover well under half of any such
   window, do not move it;
2. expected polarity: bright ink where the background is below 0.5, dark ink
   elsewhere; the contrast is ``p - background`` (bright ink) or
   ``background - p`` (dark ink), and is kept only where ``p`` itself is
   near-saturated (within :data:`SATURATION` of 1 or 0);
3. hysteresis threshold of that contrast (seeds above :data:`HIGH_CONTRAST`,
   grown through pixels above :data:`LOW_CONTRAST`), then connected components
   smaller than :data:`MIN_AREA_FRACTION` of the image (12 px on 256 x 256)
   are dropped as noise.

The attack then dilates the estimate by one pixel and inpaints it (Telea),
exactly as with the true mask.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from amif_core.evaluation.attacks import require

cv2 = require("cv2")
filters = require("skimage.filters")

BACKGROUND_WINDOW = 0.16
SATURATION = 0.2
LOW_CONTRAST, HIGH_CONTRAST = 0.15, 0.3
MIN_AREA_FRACTION = 12 / 256**2


def background(image: np.ndarray) -> np.ndarray:
    """Stroke-free local background of a (H, W) float [0, 1] image; float32 (H, W).

    Median over a window of :data:`BACKGROUND_WINDOW` x min(H, W), computed on
    the image downsampled by 2 (area average) and upsampled back (bilinear).
    """
    h, w = image.shape
    small = cv2.resize(np.asarray(image, np.float32), (max(1, w // 2), max(1, h // 2)),
                       interpolation=cv2.INTER_AREA)
    window = 2 * max(1, round(BACKGROUND_WINDOW * min(h, w) / 4)) + 1
    median = ndimage.median_filter(small, size=window, mode="reflect")
    return cv2.resize(median, (w, h), interpolation=cv2.INTER_LINEAR)


def stroke_contrast(image: np.ndarray) -> np.ndarray:
    """Per-pixel evidence of identifier ink, float32 (H, W) in [-1, 1].

    ``image``: (H, W) float in [0, 1]. The contrast to :func:`background` in the
    expected ink polarity, zeroed where the pixel is not near-saturated.
    """
    p = np.asarray(image, np.float32)
    base = background(p)
    bright_ink = base < 0.5
    contrast = np.where(bright_ink, p - base, base - p)
    saturated = np.where(bright_ink, p >= 1 - SATURATION, p <= SATURATION)
    return np.where(saturated, contrast, 0.0).astype(np.float32)


def estimate_mask(protected: np.ndarray) -> np.ndarray:
    """Estimated identifier mask of a protected (H, W) float [0, 1] image; uint8 {0, 1} (H, W), not dilated."""
    strokes = filters.apply_hysteresis_threshold(stroke_contrast(protected), LOW_CONTRAST, HIGH_CONTRAST)
    labels, _ = ndimage.label(strokes, structure=np.ones((3, 3)))
    keep = np.bincount(labels.ravel()) >= max(3, round(MIN_AREA_FRACTION * strokes.size))
    keep[0] = False
    return keep[labels].astype(np.uint8)


def precision_recall(estimated: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """Pixel precision and recall of an estimated (H, W) mask against the true one (non-zero = stroke).

    NaN where undefined (an empty estimate's precision, an empty true mask's recall).
    """
    est, ref = np.asarray(estimated) > 0, np.asarray(true) > 0
    hits = float(np.logical_and(est, ref).sum())
    return (hits / est.sum() if est.any() else float("nan"), hits / ref.sum() if ref.any() else float("nan"))
