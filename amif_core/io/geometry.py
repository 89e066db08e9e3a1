"""Volume grids: geometry, fingerprints, the slice axis, display orientation, overlap and resampling.

"axis" always means an axis of the (z, y, x) numpy view of a SimpleITK image.
The protected volume and the unlocked fusion always have the MRI's exact
geometry; the second scan is resampled onto the MRI grid when the grids differ.
"""
from __future__ import annotations

import hashlib
import json
import math
from itertools import product

import numpy as np
import SimpleITK as sitk

from amif_core.errors import InputError
from amif_core.io.volumes import FLOAT_TYPES, check_volume
from amif_core.key.check import DIRECTION_ATOL, GEOMETRY_ATOL_MM, VolumeFacts

MIN_SLICE_SIDE = 8
PARTIAL_COVERAGE = 0.99  # the resampling notice says how much of the MRI the second scan covers below this
_FINGERPRINT_TAG = b"AMIF volume fingerprint v1\n"


def image_geometry(image: sitk.Image) -> dict[str, list]:
    """``{"size": [x, y, z] ints, "spacing": [3] mm, "origin": [3] mm, "direction": [9] row-major}``."""
    return {"size": [int(v) for v in image.GetSize()], "spacing": [float(v) for v in image.GetSpacing()],
            "origin": [float(v) for v in image.GetOrigin()], "direction": [float(v) for v in image.GetDirection()]}


def describe(image: sitk.Image) -> str:
    """Short human description of a volume's grid, e.g. ``105x129x112 voxels of 1.5x1.5x1.5 mm``."""
    size = "x".join(str(v) for v in image.GetSize())
    spacing = "x".join(f"{v:.4g}" for v in image.GetSpacing())
    return f"{size} voxels of {spacing} mm"


def volume_fingerprint(image: sitk.Image) -> str:
    """SHA-256 hex identifying a volume: its geometry and its voxels as float32.

    Hashes a tag, the canonical JSON of :func:`image_geometry`, then the
    voxels as little-endian float32 in (z, y, x) order, one slice at a time
    (no full-size copy).
    """
    digest = hashlib.sha256(_FINGERPRINT_TAG)
    digest.update(json.dumps(image_geometry(image), sort_keys=True, separators=(",", ":")).encode())
    for plane in sitk.GetArrayViewFromImage(image):
        digest.update(np.ascontiguousarray(plane, dtype="<f4"))
    return digest.hexdigest()


def slice_axis(image: sitk.Image) -> int:
    """Numpy axis (0, 1 or 2 of the (z, y, x) array) closest to the patient's superior-inferior axis.

    Uses the direction cosines: voxel index axis i runs along column i of the
    direction matrix, and superior-inferior is the third physical (LPS)
    coordinate. Ties go to the lower numpy axis.
    """
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    si_component = np.abs(direction[2])  # S-I part of index axes x, y, z
    return int(np.argmax(si_component[::-1]))  # numpy axis 0 is index axis z


# Screen directions of the standard viewer layouts (3D Slicer's, radiological
# convention), in LPS: (right, down) for views whose normal is mostly L-R, A-P, S-I.
_SCREEN_AXES = {
    0: ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),  # sagittal: anterior on the left, superior up
    1: ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),  # coronal: patient right on the left, superior up
    2: ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),  # axial: patient right on the left, anterior up
}


def display_orientation(image: sitk.Image, axis: int) -> dict[str, bool]:
    """How to map upright screen text onto the (rows, cols) of slices along numpy ``axis``.

    Returns the ``transpose``, ``flip_rows`` and ``flip_cols`` fields of
    :class:`~amif_core.transforms.identifier.IdentifierStyle` that make the
    identifier read left to right, upright, where a viewer shows these
    slices: the view whose normal is nearest the slice normal (axial,
    coronal or sagittal), in the radiological convention.
    """
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    index_axes = [2 - a for a in range(3) if a != axis]  # rows, then columns (numpy axis k is index axis 2 - k)
    normal = direction[:, 2 - axis]
    right, down = (np.asarray(v) for v in _SCREEN_AXES[int(np.argmax(np.abs(normal)))])
    rows, cols = direction[:, index_axes[0]], direction[:, index_axes[1]]
    if abs(cols @ right) >= abs(rows @ right):
        return {"transpose": False, "flip_rows": bool(rows @ down < 0), "flip_cols": bool(cols @ right < 0)}
    return {"transpose": True, "flip_rows": bool(rows @ right < 0), "flip_cols": bool(cols @ down < 0)}


def _corners(image: sitk.Image) -> np.ndarray:
    """(8, 3) physical corners of the volume's extent (voxel edges, not centres)."""
    size = np.asarray(image.GetSize(), dtype=np.float64)
    return np.array([image.TransformContinuousIndexToPhysicalPoint(tuple(float(c) for c in corner))
                     for corner in product(*[(-0.5, s - 0.5) for s in size])])


def _edges(image: sitk.Image) -> np.ndarray:
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    return (direction * np.asarray(image.GetSpacing())).T  # rows: physical step of each index axis


def extents_overlap(a: sitk.Image, b: sitk.Image) -> bool:
    """True when the physical extents of two 3D volumes overlap (separating-axis test on the two boxes)."""
    corners_a, corners_b = _corners(a), _corners(b)
    edges_a, edges_b = _edges(a), _edges(b)
    axes = [np.cross(e1, e2) for edges in (edges_a, edges_b) for e1, e2 in ((edges[0], edges[1]),
            (edges[1], edges[2]), (edges[0], edges[2]))]
    axes += [np.cross(e1, e2) for e1 in edges_a for e2 in edges_b]
    for axis in axes:
        norm = np.linalg.norm(axis)
        if norm < 1e-12:
            continue
        pa, pb = corners_a @ (axis / norm), corners_b @ (axis / norm)
        if pa.max() <= pb.min() + 1e-6 or pb.max() <= pa.min() + 1e-6:
            return False
    return True


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    """True when two volumes share size, spacing, origin and direction (to 1e-4 mm and 1e-5)."""
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=0, atol=GEOMETRY_ATOL_MM)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), rtol=0, atol=GEOMETRY_ATOL_MM)
            and np.allclose(a.GetDirection(), b.GetDirection(), rtol=0, atol=DIRECTION_ATOL))


def coverage(moving: sitk.Image, reference: sitk.Image) -> float:
    """Fraction of ``reference``'s voxel centres that lie inside ``moving`` (where resampling finds its data)."""
    ones = sitk.Image(moving.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(moving)
    inside = sitk.Resample(ones, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return np.count_nonzero(sitk.GetArrayViewFromImage(inside)) / math.prod(reference.GetSize())


def resample_to_reference(moving: sitk.Image, reference: sitk.Image) -> tuple[sitk.Image, float | None]:
    """Put ``moving`` on the voxel grid of ``reference`` with linear interpolation.

    Returns ``(image, covered)``: ``moving`` itself (any pixel type) and None
    when it already shares the grid, else a float32 image with the
    reference's geometry (float32 RGB for an RGB ``moving``) where voxels
    outside ``moving`` take its minimum (background) value (black in RGB),
    and the fraction of the reference it covers (:func:`coverage`, in (0, 1]). Raises :class:`InputError` when the two
    volumes do not overlap in physical space (no voxel centre of ``reference``
    inside ``moving``).
    """
    check_volume(moving, "second scan", rgb=True)
    check_volume(reference, "MRI")
    if same_grid(moving, reference):
        return moving, None
    covered = coverage(moving, reference) if extents_overlap(moving, reference) else 0.0
    if not covered:
        raise InputError("The second scan and the MRI do not overlap in physical space (their origins, spacings "
                         "and directions place them in different regions). Check that both scans are of the same "
                         "patient and were registered to each other; AMIF needs registered scans.")
    vector = moving.GetNumberOfComponentsPerPixel() > 1
    background = 0.0
    if not vector:
        stats = sitk.MinimumMaximumImageFilter()
        stats.Execute(moving)
        background = stats.GetMinimum()
    return sitk.Resample(moving, reference, sitk.Transform(), sitk.sitkLinear, background,
                         sitk.sitkVectorFloat32 if vector else sitk.sitkFloat32), covered


def axis_first(image: sitk.Image, axis: int) -> np.ndarray:
    """Read-only (D, H, W) view of the image's voxels with ``axis`` first; keep ``image`` alive while using it."""
    return np.moveaxis(sitk.GetArrayViewFromImage(image), axis, 0)


def from_axis_first(array: np.ndarray, axis: int, reference: sitk.Image) -> sitk.Image:
    """The (D, H, W) or RGB (D, H, W, 3) ``array`` back as an image with ``axis`` in place and ``reference``'s geometry."""
    image = sitk.GetImageFromArray(np.moveaxis(array, 0, axis), isVector=array.ndim == 4)
    image.CopyInformation(reference)
    return image


def slice_size(image: sitk.Image, axis: int) -> tuple[int, int]:
    rows, cols = [s for i, s in enumerate(image.GetSize()[::-1]) if i != axis]
    return rows, cols


def check_axis(axis: int, image: sitk.Image) -> None:
    """Raise :class:`InputError` (setting "axis") unless slicing ``image`` along ``axis`` gives usable slices."""
    if axis not in (0, 1, 2):
        raise InputError("The slice axis must be 0, 1 or 2 (a numpy axis of the (z, y, x) array), got {axis}.",
                         axis=axis, setting="axis", value=axis)
    rows, cols = slice_size(image, axis)
    if min(rows, cols) >= MIN_SLICE_SIDE:
        return
    usable = [(a, "x".join(map(str, slice_size(image, a)))) for a in range(3)
              if min(slice_size(image, a)) >= MIN_SLICE_SIDE]  # at most one: the axis across the one short side
    if not usable:
        raise InputError("Slicing along axis {axis} gives {rows}x{cols} slices; AMIF needs slices of at least "
                         "{side}x{side} voxels. No axis does: the volume ({volume}) is too small for AMIF.",
                         axis=axis, rows=rows, cols=cols, side=MIN_SLICE_SIDE, volume=describe(image), value=axis)
    (other, other_size), = usable
    raise InputError("Slicing along axis {axis} gives {rows}x{cols} slices; AMIF needs slices of at least "
                     "{side}x{side} voxels. Slicing along axis {other} ({other_size} slices) would do.", axis=axis,
                     rows=rows, cols=cols, side=MIN_SLICE_SIDE, other=other, other_size=other_size, setting="axis",
                     value=axis)




def volume_facts(image: sitk.Image) -> VolumeFacts:
    """What the key's fit check needs to know of a protected volume."""
    return VolumeFacts(size=tuple(image.GetSize()), geometry=image_geometry(image),
                       fingerprint=volume_fingerprint(image), stored_as_float=image.GetPixelID() in FLOAT_TYPES,
                       pixel_type=image.GetPixelIDTypeAsString(), bits=8 * image.GetSizeOfPixelComponent())


def restore_slice_order(image: sitk.Image, geometry: dict[str, list]) -> sitk.Image:
    """``image`` with its k order reversed when it is the volume of ``geometry`` (as :func:`image_geometry`) read
    back from a DICOM series of a left-handed grid; any other image is returned unchanged.

    DICOM orders slices along row x column, so such a series reads back with
    the k axis (and the third direction column) reversed; its voxels and
    physical positions are the same. The reversed image takes its origin and
    direction from ``image`` itself (the last slice, the negated k column), so
    a real change of geometry is still seen by the key's check.
    """
    expected = np.array(geometry["direction"], dtype=np.float64).reshape(3, 3)
    actual = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    if tuple(image.GetSize()) != tuple(geometry["size"]) or np.linalg.det(expected) > 0:
        return image
    if not (np.allclose(actual[:, :2], expected[:, :2], atol=DIRECTION_ATOL)
            and np.allclose(actual[:, 2], -expected[:, 2], atol=DIRECTION_ATOL)):
        return image
    last = image.TransformIndexToPhysicalPoint((0, 0, image.GetSize()[2] - 1))
    array = np.ascontiguousarray(sitk.GetArrayViewFromImage(image)[::-1])
    restored = sitk.GetImageFromArray(array, isVector=image.GetNumberOfComponentsPerPixel() > 1)
    restored.SetSpacing(image.GetSpacing())
    restored.SetOrigin(last)
    actual[:, 2] *= -1
    restored.SetDirection(tuple(actual.reshape(-1)))
    return restored
