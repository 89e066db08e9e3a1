"""The key's codec: fixed-point codes of the key bands on the key support, and the one-time pad.

:func:`encode` turns the flow's key bands of a batch of slices into int16
codes on each slice's support with a per-slice, per-band origin and step;
:func:`decode` turns them back. The stored codes carry the one-time pad of
:func:`pad_seed` (:func:`apply_pad`), and so do the origins and steps
(:func:`pad_scale`, a second stream of the same seed): the key alone is
useless, since only the protected image derives the pad, and even the range
of the key values (which follows the covered content) stays hidden. Torch-free.
"""
from __future__ import annotations

import hashlib

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

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


CODE_STREAM, SCALE_STREAM = 0, 1  # the pad of the codes (and chroma codes), and the pad of their scales


def keystream(seed: bytes, start: int, count: int, stream: int = CODE_STREAM) -> np.ndarray:
    """``count`` uint16 words of ChaCha20 stream ``stream`` keyed by ``seed``, from word ``start`` on.

    The stream can be entered anywhere, so a volume's codes can be padded and
    unpadded one batch of slices at a time. ``stream`` (the nonce) keeps the
    codes' pad and the scales' pad (:data:`SCALE_STREAM`) apart.
    """
    first, skip = divmod(2 * start, 64)
    nonce = int(first).to_bytes(4, "little") + int(stream).to_bytes(4, "little") + bytes(8)
    encryptor = Cipher(algorithms.ChaCha20(seed, nonce), mode=None).encryptor()
    stream = encryptor.update(bytes(skip + 2 * count))[skip:]
    return np.frombuffer(stream, dtype="<u2").astype(np.uint16)


def apply_pad(codes: np.ndarray, seed: bytes, start: int, sign: int) -> np.ndarray:
    """``codes`` (n,) int16 plus (``sign`` 1) or minus (-1) the pad words ``start``.. modulo 2**16, as int16."""
    words = codes.view(np.uint16)
    pad = keystream(seed, start, codes.size)
    return (words + pad if sign > 0 else words - pad).astype(np.uint16).view(np.int16)


def scale_words(origin: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The float32 bits of :func:`encode`'s ``origin`` and ``step`` (d, 4), as (d, 4) uint32 each."""
    return (np.ascontiguousarray(origin, dtype="<f4").view("<u4").astype(np.uint32),
            np.ascontiguousarray(step, dtype="<f4").view("<u4").astype(np.uint32))


def pad_scale(origin: np.ndarray, step: np.ndarray, seed: bytes, sign: int) -> tuple[np.ndarray, np.ndarray]:
    """Origin and step words (D, 4) uint32 plus (``sign`` 1) or minus (-1) the scale pad, as (D, 4) uint32 each.

    Each slice takes 16 uint16 words of stream :data:`SCALE_STREAM`, from
    word 16 * slice on: its origins' words, then its steps'.
    """
    words = np.concatenate([origin, step], axis=1).astype("<u4").view("<u2").reshape(-1)
    pad = keystream(seed, 0, words.size, SCALE_STREAM)
    padded = (words + pad if sign > 0 else words - pad).astype("<u2").view("<u4").reshape(len(origin), 8)
    return padded[:, :4].astype(np.uint32), padded[:, 4:].astype(np.uint32)


def plain_scale(origin: np.ndarray, step: np.ndarray, seed: bytes | None) -> tuple[np.ndarray, np.ndarray]:
    """A key's origin and step words (D, 4) uint32 as float32 (D, 4) each, unpadded with ``seed``.

    ``seed`` None: the words are in the clear (keys of format 4 and earlier).
    Another image's seed gives arbitrary bits; those that are not finite
    floats come back as 0, so a wrong key unlocks to garbage, never to NaN.
    """
    if seed is not None:
        origin, step = pad_scale(origin, step, seed, -1)
    return tuple(np.nan_to_num(np.ascontiguousarray(words, dtype="<u4").view("<f4").astype(np.float32), nan=0.0,
                               posinf=0.0, neginf=0.0) for words in (origin, step))


def support_masks(masks: np.ndarray, padded: tuple[int, int]) -> np.ndarray:
    """Key support of identifier masks: (D, H, W) {0, 1} -> (D, Hp/2, Wp/2) bool.

    The masks are replicate-padded to ``padded`` = (Hp, Wp), as the engine
    pads them, and a position is in the support when its 2x2 block touches the
    mask (the numpy twin of :func:`amif_core.networks.csamic.key_support`).
    """
    d, h, w = masks.shape
    full = np.pad(np.asarray(masks) > 0, ((0, 0), (0, padded[0] - h), (0, padded[1] - w)), mode="edge")
    return full.reshape(d, padded[0] // 2, 2, padded[1] // 2, 2).any(axis=(2, 4))


def encode(bands: np.ndarray, supports: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes of a batch of slices' key bands: ``bands`` (d, 4, h, w) float, ``supports`` (d, h, w) bool.

    Returns ``codes`` (n,) int16 (slice by slice, band by band, each band's
    support positions row-major), ``origin`` and ``step`` (d, 4) float32.
    """
    codes, origin, step = [], np.zeros((len(bands), 4), np.float32), np.zeros((len(bands), 4), np.float32)
    for index, support in enumerate(supports):
        for band in range(4):
            band_codes, origin[index, band], step[index, band] = quantise(bands[index, band][support])
            codes.append(band_codes)
    return (np.concatenate(codes) if codes else np.zeros(0, np.int16)), origin, step


def decode(codes: np.ndarray, origin: np.ndarray, step: np.ndarray, supports: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode`: key bands (d, 4, h, w) float32, zero off each slice's support.

    The scales of a wrong key may overflow float32; those values become inf
    quietly (the unlock then yields garbage, as a wrong key should).
    """
    d, h, w = supports.shape
    bands = np.zeros((d, 4, h, w), dtype=np.float32)
    cursor = 0
    for index, support in enumerate(supports):
        count = int(support.sum())
        for band in range(4):
            with np.errstate(over="ignore", invalid="ignore"):
                bands[index, band][support] = dequantise(codes[cursor : cursor + count], origin[index, band],
                                                         step[index, band])
            cursor += count
    return bands


def encode_chroma(cbcr: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Codes of the chroma under the identifier: ``cbcr`` (d, H, W, 2) in [-0.5, 0.5], ``masks`` (d, H, W) {0, 1}.

    Returns (2n,) int16, slice by slice: the Cb of the slice's n mask pixels
    (row-major), then their Cr; fixed point with step 1 / (2 * CODE_MAX),
    so the error is at most 7.6e-6.
    """
    parts = []
    for plane, mask in zip(cbcr, masks):
        covered = plane[np.asarray(mask) > 0]
        parts.append(np.clip(np.rint(covered.T.reshape(-1) * (2 * CODE_MAX)), -CODE_MAX, CODE_MAX).astype(np.int16))
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)


def decode_chroma(codes: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_chroma`: (d, H, W, 2) float32 chroma, zero off each slice's mask."""
    out = np.zeros(np.shape(masks) + (2,), dtype=np.float32)
    cursor = 0
    for plane, mask in zip(out, masks):
        covered = np.asarray(mask) > 0
        count = int(covered.sum())
        values = codes[cursor : cursor + 2 * count].astype(np.float32) / np.float32(2 * CODE_MAX)
        plane[covered] = values.reshape(2, count).T
        cursor += 2 * count
    return out


def code_counts(supports: np.ndarray) -> np.ndarray:
    """Codes per slice of (D, h, w) bool supports: (D,) int64, 4 bands each."""
    return 4 * supports.reshape(len(supports), -1).sum(axis=1)
