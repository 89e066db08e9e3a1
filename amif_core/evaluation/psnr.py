"""PSNR of images in [0, 1], grey or per RGB channel: numpy only, so the Slicer self-test can use it before
SciPy (which the evaluation needs) is there."""
from __future__ import annotations

import numpy as np


def psnr(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of two [0, 1] float arrays (peak 1), optionally over ``mask`` > 0; inf if equal."""
    diff = (np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2
    mse = float(diff[mask > 0].mean() if mask is not None else diff.mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def channel_psnr(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> float:
    """The lowest per-channel :func:`psnr` of two (H, W, 3) RGB images (of (H, W) grey ones: their PSNR)."""
    if np.ndim(x) == 2:
        return psnr(x, y, mask)
    return min(psnr(x[..., c], y[..., c], mask) for c in range(np.shape(x)[-1]))
