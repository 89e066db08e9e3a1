"""The one check of whether a key fits: the model, the image or volume, and how they differ.

:func:`check_fits` raises a distinct error per reason: another model
(:class:`ModelMismatchError`), another image or volume (:class:`KeyMismatchError`),
or the right one changed since it was protected (:class:`ImageModifiedError`).
Plain arrays are checked by their voxels; volumes also by their fingerprint,
size, geometry and stored pixel type (:class:`VolumeFacts`). Torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass

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
    noun = "volume" if volume is not None else "image"
    if model_id != key.model_id:
        raise ModelMismatchError(
            f"This key was made by AMIF weights {short(key.model_id)}, but the loaded weights are "
            f"{short(model_id)}: another model version. Unlock with the weights that protected the {noun}.")
    if volume is None:
        if tuple(np.shape(voxels)) != tuple(key.shape):
            raise KeyMismatchError(
                f"This key is for an image of shape {tuple(key.shape)}, but the image has shape "
                f"{tuple(np.shape(voxels))}. Use the key that was written with this protected image.")
        actual = image_fingerprint(voxels)
        prints = f"(fingerprint {short(actual)}, the key expects {short(key.fingerprint)})"
    else:
        if volume.fingerprint == key.volume_fingerprint:
            return
        prints = f"(volume fingerprint {short(volume.fingerprint)}, the key expects {short(key.volume_fingerprint)})"
        if tuple(volume.size) != tuple(key.size):
            sizes = (f"the key is for {'x'.join(str(v) for v in key.size)} voxels, this volume has "
                     f"{'x'.join(str(v) for v in volume.size)}")
            change = _resizing(volume, key)
            if change is not None:
                raise ImageModifiedError(f"The protected volume was {change} after it was protected {prints}: "
                                         f"{sizes}. Unlock the original protected file.")
            raise KeyMismatchError(f"This key belongs to another volume {prints}: {sizes}. Use the key written "
                                   "together with this protected volume.")
        actual = image_fingerprint(voxels)
    if actual == key.fingerprint:
        changes = _geometry_changes(volume.geometry, key.geometry()) if volume is not None else []
        if not changes:
            return  # the same voxels; a volume's geometry re-stored at lower precision (e.g. NIfTI)
        raise ImageModifiedError(
            f"The protected volume's voxels are intact, but its {' and '.join(changes)} changed since it was "
            f"protected {prints}. Unlock the original protected file, or restore its geometry.")
    if volume is not None and volume.stored_as_float and not all(np.isfinite(plane).all() for plane in voxels):
        raise ImageModifiedError(
            f"The protected volume contains NaN or infinite voxels, which AMIF never writes: it was modified after "
            f"it was protected {prints}. Unlock the original protected file.")
    if volume is not None:
        _check_stored_type(key, volume, prints)
    original = "the original protected file (or a lossless copy: DICOM, NRRD, NIfTI or MHA)"
    if signatures_match(image_signature(voxels, key.colour is not None), key.signature):
        raise ImageModifiedError(
            f"The protected {noun} was modified after it was protected {prints}: it was edited, filtered, resampled "
            f"or re-saved at lower precision. Unlock {original}.")
    raise KeyMismatchError(f"This key belongs to another {noun} {prints}. Use the key written together with this "
                           f"protected {noun}.")


def _check_stored_type(key: Key, volume: VolumeFacts, prints: str) -> None:
    """Name a pixel type that cannot hold what AMIF wrote: float32 for a float key, 16 bits for a grey
    integer key (:mod:`amif_core.key.storage`)."""
    if key.levels is None and not volume.stored_as_float:
        raise ImageModifiedError(
            f"The protected volume is stored as '{volume.pixel_type}', but AMIF wrote it as 32-bit float: it was "
            f"re-saved at lower precision {prints}. Unlock the original float32 protected file.")
    if key.levels is not None and key.colour is None and not volume.stored_as_float and volume.bits < 16:
        raise ImageModifiedError(
            f"The protected volume is stored as '{volume.pixel_type}' ({volume.bits}-bit), but AMIF wrote it as "
            f"16-bit integers: it was down-cast, which loses the precision the key needs {prints}. Unlock the "
            "original 16-bit protected file or series.")
