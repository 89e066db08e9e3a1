"""Colour for PET/SPECT fusion: BT.601 luma and chroma, and colour tables whose luma rises with uptake.

AMIF fuses the MRI with the luma of a colour image and puts the colour
image's chroma back, as the MMIF literature does (RGB to YCbCr, fuse Y,
keep Cb/Cr). The transform is ITU-R BT.601 as in OpenCV's YCrCb, centred
(Cb and Cr in [-0.5, 0.5]); its inverse is the exact matrix inverse. A scalar
PET or SPECT is first mapped through one of :data:`COLOUR_TABLES`.

:func:`compose` makes the colour fusion a radiologist reads. The fused luma
alone fails them twice: it hides a hot spot in bright white matter (the spot
and the tissue round it are both near white, and a bright luma can carry
almost no chroma), and where uptake is diffuse it is the scan's luma, not the
MRI's, so the anatomy under it is gone, and a cold defect wherever the MRI is
brighter. So the luma is split in two scales: its base (blurred) leans on
the partner, which carries hot spots and defects, and its detail is the MRI's
or the fusion's, whichever has more there, so the anatomy stays whatever the
uptake. The chroma is then shrunk only as far as the RGB gamut needs,
keeping that luma and the hue. Torch-free.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from amif_core.errors import InputError

LUMA = np.array([0.299, 0.587, 0.114])
_FORWARD = np.array([LUMA, 0.564 * (np.array([0.0, 0.0, 1.0]) - LUMA), 0.713 * (np.array([1.0, 0.0, 0.0]) - LUMA)])
_INVERSE = np.linalg.inv(_FORWARD)


def _table(points: list[tuple[float, tuple[float, float, float]]]) -> np.ndarray:
    """A (256, 3) float32 table linear between control points (position in [0, 1], RGB in [0, 1])."""
    positions = np.array([p for p, _ in points])
    colours = np.array([c for _, c in points])
    x = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(x, positions, colours[:, c]) for c in range(3)], axis=1).astype(np.float32)


COLOUR_TABLES: dict[str, np.ndarray] = {
    # Hot iron (DICOM PS3.6 "Hot Iron", the look of Slicer's PET tables): black, red, yellow, white.
    "pet": _table([(0.0, (0.0, 0.0, 0.0)), (0.5, (1.0, 0.0, 0.0)), (0.75, (1.0, 0.5, 0.0)), (1.0, (1.0, 1.0, 1.0))]),
    # A rainbow whose luma rises: black, blue, teal, green, yellow, white.
    "spect": _table([(0.0, (0.0, 0.0, 0.0)), (0.2, (0.1, 0.1, 0.7)), (0.4, (0.0, 0.5, 0.6)), (0.6, (0.2, 0.8, 0.1)),
                     (0.8, (1.0, 0.9, 0.0)), (1.0, (1.0, 1.0, 1.0))]),
}
TABLE_LOOKS = {"pet": "hot iron", "spect": "rainbow"}  # how each table looks, for the front ends' option lists
DEFAULT_TABLE = "pet"
DETAIL_SIGMA_PX = 3.0  # the Gaussian that splits a slice's luma into base and detail, in pixels
PARTNER_WEIGHT = 0.6  # the partner's share of the colour fusion's base luma; the fused luma has the rest


def table_choices() -> list[tuple[str, str]]:
    """(name, look) of each of :data:`COLOUR_TABLES`, in their order: what a front end offers, e.g. ("pet",
    "hot iron")."""
    return [(name, TABLE_LOOKS[name]) for name in COLOUR_TABLES]


def colour_table(name: str) -> np.ndarray:
    """The (256, 3) float32 table called ``name`` (a key of :data:`COLOUR_TABLES`); InputError otherwise."""
    if name not in COLOUR_TABLES:
        raise InputError("Unknown colour table {name!r}; choose one of {tables}.", name=name,
                         tables=", ".join(sorted(COLOUR_TABLES)), setting="colour", value=name)
    return COLOUR_TABLES[name]


def apply_table(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Map ``values`` in [0, 1] (any shape S) through ``table`` (256, 3), linearly: float32 (*S, 3) in [0, 1]."""
    x = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0) * (len(table) - 1)
    low = np.floor(x).astype(np.int64)
    high = np.minimum(low + 1, len(table) - 1)
    weight = (x - low)[..., None]
    return ((1 - weight) * table[low] + weight * table[high]).astype(np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of ``rgb`` (..., 3) float in [0, 1]: float32 (...) in [0, 1]."""
    data = np.asarray(rgb, dtype=np.float32)
    return (data[..., 0] * np.float32(LUMA[0]) + data[..., 1] * np.float32(LUMA[1])
            + data[..., 2] * np.float32(LUMA[2])).astype(np.float32)


def slice_luma(image: np.ndarray) -> np.ndarray:
    """What a grey measure sees of one slice: a grey (H, W) slice as it is, an RGB (H, W, 3) one as its luma."""
    return luma(image) if np.ndim(image) == 3 else np.asarray(image)


def chroma(rgb: np.ndarray) -> np.ndarray:
    """Centred BT.601 chroma (Cb, Cr) of ``rgb`` (..., 3) float in [0, 1]: float32 (..., 2) in [-0.5, 0.5]."""
    return (np.asarray(rgb, dtype=np.float64) @ _FORWARD[1:].T).astype(np.float32)


def rgb_from(y: np.ndarray, cbcr: np.ndarray) -> np.ndarray:
    """RGB from luma ``y`` (...) and chroma ``cbcr`` (..., 2), the exact inverse of :func:`luma` and :func:`chroma`.

    Returns float32 (..., 3) clipped to [0, 1] (a bright luma under a strong
    chroma can leave the RGB gamut).
    """
    ycc = np.concatenate([np.asarray(y, dtype=np.float64)[..., None], np.asarray(cbcr, dtype=np.float64)], axis=-1)
    return np.clip(ycc @ _INVERSE.T, 0.0, 1.0).astype(np.float32)


def fit_gamut(y: np.ndarray, cbcr: np.ndarray) -> np.ndarray:
    """RGB of luma ``y`` (...) in [0, 1] with chroma ``cbcr`` (..., 2) shrunk just enough to fit the gamut.

    The luma and the hue are kept; where (``y``, ``cbcr``) is already inside
    the RGB cube nothing changes, so this equals :func:`rgb_from` there.
    Returns float32 (..., 3) in [0, 1].
    """
    y = np.clip(np.asarray(y, dtype=np.float64), 0.0, 1.0)[..., None]
    offset = np.asarray(cbcr, dtype=np.float64) @ _INVERSE[:, 1:].T  # each channel's distance from the luma
    room = np.where(offset > 0, 1.0 - y, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(np.abs(offset) > 1e-12, room / np.abs(offset), np.inf).min(axis=-1, keepdims=True)
    return np.clip(y + np.minimum(scale, 1.0) * offset, 0.0, 1.0).astype(np.float32)


def two_scales(x: np.ndarray, sigma_px: float = DETAIL_SIGMA_PX) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (..., H, W) split per slice into (base, detail), float64 each of ``x``'s shape: ``base`` blurred by a
    Gaussian of ``sigma_px`` pixels along the last two axes, ``detail = x - base``."""
    x = np.asarray(x, dtype=np.float64)
    base = ndimage.gaussian_filter(x, (0.0,) * (x.ndim - 2) + (sigma_px, sigma_px))
    return base, x - base


def larger_magnitude(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per element, whichever of ``p`` and ``q`` (the same shape) is larger in magnitude; ``p`` on ties."""
    return np.where(np.abs(p) >= np.abs(q), p, q)


def compose(fused: np.ndarray, mri: np.ndarray, partner: np.ndarray, cbcr: np.ndarray,
            partner_weight: float = PARTNER_WEIGHT, sigma_px: float = DETAIL_SIGMA_PX) -> np.ndarray:
    """The colour fusion: a luma built from the fused luma, the MRI and the partner, with the partner's chroma.

    ``fused``, ``mri`` and ``partner`` (..., H, W) in [0, 1]: the network's
    fused luma, the normalised MRI and the colour partner's own luma, one
    slice or a stack; ``cbcr`` (..., H, W, 2) the partner's chroma. With
    ``base(x)`` the slice ``x`` blurred by a Gaussian of ``sigma_px``
    (:data:`DETAIL_SIGMA_PX`) and ``detail(x) = x - base(x)``, the luma is

        (1 - partner_weight) * base(fused) + partner_weight * partner + d

    where ``d`` is, per pixel, whichever of ``detail(fused)`` and
    ``detail(mri)`` is larger in magnitude. So hot spots and cold defects
    show at the partner's weight, and the anatomy's edges at full strength
    however diffuse the uptake. The chroma is fitted to the gamut by
    :func:`fit_gamut`. ``partner_weight`` (:data:`PARTNER_WEIGHT`) and
    ``sigma_px`` are what ships; other values are for comparing designs
    (``benchmarks/colour_compositions.py``). Returns float32 (..., H, W, 3)
    RGB in [0, 1].
    """
    fused_base, fused_detail = two_scales(fused, sigma_px)
    detail = larger_magnitude(two_scales(mri, sigma_px)[1], fused_detail)  # the MRI's on ties
    base = (1.0 - partner_weight) * fused_base + partner_weight * np.asarray(partner, dtype=np.float64)
    return fit_gamut(base + detail, cbcr)


def rgb_unit(rgb: np.ndarray, name: str) -> np.ndarray:
    """An RGB image as float32 in [0, 1]: uint8 is divided by 255, float must already be in [0, 1].

    ``rgb``: (..., 3). Raises :class:`InputError` for another channel count,
    another integer type, or float values outside [0, 1] or not finite.
    """
    data = np.asarray(rgb)
    if data.ndim < 3 or data.shape[-1] != 3:
        if data.shape[-1:] == (4,):
            raise InputError("The {name} must be RGB with 3 channels last, got shape {shape} (RGBA? drop the alpha "
                             "channel first).", name=name, shape=data.shape)
        raise InputError("The {name} must be RGB with 3 channels last, got shape {shape}.", name=name, shape=data.shape)
    if data.dtype == np.uint8:
        return data.astype(np.float32) / np.float32(255)
    if data.dtype.kind != "f":
        raise InputError("The {name} must be uint8 (0..255) or float (0..1) RGB, got dtype {dtype}.", name=name,
                         dtype=data.dtype)
    out = data.astype(np.float32)
    if not np.isfinite(out).all() or out.min() < 0 or out.max() > 1:
        raise InputError("The float RGB {name} must lie in [0, 1] (got {low:.4g} to {high:.4g}); "
                         "divide 0..255 values by 255 first.", name=name, low=np.nanmin(out), high=np.nanmax(out))
    return out
