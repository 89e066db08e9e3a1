"""The one check of whether a key fits: the model, the image or volume, and how they differ.

:func:`check_fits` raises a distinct error per reason: another model
(:class:`ModelMismatchError`), another image or volume (:class:`KeyMismatchError`),
or the right one changed since it was protected (:class:`ImageModifiedError`).
Plain arrays are checked by their voxels; volumes also by their fingerprint,
size, geometry and stored pixel type (:class:`VolumeFacts`). Torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import numpy as np

from amif_core.errors import ImageModifiedError, KeyMismatchError, ModelMismatchError
from amif_core.key.core import (
    Key,
    image_fingerprint,
    image_signature,
    short,
    signatures_match,
)

# Tolerances under which a re-read geometry counts as unchanged (NIfTI stores it in float32).
GEOMETRY_ATOL_MM = 1e-4
DIRECTION_ATOL = 1e-5


@dataclass(frozen=True)
class VolumeFacts:
    """What the check needs of a protected volume: ``size`` (x, y, z), ``geometry`` (as
    :meth:`Key.geometry`), ``fingerprint`` (the volume fingerprint), whether it is stored
    as floating point, its pixel type's name and the bits of one pixel component."""

    size: tuple[int, int, int]
    geometry: dict[str, list]
    fingerprint: str
    stored_as_float: bool
    pixel_type: str
    bits: int


def _geometry_changes(actual: dict[str, list], expected: dict[str, list]) -> list[str]:
    return [name for name, atol in (("spacing", GEOMETRY_ATOL_MM), ("origin", GEOMETRY_ATOL_MM),
                                    ("direction", DIRECTION_ATOL))
            if not np.allclose(actual[name], expected[name], rtol=0, atol=atol)]


def _resizing(volume: VolumeFacts, key: Key) -> str | None:
    """"cropped" when ``volume``'s grid is a part of the key's grid (same spacing and direction, an integer voxel
    offset inside it), "resampled" when it covers the same region on another grid (extent within one key voxel,
    origin within one key voxel); else None."""
    expected = key.geometry()
    direction = np.array(expected["direction"], dtype=np.float64).reshape(3, 3)
    if not np.allclose(volume.geometry["direction"], expected["direction"], atol=DIRECTION_ATOL):
        return None
    spacing, key_spacing = np.array(volume.geometry["spacing"]), np.array(expected["spacing"])
    offset = np.linalg.solve(direction, np.subtract(volume.geometry["origin"], expected["origin"])) / key_spacing
    size, key_size = np.array(volume.size), np.array(key.size)
    if np.allclose(spacing, key_spacing, atol=GEOMETRY_ATOL_MM):
        inside = (np.all(np.abs(offset - np.rint(offset)) < 1e-3) and np.all(np.rint(offset) >= 0)
                  and np.all(np.rint(offset) + size <= key_size))
        return "cropped" if inside else None
    extent, key_extent = size * spacing, key_size * key_spacing
    same_region = np.all(np.abs(extent - key_extent) <= key_spacing) and np.all(np.abs(offset) <= 1)
    return "resampled" if same_region else None


def check_fits(key: Key, model_id: str, voxels: np.ndarray, volume: VolumeFacts | None = None) -> None:
    """Raise unless ``key`` unlocks ``voxels`` (the (D, H, W) array the key was made for) with ``model_id``.

    ``volume``: the protected volume's facts, for a volume key; None for a plain array.
    """
    if model_id != key.model_id:
        if volume is not None:
            raise ModelMismatchError(
                "This key was made by AMIF weights {key_model}, but the loaded weights are {model}: another model "
                "version. Unlock with the weights that protected the volume.", key_model=short(key.model_id),
                model=short(model_id))
        raise ModelMismatchError(
            "This key was made by AMIF weights {key_model}, but the loaded weights are {model}: another model "
            "version. Unlock with the weights that protected the image.", key_model=short(key.model_id),
            model=short(model_id))
    if volume is None:
        _check_image_fits(key, voxels)
    else:
        _check_volume_fits(key, voxels, volume)


def _check_image_fits(key: Key, voxels: np.ndarray) -> None:
    """:func:`check_fits` for a plain array: its shape and voxels."""
    if tuple(np.shape(voxels)) != tuple(key.shape):
        raise KeyMismatchError(
            "This key is for an image of shape {key_shape}, but the image has shape {shape}. Use the key that was "
            "written with this protected image.", key_shape=tuple(key.shape), shape=tuple(np.shape(voxels)))
    actual = image_fingerprint(voxels)
    if actual == key.fingerprint:
        return
    fingerprint, expected = short(actual), short(key.fingerprint)
    _refuse_modified_or_other(key, voxels, ImageModifiedError(
        "The protected image was modified after it was protected (fingerprint {fingerprint}, the key expects "
        "{expected}): it was edited, filtered, resampled or re-saved at lower precision. Unlock the original "
        "protected file (or a lossless copy: DICOM, NRRD, NIfTI or MHA).", fingerprint=fingerprint,
        expected=expected), KeyMismatchError(
        "This key belongs to another image (fingerprint {fingerprint}, the key expects {expected}). Use the key "
        "written together with this protected image.", fingerprint=fingerprint, expected=expected))


def _refuse_modified_or_other(key: Key, voxels: np.ndarray, modified: ImageModifiedError,
                              other: KeyMismatchError) -> NoReturn:
    """Raise ``modified`` when the voxels still carry the key's signature (the protected data, changed), else
    ``other`` (data the key was never made for)."""
    if signatures_match(image_signature(voxels, key.colour is not None), key.signature):
        raise modified
    raise other


def _check_volume_fits(key: Key, voxels: np.ndarray, volume: VolumeFacts) -> None:
    """:func:`check_fits` for a volume: its fingerprint, size, voxels, geometry and stored pixel type."""
    if volume.fingerprint == key.volume_fingerprint:
        return
    fingerprint, expected = short(volume.fingerprint), short(key.volume_fingerprint)
    if tuple(volume.size) != tuple(key.size):
        _refuse_other_size(key, volume, fingerprint, expected)
    if image_fingerprint(voxels) == key.fingerprint:
        changes = _geometry_changes(volume.geometry, key.geometry())
        if not changes:
            return  # the same voxels; a volume's geometry re-stored at lower precision (e.g. NIfTI)
        raise ImageModifiedError(
            "The protected volume's voxels are intact, but its {changes} changed since it was protected (volume "
            "fingerprint {fingerprint}, the key expects {expected}). Unlock the original protected file, or restore "
            "its geometry.", changes=" and ".join(changes), fingerprint=fingerprint, expected=expected)
    if volume.stored_as_float and not all(np.isfinite(plane).all() for plane in voxels):
        raise ImageModifiedError(
            "The protected volume contains NaN or infinite voxels, which AMIF never writes: it was modified after it "
            "was protected (volume fingerprint {fingerprint}, the key expects {expected}). Unlock the original "
            "protected file.", fingerprint=fingerprint, expected=expected)
    _check_stored_type(key, volume, fingerprint, expected)
    _refuse_modified_or_other(key, voxels, ImageModifiedError(
        "The protected volume was modified after it was protected (volume fingerprint {fingerprint}, the key "
        "expects {expected}): it was edited, filtered, resampled or re-saved at lower precision. Unlock the "
        "original protected file (or a lossless copy: DICOM, NRRD, NIfTI or MHA).", fingerprint=fingerprint,
        expected=expected), KeyMismatchError(
        "This key belongs to another volume (volume fingerprint {fingerprint}, the key expects {expected}). Use the "
        "key written together with this protected volume.", fingerprint=fingerprint, expected=expected))


def _refuse_other_size(key: Key, volume: VolumeFacts, fingerprint: str, expected: str) -> NoReturn:
    """Raise for a volume of another size than the key's: cropped or resampled from it, or another volume."""
    key_size, size = "x".join(str(v) for v in key.size), "x".join(str(v) for v in volume.size)
    change = _resizing(volume, key)
    if change == "cropped":
        raise ImageModifiedError(
            "The protected volume was cropped after it was protected (volume fingerprint {fingerprint}, the key "
            "expects {expected}): the key is for {key_size} voxels, this volume has {size}. Unlock the original "
            "protected file.", fingerprint=fingerprint, expected=expected, key_size=key_size, size=size)
    if change == "resampled":
        raise ImageModifiedError(
            "The protected volume was resampled after it was protected (volume fingerprint {fingerprint}, the key "
            "expects {expected}): the key is for {key_size} voxels, this volume has {size}. Unlock the original "
            "protected file.", fingerprint=fingerprint, expected=expected, key_size=key_size, size=size)
    raise KeyMismatchError(
        "This key belongs to another volume (volume fingerprint {fingerprint}, the key expects {expected}): the key "
        "is for {key_size} voxels, this volume has {size}. Use the key written together with this protected volume.",
        fingerprint=fingerprint, expected=expected, key_size=key_size, size=size)


def _check_stored_type(key: Key, volume: VolumeFacts, fingerprint: str, expected: str) -> None:
    """Name a pixel type that cannot hold what AMIF wrote: float32 for a float key, 16 bits for a grey
    integer key (:mod:`amif_core.key.storage`)."""
    if key.levels is None and not volume.stored_as_float:
        raise ImageModifiedError(
            "The protected volume is stored as '{pixel_type}', but AMIF wrote it as 32-bit float: it was re-saved at "
            "lower precision (volume fingerprint {fingerprint}, the key expects {expected}). Unlock the original "
            "float32 protected file.", pixel_type=volume.pixel_type, fingerprint=fingerprint, expected=expected)
    if key.levels is not None and key.colour is None and not volume.stored_as_float and volume.bits < 16:
        raise ImageModifiedError(
            "The protected volume is stored as '{pixel_type}' ({bits}-bit), but AMIF wrote it as 16-bit integers: it "
            "was down-cast, which loses the precision the key needs (volume fingerprint {fingerprint}, the key "
            "expects {expected}). Unlock the original 16-bit protected file or series.",
            pixel_type=volume.pixel_type, bits=volume.bits, fingerprint=fingerprint, expected=expected)
