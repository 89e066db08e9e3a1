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
    as floating point, and its pixel type's name."""

    size: tuple[int, int, int]
    geometry: dict[str, list]
    fingerprint: str
    stored_as_float: bool
    pixel_type: str


def _geometry_changes(actual: dict[str, list], expected: dict[str, list]) -> list[str]:
    return [name for name, atol in (("spacing", GEOMETRY_ATOL_MM), ("origin", GEOMETRY_ATOL_MM),
                                    ("direction", DIRECTION_ATOL))
            if not np.allclose(actual[name], expected[name], rtol=0, atol=atol)]


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
            raise KeyMismatchError(
                f"This key belongs to another volume {prints}: it is for {'x'.join(str(v) for v in key.size)} "
                f"voxels, this volume has {'x'.join(str(v) for v in volume.size)}. Use the key written together "
                "with this protected volume.")
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
    if volume is not None and not volume.stored_as_float:
        raise ImageModifiedError(
            f"The protected volume is stored as '{volume.pixel_type}', but AMIF wrote it as 32-bit float: it was "
            f"re-saved at lower precision {prints}. Unlock the original float32 protected file.")
    if signatures_match(image_signature(voxels, key.colour is not None), key.signature):
        raise ImageModifiedError(
            f"The protected {noun} was modified after it was protected {prints}: it was edited, filtered, resampled "
            "or re-saved at lower precision. Unlock the original float32 protected file.")
    raise KeyMismatchError(f"This key belongs to another {noun} {prints}. Use the key written together with this "
                           f"protected {noun}.")
