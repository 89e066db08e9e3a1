"""The volume pipeline: protect and unlock SimpleITK volumes with a model, slice by slice.

Processing streams batches of slices through the model, so apart from the
inputs only the output volume and the key are held in memory, and each
batch's freed memory goes back to the system
(:func:`~amif_core.runtime.runner.trimming`), whichever front end runs it.
Inputs are never modified.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import SimpleITK as sitk

from amif_core.constants import DEFAULT_BATCH_SIZE, DEFAULT_IDENTIFIER
from amif_core.errors import InputError, KeyMismatchError
from amif_core.inference.model import AMIFModel
from amif_core.runtime.callbacks import Cancel, Progress
from amif_core.runtime.runner import trimming
from amif_core.io.geometry import (
    PARTIAL_COVERAGE,
    axis_first,
    check_axis,
    describe,
    display_orientation,
    from_axis_first,
    image_geometry,
    resample_to_reference,
    restore_slice_order,
    slice_axis,
    volume_facts,
    volume_fingerprint,
)
from amif_core.io.volumes import FLOAT_TYPES, check_volume, is_rgb_volume
from amif_core.key.check import check_fits
from amif_core.key.core import Key
from amif_core.key.storage import from_stored, levels_for, to_stored
from amif_core.tracing.secret import DEMO_SECRET, OwnerSecret
from amif_core.transforms.identifier import IdentifierStyle, validate_identifier
from amif_core.transforms.identifier_volume import VolumePlanes


def _check_finite(image: sitk.Image, name: str) -> None:
    if image.GetPixelID() in FLOAT_TYPES:
        for plane in sitk.GetArrayViewFromImage(image):
            if not np.isfinite(plane).all():
                raise InputError("The {name} contains NaN or infinite voxels; replace them (for example with 0) "
                                 "before protecting.", name=name)


def _partner_voxels(other: sitk.Image, on_grid: sitk.Image, axis: int) -> np.ndarray:
    """The second scan's (D, H, W) or RGB (D, H, W, 3) voxels on the MRI grid, slice axis first.

    An 8-bit RGB scan resampled to float keeps its 0..255 scale; it is
    brought to [0, 1] here, as the model takes float RGB.
    """
    voxels = axis_first(on_grid, axis)
    if on_grid is not other and other.GetPixelID() == sitk.sitkVectorUInt8:
        return voxels / np.float32(255)
    return voxels


def protect_volume(model: AMIFModel, mri: sitk.Image, other: sitk.Image, identifier: str = DEFAULT_IDENTIFIER,
                   axis: int | None = None, colour_table: str | None = None, progress: Progress | None = None,
                   cancel: Cancel | None = None, notice: Callable[[str], None] = print,
                   batch_size: int = DEFAULT_BATCH_SIZE, owner: OwnerSecret = DEMO_SECRET) -> tuple[sitk.Image, Key]:
    """Fuse an MRI with a registered CT/PET/SPECT volume and burn in the identifier.

    ``mri``: a 3D scalar volume of any real pixel type and range. ``other``:
    the same, or an RGB volume (8-bit, or float in [0, 1]) for a colour
    fusion; ``colour_table`` (a key of ``amif_core.COLOUR_TABLES``) maps a
    scalar PET/SPECT into colour. ``other`` is resampled onto the MRI grid
    (linear) when needed, with a one-line ``notice``. ``axis``: numpy slice axis, default
    :func:`slice_axis` of the MRI. ``progress(done, total)`` counts slices;
    ``cancel()`` returning True stops with :class:`~amif_core.errors.CancelledError`;
    ``batch_size`` slices run at once (see :mod:`amif_core.runtime.runner`);
    ``owner``: the secret of the fusion's trace mark (:mod:`amif_core.tracing`).

    The identifier is three-dimensional, on the MRI's voxel grid, and
    reads upright in the standard view nearest each plane of that grid
    (:func:`display_orientation`; an oblique grid's text tilts with it). Returns the protected volume and
    its :class:`Key`. The volume is stored as integers that hold it exactly
    (:mod:`amif_core.key.storage`): uint16 0..32767 for a grey fusion, 8-bit
    RGB vector voxels for a colour one; exactly the MRI's geometry, no
    metadata. The inputs are not modified.
    """
    check_volume(mri, "MRI")
    check_volume(other, "second scan", rgb=True)
    identifier = validate_identifier(identifier)
    axis = slice_axis(mri) if axis is None else axis
    check_axis(axis, mri)
    _check_finite(mri, "MRI")
    _check_finite(other, "second scan")
    on_grid, covered = resample_to_reference(other, mri)
    if covered is not None:
        partial = (f"; it covers only {covered:.0%} of the MRI, the rest takes its lowest value (the fusion shows the "
                   "MRI alone there): check the registration") if covered < PARTIAL_COVERAGE else ""
        notice(f"Resampled the second scan ({describe(other)}) onto the MRI grid ({describe(mri)}), linear "
               f"interpolation{partial}.")
    style = IdentifierStyle(**display_orientation(mri, axis))
    planes = VolumePlanes(tuple(tuple(display_orientation(mri, a).values()) for a in range(3)), axis)
    levels = levels_for(colour_table is not None or is_rgb_volume(other))
    result = model.protect(axis_first(mri, axis), _partner_voxels(other, on_grid, axis), identifier, style,
                           colour_table=colour_table, progress=trimming(progress), cancel=cancel,
                           batch_size=batch_size, levels=levels, owner=owner, planes=planes)
    del on_grid
    protected = from_axis_first(to_stored(result.image, levels), axis, mri)
    key = result.key
    del result
    geometry = image_geometry(protected)
    return protected, dataclasses.replace(
        key, axis=axis, size=tuple(geometry["size"]), spacing=tuple(geometry["spacing"]),
        origin=tuple(geometry["origin"]), direction=tuple(geometry["direction"]),
        volume_fingerprint=volume_fingerprint(protected),
    )


def protected_voxels(protected: sitk.Image, key: Key) -> np.ndarray:
    """The protected image ``key`` was made for, read from ``protected``: (D, H, W) or (D, H, W, 3) float32, the
    stored integers over the key's levels (:func:`~amif_core.key.storage.from_stored`); a float key's voxels as
    stored."""
    voxels = axis_first(protected, key.axis)
    return from_stored(voxels, key.levels) if key.levels is not None else voxels


def _check_colour_fits(protected: sitk.Image, key: Key) -> None:
    """Raise :class:`KeyMismatchError` when a grey fusion's key meets an RGB volume, or a colour fusion's key a
    single-channel one: the key was written with another volume."""
    rgb = is_rgb_volume(protected)
    if key.colour is None and rgb:
        raise KeyMismatchError("This key is for a grey fusion, but the volume is RGB (a colour fusion): the key was "
                               "written with another volume. Use the key written together with this protected "
                               "volume.")
    if key.colour is not None and not rgb:
        raise KeyMismatchError("This key is for a colour fusion, but the volume is grey (one value per voxel): the key "
                               "was written with another volume. Use the key written together with this protected "
                               "volume.")


def _in_key_order(protected: sitk.Image, key: Key) -> sitk.Image:
    """``protected``, checked to be a volume of the key's kind (RGB for a colour key), in the key's slice order."""
    check_volume(protected, "protected volume", rgb=True)
    _check_colour_fits(protected, key)
    return restore_slice_order(protected, key.geometry()) if key.is_volume_key else protected


def check_key_fits_volume(protected: sitk.Image, key: Key, model_id: str) -> None:
    """Raise unless ``key`` unlocks ``protected`` with the weights ``model_id``: the check :func:`unlock_volume`
    makes first (:func:`amif_core.key.check.check_fits`), without running the model."""
    protected = _in_key_order(protected, key)
    check_fits(key, model_id, protected_voxels(protected, key), volume_facts(protected))


def unlock_volume(model: AMIFModel, protected: sitk.Image, key: Key, verify: bool = True,
                  progress: Progress | None = None, cancel: Cancel | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> sitk.Image:
    """Recover the watermark-free fusion of a protected volume with its key.

    Checks the key first (:func:`amif_core.key.check.check_fits`, on the
    volume as :func:`~amif_core.io.geometry.restore_slice_order` gives it
    back; ``verify=False`` skips that, for evaluating wrong keys only).
    Returns float32 in [0, 1] (RGB for a colour key) on the protected
    volume's geometry. ``progress``/``cancel`` as in :func:`protect_volume`.
    """
    protected = _in_key_order(protected, key)
    if not verify and tuple(protected.GetSize()) != tuple(key.size):
        raise InputError("The protected volume has {size} voxels but the key is for {key_size}; "
                         "even a forced unlock needs the same size.", size=protected.GetSize(), key_size=key.size)
    voxels = protected_voxels(protected, key)  # converted once, for the check and the unlock
    if verify:
        check_fits(key, model.model_id, voxels, volume_facts(protected))
    clean = model.unlock(voxels, key, verify=False, progress=trimming(progress), cancel=cancel,
                         batch_size=batch_size)
    return from_axis_first(clean, key.axis, protected)
