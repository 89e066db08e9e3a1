"""The AMIF key: what unlocks one protected image, and how it is checked.

Key material is the coupling's y2 on the key support (the 2x2 blocks the
identifier touches), stored as int16 fixed-point codes under a one-time pad
that only the protected image itself can derive (:func:`pad_seed`). So the key
alone is useless by construction: its codes are a ChaCha20 stream to anyone
without the image. Everything else here (fingerprint, signature,
normalisation, identifier, offsets) describes the image and is safe to show.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from amif_core.errors import ImageModifiedError, KeyMismatchError, ModelMismatchError

SIGNATURE_GRID = 8
CODE_MAX = 32767
PAD_DOMAIN = b"AMIF key pad v1\n"
PAD_LEVELS = 65535  # the pad is derived from the image rounded to 16 bits, so a 16-bit copy derives it too


def quantise(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Fixed-point codes of one band's key values: ``values`` (n,) float, any range.

    Returns ``codes`` (n,) int16 in [-32767, 32767], ``origin`` and ``step``,
    so that ``origin + codes * step`` (see :func:`dequantise`) is within half
    a step, (max - min) / 131068, of ``values``: the error does not depend on
    the value, unlike float16's.
    """
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return np.zeros(0, np.int16), 0.0, 0.0
    low, high = float(data.min()), float(data.max())
    origin, step = (low + high) / 2, (high - low) / (2 * CODE_MAX)
    codes = np.rint((data - origin) / (step if step > 0 else 1.0))
    return np.clip(codes, -CODE_MAX, CODE_MAX).astype(np.int16), origin, step


def dequantise(codes: np.ndarray, origin: float, step: float) -> np.ndarray:
    """Key values (n,) float32 from :func:`quantise`'s ``codes``, ``origin`` and ``step``."""
    return (np.float32(origin) + codes.astype(np.float32) * np.float32(step)).astype(np.float32)


def pad_seed(image: np.ndarray) -> bytes:
    """The 32-byte seed of the key's one-time pad, derived from the protected image itself.

    SHA-256 of a domain tag, the shape, and the image rounded to 16 bits
    (``image`` (H, W) or (D, H, W), values in [0, 1]). Nobody without the
    image can compute it, and the key file never holds it, so the stored key
    codes alone are indistinguishable from random bytes.
    """
    data = np.asarray(image, dtype=np.float32)
    digest = hashlib.sha256(PAD_DOMAIN + repr(tuple(data.shape)).encode())
    for plane in data.reshape((-1,) + data.shape[-2:]):
        digest.update(np.rint(np.clip(plane, 0, 1) * PAD_LEVELS).astype("<u2").tobytes())
    return digest.digest()


def keystream(seed: bytes, start: int, count: int) -> np.ndarray:
    """``count`` uint16 words of the ChaCha20 stream keyed by ``seed``, from word ``start`` on.

    The stream can be entered anywhere, so a volume's codes can be padded and
    unpadded one batch of slices at a time.
    """
    first, skip = divmod(2 * start, 64)
    nonce = int(first).to_bytes(4, "little") + bytes(12)
    encryptor = Cipher(algorithms.ChaCha20(seed, nonce), mode=None).encryptor()
    stream = encryptor.update(bytes(skip + 2 * count))[skip:]
    return np.frombuffer(stream, dtype="<u2").astype(np.uint16)


def apply_pad(codes: np.ndarray, seed: bytes, start: int, sign: int) -> np.ndarray:
    """``codes`` (n,) int16 plus (``sign`` 1) or minus (-1) the pad words ``start``.. modulo 2**16, as int16."""
    words = codes.view(np.uint16)
    pad = keystream(seed, start, codes.size)
    return (words + pad if sign > 0 else words - pad).astype(np.uint16).view(np.int16)


def support_masks(masks: np.ndarray, padded: tuple[int, int]) -> np.ndarray:
    """Key support of identifier masks: (D, H, W) {0, 1} -> (D, Hp/2, Wp/2) bool.

    The masks are replicate-padded to ``padded`` = (Hp, Wp), as the engine
    pads them, and a position is in the support when its 2x2 block touches the
    mask (the numpy twin of :func:`amif_core.networks.csamic.key_support`).
    """
    d, h, w = masks.shape
    full = np.pad(np.asarray(masks) > 0, ((0, 0), (0, padded[0] - h), (0, padded[1] - w)), mode="edge")
    return full.reshape(d, padded[0] // 2, 2, padded[1] // 2, 2).any(axis=(2, 4))


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

    Key material, with D slices padded to Hp x Wp (multiples of 8):

    - ``codes``: (N,) int16, the flow's y2 on the key support of every slice
      (:func:`support_masks`; slice by slice, band by band, row-major), as
      fixed-point codes (:func:`quantise`) plus the one-time pad of
      :func:`pad_seed` modulo 2**16;
    - ``origin`` and ``step``: (D, 4) float32, each slice's and band's
      fixed-point scale.

    The rest describes the image and is safe to show: ``signature`` (D, 8, 8)
    float32 (:func:`image_signature`), ``mask_offsets`` (D, 2) int64 (the
    identifier crop offset per slice), fingerprint, model, identifier and
    normalisation.
    """

    codes: np.ndarray
    origin: np.ndarray
    step: np.ndarray
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
        return int(self.origin.shape[0])

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
