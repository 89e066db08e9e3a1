"""The AMIF key: what unlocks one protected image, and how it is checked.

Key material is ``bands`` (the coupling's y2 per slice, stored as int16 codes
with a per-slice, per-band origin and step: see :func:`quantise_bands`), the padding
border of the raw protected image and the few values the [0, 1] clip removed.
Everything else here (fingerprint, signature, normalisation, identifier,
offsets) describes the image and is safe to show.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from amif_core.errors import ImageModifiedError, KeyMismatchError, ModelMismatchError

SIGNATURE_GRID = 8
BAND_CODE_MAX = 32767


def quantise_bands(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point codes of key bands: ``values`` (N, 4, h, w) float32, any range.

    Returns ``codes`` (N, 4, h, w) int16 in [-32767, 32767] and ``scale``
    (N, 4, 2) float32 holding each band's origin and step, so that
    ``origin + codes * step`` (see :func:`dequantise_bands`) is within half a
    step, (max - min) / 131068, of ``values``. Unlike float16, whose step
    grows with magnitude (0.125 at 200), the error does not depend on the
    value, which keeps unlock within half an 8-bit grey level of the clean fusion.
    """
    data = np.asarray(values, dtype=np.float64)
    low, high = data.min(axis=(2, 3)), data.max(axis=(2, 3))
    origin = (low + high) / 2
    step = (high - low) / (2 * BAND_CODE_MAX)
    safe = np.where(step > 0, step, 1.0)
    codes = np.rint((data - origin[..., None, None]) / safe[..., None, None])
    codes = np.clip(codes, -BAND_CODE_MAX, BAND_CODE_MAX).astype(np.int16)
    return codes, np.stack([origin, step], axis=-1).astype(np.float32)


def dequantise_bands(codes: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Key band values (N, 4, h, w) float32 from :func:`quantise_bands`'s ``codes`` and ``scale``."""
    origin, step = scale[..., 0, None, None], scale[..., 1, None, None]
    return (origin + codes.astype(np.float32) * step).astype(np.float32)


def image_fingerprint(image: np.ndarray) -> str:
    """SHA-256 hex of a protected image: its shape, then its float32 C-order bytes."""
    data = np.ascontiguousarray(image, dtype=np.float32)
    digest = hashlib.sha256(repr(tuple(data.shape)).encode())
    for plane in data.reshape((-1,) + data.shape[-2:]):
        digest.update(plane.tobytes())
    return digest.hexdigest()


def image_signature(image: np.ndarray) -> np.ndarray:
    """Coarse per-slice summary: (D, 8, 8) float32 means of an 8x8 grid of blocks.

    It survives re-saving at lower precision, so a failing fingerprint can be
    told apart as "this image, modified" or "another image". ``image`` is
    (H, W) or (D, H, W).
    """
    volume = np.asarray(image, dtype=np.float32).reshape((-1,) + np.shape(image)[-2:])
    rows = np.array_split(np.arange(volume.shape[1]), SIGNATURE_GRID)
    cols = np.array_split(np.arange(volume.shape[2]), SIGNATURE_GRID)
    out = np.zeros((volume.shape[0], SIGNATURE_GRID, SIGNATURE_GRID), dtype=np.float32)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            if len(r) and len(c):
                out[:, i, j] = volume[:, r[0] : r[-1] + 1, c[0] : c[-1] + 1].mean(axis=(1, 2))
    return out


def short(fingerprint: str) -> str:
    """The first 12 hex digits of a fingerprint, for messages."""
    return fingerprint[:12]


@dataclass
class Key:
    """Everything needed to unlock one protected image of shape ``shape``.

    Shapes, with D slices of H x W padded to Hp x Wp (multiples of 8):

    - ``bands``: (D, 4, Hp/2, Wp/2) int16 and ``band_scale``: (D, 4, 2)
      float32, the key tensors as fixed-point codes (:func:`quantise_bands`);
    - ``border_bottom``: (D, Hp-H, Wp) float32 and ``border_right``:
      (D, H, Wp-W) float32, the raw protected image in the padding;
    - ``clip_index`` (N,) int64 flat indices into the (D, H, W) image and
      ``clip_residual`` (N,) float32, what clipping to [0, 1] removed there;
    - ``signature``: (D, 8, 8) float32, see :func:`image_signature`;
    - ``mask_offsets``: (D, 2) int64, the identifier crop offset per slice.
    """

    bands: np.ndarray
    band_scale: np.ndarray
    border_bottom: np.ndarray
    border_right: np.ndarray
    clip_index: np.ndarray
    clip_residual: np.ndarray
    shape: tuple[int, ...]
    fingerprint: str
    signature: np.ndarray
    model_id: str
    identifier: str
    identifier_style: dict
    normalisation: dict
    mask_offsets: np.ndarray
    created_utc: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))

    @property
    def slices(self) -> int:
        return int(self.bands.shape[0])

    def band_values(self, part: slice = slice(None)) -> np.ndarray:
        """The key bands of slices ``part``: (d, 4, Hp/2, Wp/2) float32."""
        return dequantise_bands(self.bands[part], self.band_scale[part])

    def check(self, image: np.ndarray, model_id: str) -> None:
        """Raise if this key cannot unlock ``image`` with the model ``model_id``.

        ModelMismatchError: made by other weights. KeyMismatchError: made for
        another image. ImageModifiedError: made for this image, but the image
        was changed since (edited, or re-saved at lower precision).
        """
        if model_id != self.model_id:
            raise ModelMismatchError(
                f"This key was made by AMIF weights {short(self.model_id)}, but the loaded weights are "
                f"{short(model_id)}. Unlock with the weights that protected the image."
            )
        if tuple(np.shape(image)) != tuple(self.shape):
            raise KeyMismatchError(
                f"This key is for an image of shape {tuple(self.shape)}, but the image has shape "
                f"{tuple(np.shape(image))}. Use the key that was written with this protected image."
            )
        actual = image_fingerprint(image)
        if actual == self.fingerprint:
            return
        if signatures_match(image_signature(image), self.signature):
            raise ImageModifiedError(
                f"The protected image was modified after it was protected (fingerprint {short(actual)}, "
                f"key expects {short(self.fingerprint)}): it was edited, resampled or re-saved at lower "
                "precision. Unlock the original float32 protected file."
            )
        raise KeyMismatchError(
            f"This key belongs to another image: the image's fingerprint is {short(actual)}, "
            f"the key expects {short(self.fingerprint)}. Use the key that was written with this protected image."
        )


def signatures_match(a: np.ndarray, b: np.ndarray, tolerance: float = 0.02) -> bool:
    """True when two :func:`image_signature` arrays describe the same image up to small edits."""
    if a.shape != b.shape:
        return False
    return float(np.abs(a - b).mean()) <= tolerance and float(np.abs(a - b).max()) <= 10 * tolerance
