"""How a protected image is stored as integers, exactly: 16-bit grey and 8-bit RGB.

An archive (PACS, DICOM) and most viewers keep images as integers. So the
volume pipeline rounds the protected image to multiples of 1 / ``levels``
*before* its key is made (fingerprint, signature and one-time pad all see the
rounded image), and stores the integers 0..``levels``. Reading them back and
dividing by ``levels`` gives the very float32 image the key was made for, bit
for bit, whatever integer type held them.

- Grey: ``GREY_LEVELS`` = 32767, 15-bit fixed point in a uint16. The values
  fit int16 as well, so a re-save as signed 16-bit (as some DICOM exporters
  do) keeps every value. The rounding moves a voxel by at most 1.5e-5.
- Colour: ``RGB_LEVELS`` = 255, the 8-bit RGB of viewers and DICOM colour
  images; the rounding moves a channel by at most 0.002.

Torch-free.
"""
from __future__ import annotations

import numpy as np

GREY_LEVELS = 32767
RGB_LEVELS = 255
STORAGE_LEVELS = (GREY_LEVELS, RGB_LEVELS)


def levels_for(colour: bool) -> int:
    """The storage levels of a grey (``colour`` False) or RGB protected image."""
    return RGB_LEVELS if colour else GREY_LEVELS


def stored_dtype(levels: int) -> np.dtype:
    """The integer type AMIF writes for ``levels``: uint16 for grey, uint8 for RGB."""
    return np.dtype(np.uint8) if levels <= 255 else np.dtype(np.uint16)


def quantise(image: np.ndarray, levels: int) -> np.ndarray:
    """``image`` (any shape, float in [0, 1]) rounded to the nearest multiple of 1 / ``levels``: float32 in [0, 1]."""
    scale = np.float32(levels)
    return np.rint(np.clip(np.asarray(image, dtype=np.float32), 0, 1) * scale) / scale


def to_stored(image: np.ndarray, levels: int) -> np.ndarray:
    """The integers 0..``levels`` that hold ``image`` (float in [0, 1], as from :func:`quantise`), in
    :func:`stored_dtype`; same shape."""
    scale = np.float32(levels)
    return np.rint(np.clip(np.asarray(image, dtype=np.float32), 0, 1) * scale).astype(stored_dtype(levels))


def from_stored(voxels: np.ndarray, levels: int) -> np.ndarray:
    """The float32 image that stored integers ``voxels`` (any integer or float type holding 0..``levels``) stand
    for: ``voxels / levels``, same shape; exactly :func:`quantise`'s values for AMIF's own integers."""
    return np.asarray(voxels).astype(np.float32) / np.float32(levels)
