"""One-level 2D Haar wavelet transform with ``ptwt``, packed as 4 channels.

``haar_dwt`` maps (B, 1, H, W) to (B, 4, H/2, W/2) with channels
[approximation, horizontal, vertical, diagonal]; ``haar_idwt`` is its exact
inverse (to float32 rounding, about 5e-7). H and W must be even.
"""
from __future__ import annotations

import ptwt
import torch
from ptwt.constants import WaveletDetailTuple2d


def haar_dwt(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) float -> (B, 4, H/2, W/2) Haar coefficients; H and W even."""
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"Haar DWT needs even height and width, got {tuple(x.shape[-2:])}")
    approx, (horizontal, vertical, diagonal) = ptwt.wavedec2(x, "haar", level=1, mode="zero")
    return torch.cat([approx, horizontal, vertical, diagonal], dim=1)


def haar_idwt(bands: torch.Tensor) -> torch.Tensor:
    """(B, 4, h, w) Haar coefficients -> (B, 1, 2h, 2w) image; inverse of :func:`haar_dwt`."""
    approx, horizontal, vertical, diagonal = bands.split(1, dim=1)
    return ptwt.waverec2(
        (approx, WaveletDetailTuple2d(horizontal, vertical, diagonal)), "haar"
    )
