"""The two inputs of a fusion, checked and split into what the network sees and the colour it does not.

The network fuses two grey slices. For a colour partner (an RGB PET/SPECT,
or a scalar one mapped through a colour table) it sees the partner's BT.601
luma, and the partner's chroma is put back on the fused luma afterwards
(:func:`amif_core.transforms.colour.compose`). Torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amif_core.errors import InputError
from amif_core.transforms.colour import chroma, colour_table, apply_table, luma, rgb_unit
from amif_core.transforms.intensity import fit_normalisation


@dataclass
class Pair:
    """Checked inputs: ``mri`` and ``other`` (D, H, W) real arrays of one shape (``other`` is the
    luma for a colour partner), ``cbcr`` (D, H, W, 2) float32 chroma in [-0.5, 0.5] or None for a
    grey fusion, ``colour`` (the key's description of it, None for grey) and ``shape``, the shape
    of the caller's result: the MRI's, plus a trailing 3 in colour."""

    mri: np.ndarray
    other: np.ndarray
    cbcr: np.ndarray | None
    colour: dict | None
    shape: tuple[int, ...]


def is_rgb(array: np.ndarray) -> bool:
    """True for an RGB image or volume: (H, W, 3) or (D, H, W, 3) (slices narrower than 8 pixels are not AMIF's)."""
    shape = np.shape(array)
    return len(shape) in (3, 4) and shape[-1] == 3


def as_volume(name: str, array: np.ndarray) -> np.ndarray:
    """``array`` as a (D, H, W) real volume ((H, W) gains a leading axis); InputError otherwise."""
    data = np.asarray(array)
    if data.dtype.kind not in "biuf":
        raise InputError("The {name} must be a real-valued array, got dtype {dtype}.", name=name, dtype=data.dtype)
    if data.ndim not in (2, 3):
        raise InputError("The {name} must be a 2D slice (H, W) or a 3D volume (D, H, W), got shape {shape}.",
                         name=name, shape=data.shape)
    if min(data.shape) < 1:
        raise InputError("The {name} is empty (shape {shape}).", name=name, shape=data.shape)
    return data if data.ndim == 3 else data[None]


def prepare_pair(mri: np.ndarray, other: np.ndarray, colour_table_name: str | None = None) -> Pair:
    """Check the inputs of a fusion and split a colour partner into luma and chroma.

    ``mri``: (H, W) or (D, H, W), greyscale, any real dtype and range.
    ``other``: the same shape (grey CT/PET/SPECT), or that shape plus a
    trailing 3 (RGB, uint8 0..255 or float 0..1). ``colour_table_name``: a
    key of :data:`~amif_core.transforms.colour.COLOUR_TABLES` to map a
    scalar ``other`` (normalised per volume) into colour; not allowed with
    an RGB ``other``.
    """
    if is_rgb(mri) and np.ndim(mri) == np.ndim(other):
        raise InputError("The MRI must be greyscale, got an RGB array of shape {shape}; give its "
                         "single-channel intensities (colour goes with the PET or SPECT).", shape=np.shape(mri))
    rgb = None
    table = None
    if is_rgb(other) and np.ndim(other) == np.ndim(mri) + 1:
        if colour_table_name is not None:
            raise InputError("The second scan is already RGB {shape}; a colour table ({table!r}) maps a scalar "
                             "PET/SPECT only. Drop the colour table, or give the scalar scan.", shape=np.shape(other),
                             table=colour_table_name, setting="colour", value=colour_table_name)
        rgb = rgb_unit(other, "second scan")
    elif np.ndim(other) >= 1 and np.shape(other)[-1:] == (4,) and np.ndim(other) == np.ndim(mri) + 1:
        raise InputError("The second scan has 4 channels {shape}; AMIF takes RGB (3 channels) or a "
                         "scalar scan. Drop the alpha channel first.", shape=np.shape(other))
    elif colour_table_name is not None:
        table = colour_table(colour_table_name)
    a = as_volume("MRI", mri)
    b = as_volume("second scan", other if rgb is None else rgb[..., 0])
    if a.shape != b.shape:
        raise InputError(
            "The MRI {shape} and the second scan {other_shape} must have the same shape; "
            "resample the second scan onto the MRI grid first (amif_core.inference.pipeline.protect_volume "
            "does this).", shape=np.shape(mri), other_shape=np.shape(other))
    if rgb is None and table is None:
        return Pair(a, b, None, None, tuple(np.shape(mri)))
    colour: dict = {"space": "BT.601 YCbCr", "table": colour_table_name}
    if table is not None:
        uptake = fit_normalisation(b)
        colour["uptake"] = uptake.to_dict()
        rgb = apply_table(uptake.apply(b), table)
    rgb = rgb.reshape(a.shape + (3,))
    return Pair(a, luma(rgb), chroma(rgb), colour, tuple(np.shape(mri)) + (3,))
