"""3D scans on disk and in physical space: read, write, resample, protect and unlock volumes.

Volumes are SimpleITK images: a 3D scalar voxel array plus its geometry
(size, spacing in mm, origin in mm and a 3x3 direction matrix, LPS patient
coordinates). Numpy views of them are (z, y, x) = (slice, row, column) arrays;
"axis" below always means an axis of that numpy array.

The protected volume and the unlocked fusion always have the MRI's exact
geometry. The second scan is resampled onto the MRI grid when the grids
differ. Processing streams batches of slices through the model, so apart from
the inputs only the output volume and the key are held in memory.
"""
from __future__ import annotations

import errno
import gzip
import hashlib
import json
import math
import zlib
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from amif_core.atomic import Output, write_atomically
from amif_core.engine.inference import AMIFModel, Cancel, Progress
from amif_core.errors import ImageModifiedError, InputError, KeyMismatchError, ModelMismatchError
from amif_core.keys import Key, image_fingerprint, image_signature, short, signatures_match
from amif_core.transforms.identifier import DEFAULT_IDENTIFIER, IdentifierStyle, validate_identifier

READ_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
WRITE_SUFFIXES = (".nrrd", ".nii", ".nii.gz", ".mha")  # single-file formats only: they can be written atomically
SCALAR_TYPES = {
    sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16, sitk.sitkUInt32, sitk.sitkInt32,
    sitk.sitkUInt64, sitk.sitkInt64, sitk.sitkFloat32, sitk.sitkFloat64,
}
FLOAT_TYPES = {sitk.sitkFloat32, sitk.sitkFloat64}
MIN_SLICE_SIDE = 8
PARTIAL_COVERAGE = 0.99  # the resampling notice says how much of the MRI the second scan covers below this
# Tolerances under which a re-read geometry counts as unchanged (NIfTI stores it in float32).
GEOMETRY_ATOL_MM = 1e-4
DIRECTION_ATOL = 1e-5
_FINGERPRINT_TAG = b"AMIF volume fingerprint v1\n"


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def check_volume(image: sitk.Image, name: str = "volume") -> None:
    """Raise :class:`InputError` unless ``image`` is a 3D, single-channel, real-valued volume."""
    if image.GetDimension() != 3:
        raise InputError(f"The {name} is {image.GetDimension()}D; AMIF needs a 3D volume. "
                         "Give a 3D scan (for a 4D series, extract one 3D frame first).")
    if image.GetNumberOfComponentsPerPixel() != 1 or image.GetPixelID() not in SCALAR_TYPES:
        raise InputError(f"The {name} holds voxels of type '{image.GetPixelIDTypeAsString()}' "
                         f"({image.GetNumberOfComponentsPerPixel()} values each); AMIF needs one real value per voxel. "
                         "Convert colour, vector, complex or label-map images to a single-channel (greyscale) "
                         "volume first.")


def _read_dicom_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise InputError(f"The folder {folder} contains no DICOM series. Give a folder with one DICOM series, "
                         f"or a volume file ({', '.join(READ_SUFFIXES)}).")
    if len(series) > 1:
        listed = ", ".join(f"{uid} ({len(reader.GetGDCMSeriesFileNames(str(folder), uid))} files)" for uid in series)
        raise InputError(f"The folder {folder} contains {len(series)} DICOM series: {listed}. "
                         "Put the series you want into a folder of its own.")
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series[0]))
    return reader.Execute()


def read_volume(path: str | Path) -> sitk.Image:
    """Read a 3D scan: a .nrrd/.nhdr, .nii/.nii.gz or .mha/.mhd file, or a folder holding one DICOM series.

    Returns the image with its own pixel type and geometry. Raises
    :class:`InputError` for a missing path, an unsupported or unreadable file,
    anything but a 3D single-channel real-valued volume, and a NIfTI file
    that stores NaN or infinite voxels (ITK's reader would silently make them 0).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist.")
    if not path.is_dir() and _suffix(path) not in READ_SUFFIXES:
        raise InputError(f"{path} is not a supported volume: use {', '.join(READ_SUFFIXES)} "
                         "or a folder holding one DICOM series.")
    try:
        image = _read_dicom_series(path) if path.is_dir() else sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise InputError(f"Could not read {path}: {_first_line(error)}") from error
    check_volume(image, f"volume in {path}")
    if _suffix(path) in (".nii", ".nii.gz") and image.GetPixelID() in FLOAT_TYPES:
        _check_nifti_finite(path)
    return image


def _check_nifti_finite(path: Path) -> None:
    """Refuse a float NIfTI file that stores NaN or infinite voxels, which ITK's reader silently reads as 0."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    header = {key: reader.GetMetaData(key) for key in ("datatype", "vox_offset") if reader.HasMetaDataKey(key)}
    itemsize = {"16": 4, "64": 8}.get(header.get("datatype", ""))  # NIfTI codes of float32 and float64
    if itemsize is None or "vox_offset" not in header:
        return
    with (gzip.open if _suffix(path) == ".nii.gz" else open)(path, "rb") as file:
        order = "<" if int.from_bytes(file.read(4), "little") in (348, 540) else ">"  # sizeof_hdr, NIfTI-1 or -2
        file.seek(int(float(header["vox_offset"])))
        dtype = np.dtype(f"{order}f{itemsize}")
        while chunk := file.read(8 << 20):
            if not np.isfinite(np.frombuffer(chunk[: len(chunk) - len(chunk) % itemsize], dtype)).all():
                raise InputError(f"The volume in {path} contains NaN or infinite voxels (NIfTI readers silently "
                                 "read them as 0); replace them (for example with 0) first.")


def check_volume_path(path: str | Path) -> None:
    """Raise :class:`InputError` unless AMIF can write a volume to ``path`` (judged by its extension)."""
    if _suffix(Path(path)) not in WRITE_SUFFIXES:
        raise InputError(f"Cannot write {path}: use one of {', '.join(WRITE_SUFFIXES)} "
                         "(.nhdr and .mhd keep their voxels in a second file, so they are not offered).")


def volume_output(image: sitk.Image, path: str | Path) -> Output:
    """An :class:`~amif_core.atomic.Output` that writes ``image`` to ``path`` (format from the extension).

    Raises :class:`InputError` at once for an extension AMIF cannot write (:func:`check_volume_path`).
    """
    path = Path(path)
    check_volume_path(path)

    compressed = _suffix(path) == ".nii.gz"

    def write(temp: Path) -> None:
        try:
            sitk.WriteImage(image, str(temp), useCompression=compressed)
        except RuntimeError as error:  # ITK reports a failed write (e.g. a full disk) as a RuntimeError
            raise OSError(errno.EIO, f"Could not write the volume: {_first_line(error)}", str(path)) from error
        _check_complete(temp, path, image, compressed)

    return Output(path, write)


def _check_complete(temp: Path, path: Path, image: sitk.Image, compressed: bool) -> None:
    """Raise OSError unless ``temp`` holds at least the image's voxel bytes (an intact gzip stream if ``compressed``).

    ITK's NIfTI writer ignores failed writes: on a full disk it leaves a
    truncated file and reports success.
    """
    needed = math.prod(image.GetSize()) * image.GetNumberOfComponentsPerPixel() * image.GetSizeOfPixelComponent()
    written = 0
    try:
        if compressed:
            with gzip.open(temp, "rb") as stream:
                while piece := stream.read(1 << 20):
                    written += len(piece)
        else:
            written = temp.stat().st_size
    except (EOFError, gzip.BadGzipFile, zlib.error):
        pass  # a cut-off stream: ``written`` stays short of ``needed``
    if written < needed:
        raise OSError(errno.EIO, f"The volume writer left an incomplete file ({written} of at least {needed} "
                                 "bytes of voxels); is the disk full?", str(path))


def write_volume(image: sitk.Image, path: str | Path, force: bool = False) -> None:
    """Write ``image`` atomically (temporary file in the same folder, then rename).

    Refuses to replace an existing file unless ``force`` (raises
    :class:`FileExistsError` saying to use --force). No metadata is added.
    """
    write_atomically([volume_output(image, path)], force)


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
    reference's geometry where voxels outside ``moving`` take its minimum
    (background) value, and the fraction of the reference it covers
    (:func:`coverage`, in (0, 1]). Raises :class:`InputError` when the two
    volumes do not overlap in physical space (no voxel centre of ``reference``
    inside ``moving``).
    """
    check_volume(moving, "second scan")
    check_volume(reference, "MRI")
    if same_grid(moving, reference):
        return moving, None
    covered = coverage(moving, reference) if extents_overlap(moving, reference) else 0.0
    if not covered:
        raise InputError("The second scan and the MRI do not overlap in physical space (their origins, spacings "
                         "and directions place them in different regions). Check that both scans are of the same "
                         "patient and were registered to each other; AMIF needs registered scans.")
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(moving)
    return sitk.Resample(moving, reference, sitk.Transform(), sitk.sitkLinear, stats.GetMinimum(),
                         sitk.sitkFloat32), covered


@dataclass
class VolumeKey:
    """The key of one protected volume: the core :class:`~amif_core.keys.Key` plus the volume's facts.

    ``key``: the core key, made for the volume's voxels with ``axis`` moved to
    the front (``key.shape`` is (slices, rows, columns)). ``axis``: the numpy
    axis of the (z, y, x) array the volume was sliced along. ``size`` (x, y, z)
    voxels, ``spacing`` and ``origin`` (mm) and ``direction`` (9 values,
    row-major) describe the protected volume's geometry.
    ``volume_fingerprint``: :func:`volume_fingerprint` of the protected volume.
    """

    key: Key
    axis: int
    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    volume_fingerprint: str

    def geometry(self) -> dict[str, list]:
        """The protected volume's geometry in the layout of :func:`image_geometry`."""
        return {"size": list(self.size), "spacing": list(self.spacing), "origin": list(self.origin),
                "direction": list(self.direction)}


def _axis_first(image: sitk.Image, axis: int) -> np.ndarray:
    """Read-only (D, H, W) view of the image's voxels with ``axis`` first; keep ``image`` alive while using it."""
    return np.moveaxis(sitk.GetArrayViewFromImage(image), axis, 0)


def _from_axis_first(array: np.ndarray, axis: int, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(np.moveaxis(array, 0, axis))
    image.CopyInformation(reference)
    return image


def check_identifier(text: str) -> str:
    """``text`` stripped, or :class:`InputError` when the identifier cannot be drawn (empty, too long, odd characters)."""
    try:
        return validate_identifier(text)
    except ValueError as error:
        raise InputError(str(error)) from error


def _check_finite(image: sitk.Image, name: str) -> None:
    if image.GetPixelID() in FLOAT_TYPES:
        for plane in sitk.GetArrayViewFromImage(image):
            if not np.isfinite(plane).all():
                raise InputError(f"The {name} contains NaN or infinite voxels; replace them (for example with 0) "
                                 "before protecting.")


def _slice_size(image: sitk.Image, axis: int) -> tuple[int, int]:
    rows, cols = [s for i, s in enumerate(image.GetSize()[::-1]) if i != axis]
    return rows, cols


def _check_axis(axis: int, image: sitk.Image) -> None:
    if axis not in (0, 1, 2):
        raise InputError(f"The slice axis must be 0, 1 or 2 (a numpy axis of the (z, y, x) array), got {axis}.")
    rows, cols = _slice_size(image, axis)
    if min(rows, cols) < MIN_SLICE_SIDE:
        usable = [f"--axis {a} ({'x'.join(map(str, _slice_size(image, a)))} slices)" for a in range(3)
                  if min(_slice_size(image, a)) >= MIN_SLICE_SIDE]
        advice = f"Choose {' or '.join(usable)}." if usable else \
            f"No axis does: the volume ({describe(image)}) is too small for AMIF."
        raise InputError(f"Slicing along axis {axis} gives {rows}x{cols} slices; AMIF needs slices of at least "
                         f"{MIN_SLICE_SIDE}x{MIN_SLICE_SIDE} voxels. {advice}")


def protect_volume(model: AMIFModel, mri: sitk.Image, other: sitk.Image, identifier: str = DEFAULT_IDENTIFIER,
                   axis: int | None = None, progress: Progress | None = None, cancel: Cancel | None = None,
                   notice: Callable[[str], None] = print) -> tuple[sitk.Image, VolumeKey]:
    """Fuse an MRI with a registered CT/PET/SPECT volume and burn in the identifier.

    ``mri``, ``other``: 3D scalar volumes of any real pixel type and range;
    ``other`` is resampled onto the MRI grid (linear) when needed, with a
    one-line ``notice``. ``axis``: numpy slice axis, default
    :func:`slice_axis` of the MRI. ``progress(done, total)`` counts slices;
    ``cancel()`` returning True stops with :class:`~amif_core.errors.CancelledError`.

    The identifier is drawn to read upright in the standard view of the
    slices (:func:`display_orientation`). Returns the protected volume
    (float32 in [0, 1], exactly the MRI's geometry, no metadata) and its
    :class:`VolumeKey`. The inputs are not modified.
    """
    check_volume(mri, "MRI")
    check_volume(other, "second scan")
    identifier = check_identifier(identifier)
    axis = slice_axis(mri) if axis is None else axis
    _check_axis(axis, mri)
    _check_finite(mri, "MRI")
    _check_finite(other, "second scan")
    on_grid, covered = resample_to_reference(other, mri)
    if covered is not None:
        partial = (f"; it covers only {covered:.0%} of the MRI, the rest takes its lowest value (the fusion shows the "
                   "MRI alone there): check the registration") if covered < PARTIAL_COVERAGE else ""
        notice(f"Resampled the second scan ({describe(other)}) onto the MRI grid ({describe(mri)}), linear "
               f"interpolation{partial}.")
    style = IdentifierStyle(**display_orientation(mri, axis))
    result = model.protect(_axis_first(mri, axis), _axis_first(on_grid, axis), identifier, style,
                           progress=progress, cancel=cancel)
    del on_grid
    protected = _from_axis_first(result.image, axis, mri)
    key = result.key
    del result
    geometry = image_geometry(protected)
    return protected, VolumeKey(
        key=key, axis=axis, size=tuple(geometry["size"]), spacing=tuple(geometry["spacing"]),
        origin=tuple(geometry["origin"]), direction=tuple(geometry["direction"]),
        volume_fingerprint=volume_fingerprint(protected),
    )


def _geometry_changes(image: sitk.Image, key: VolumeKey) -> list[str]:
    changed = []
    for name, atol in (("spacing", GEOMETRY_ATOL_MM), ("origin", GEOMETRY_ATOL_MM), ("direction", DIRECTION_ATOL)):
        if not np.allclose(image_geometry(image)[name], key.geometry()[name], rtol=0, atol=atol):
            changed.append(name)
    return changed


def check_key_fits(model: AMIFModel, protected: sitk.Image, key: VolumeKey) -> None:
    """Raise unless ``key`` unlocks ``protected`` with ``model``; each reason has its own error.

    :class:`ModelMismatchError`: made by other weights. :class:`KeyMismatchError`:
    made for another volume (both fingerprints shortened in the message).
    :class:`ImageModifiedError`: made for this volume, but its voxels or
    geometry changed since (edited, resampled, re-saved at lower precision).
    """
    if key.key.model_id != model.model_id:
        raise ModelMismatchError(
            f"This key was made by AMIF weights {short(key.key.model_id)}, but the loaded weights are "
            f"{short(model.model_id)}: another model version. Unlock with the weights that protected the volume.")
    actual = volume_fingerprint(protected)
    if actual == key.volume_fingerprint:
        return
    prints = f"(volume fingerprint {short(actual)}, the key expects {short(key.volume_fingerprint)})"
    size = "x".join(str(v) for v in protected.GetSize())
    if tuple(protected.GetSize()) != tuple(key.size):
        raise KeyMismatchError(
            f"This key belongs to another volume {prints}: it is for {'x'.join(str(v) for v in key.size)} voxels, "
            f"this volume has {size}. Use the key written together with this protected volume.")
    voxels = _axis_first(protected, key.axis)
    if image_fingerprint(voxels) == key.key.fingerprint:
        changes = _geometry_changes(protected, key)
        if not changes:
            return  # the same voxels; geometry re-stored at lower precision (e.g. NIfTI)
        raise ImageModifiedError(
            f"The protected volume's voxels are intact, but its {' and '.join(changes)} changed since it was "
            f"protected {prints}. Unlock the original protected file, or restore its geometry.")
    if protected.GetPixelID() in FLOAT_TYPES and not all(np.isfinite(plane).all() for plane in voxels):
        raise ImageModifiedError(
            f"The protected volume contains NaN or infinite voxels, which AMIF never writes: it was modified after "
            f"it was protected {prints}. Unlock the original protected file.")
    if protected.GetPixelID() not in FLOAT_TYPES:
        raise ImageModifiedError(
            f"The protected volume is stored as '{protected.GetPixelIDTypeAsString()}', but AMIF wrote it as 32-bit "
            f"float: it was re-saved at lower precision {prints}. Unlock the original float32 protected file.")
    if signatures_match(image_signature(voxels), key.key.signature):
        raise ImageModifiedError(
            f"The protected volume was modified after it was protected {prints}: it was edited, filtered or "
            "re-saved at lower precision. Unlock the original float32 protected file.")
    raise KeyMismatchError(
        f"This key belongs to another volume {prints}. Use the key written together with this protected volume.")


def unlock_volume(model: AMIFModel, protected: sitk.Image, key: VolumeKey, verify: bool = True,
                  progress: Progress | None = None, cancel: Cancel | None = None) -> sitk.Image:
    """Recover the watermark-free fusion of a protected volume with its key.

    Checks the key first (:func:`check_key_fits`; ``verify=False`` skips that,
    for evaluating wrong keys only). Returns float32 in [0, 1] on the
    protected volume's geometry. ``progress``/``cancel`` as in :func:`protect_volume`.
    """
    check_volume(protected, "protected volume")
    if not verify:
        if tuple(protected.GetSize()) != tuple(key.size):
            raise InputError(f"The protected volume has {protected.GetSize()} voxels but the key is for {key.size}; "
                             "even a forced unlock needs the same size.")
    else:
        check_key_fits(model, protected, key)
    clean = model.unlock(_axis_first(protected, key.axis), key.key, verify=False, progress=progress, cancel=cancel)
    return _from_axis_first(clean, key.axis, protected)
