"""Classical image-processing attacks: median filtering and JPEG re-encoding.

Neither knows where the identifier is: a median filter removes structures
thinner than about half its window, JPEG drops high-frequency detail. Both
work on the image as an 8-bit picture would be shared: grey (H, W), or RGB
(H, W, 3), each channel filtered on its own and JPEG coded in colour.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

MEDIAN_SIZES = (3, 5)
JPEG_QUALITIES = (95, 75, 50)


def median(image: np.ndarray, size: int) -> np.ndarray:
    """Median filter over a ``size`` x ``size`` window (edges reflected).

    ``image``: (H, W) or (H, W, 3) float in [0, 1]. Returns float32 of its shape in [0, 1].
    """
    image = np.asarray(image, np.float32)
    return ndimage.median_filter(image, size=(size, size) + (1,) * (image.ndim - 2), mode="reflect")


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Re-encode as an 8-bit JPEG of ``quality`` (1-95) with Pillow and decode it again.

    ``image``: (H, W) grey or (H, W, 3) RGB float in [0, 1]. Returns float32 of its shape in [0, 1]
    on 8-bit levels.
    """
    grey = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float32) / 255.0
