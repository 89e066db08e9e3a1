"""3D scans on disk: read, check and write volumes atomically.

Volumes are SimpleITK images: a 3D scalar voxel array plus its geometry
(size, spacing in mm, origin in mm and a 3x3 direction matrix, LPS patient
coordinates). Numpy views of them are (z, y, x) = (slice, row, column)
arrays. Their grids are :mod:`amif_core.io.geometry`'s job; protecting and
unlocking them, :mod:`amif_core.inference.pipeline`'s.
"""
from __future__ import annotations

import errno
import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from amif_core.errors import InputError
from amif_core.atomic import Output, write_atomically

READ_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
WRITE_SUFFIXES = (".nrrd", ".nii", ".nii.gz", ".mha")  # single-file formats only: they can be written atomically
SCALAR_TYPES = {
    sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16, sitk.sitkUInt32, sitk.sitkInt32,
    sitk.sitkUInt64, sitk.sitkInt64, sitk.sitkFloat32, sitk.sitkFloat64,
}
FLOAT_TYPES = {sitk.sitkFloat32, sitk.sitkFloat64, sitk.sitkVectorFloat32, sitk.sitkVectorFloat64}
RGB_TYPES = {sitk.sitkVectorUInt8, sitk.sitkVectorFloat32, sitk.sitkVectorFloat64}


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def is_rgb_volume(image: sitk.Image) -> bool:
    """True for a 3D volume of RGB voxels (3 components of a real type), as a colour PET/SPECT is stored."""
    return (image.GetDimension() == 3 and image.GetNumberOfComponentsPerPixel() == 3
            and image.GetPixelID() in RGB_TYPES)


def check_volume(image: sitk.Image, name: str = "volume", rgb: bool = False) -> None:
    """Raise :class:`InputError` unless ``image`` is a 3D, single-channel, real-valued volume (or RGB with ``rgb``)."""
    if image.GetDimension() != 3:
        raise InputError("The {name} is {dimension}D; AMIF needs a 3D volume. "
                         "Give a 3D scan (for a 4D series, extract one 3D frame first).", name=name,
                         dimension=image.GetDimension())
    if rgb and is_rgb_volume(image):
        return
    if image.GetNumberOfComponentsPerPixel() != 1 or image.GetPixelID() not in SCALAR_TYPES:
        raise InputError("The {name} holds voxels of type '{pixel_type}' ({components} values each); AMIF needs one "
                         "real value per voxel. Convert colour, vector, complex or label-map images to a "
                         "single-channel (greyscale) volume first.", name=name,
                         pixel_type=image.GetPixelIDTypeAsString(), components=image.GetNumberOfComponentsPerPixel())


def _read_dicom_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise InputError("The folder {folder} contains no DICOM series. Give a folder with one DICOM series, "
                         "or a volume file ({suffixes}).", folder=folder, suffixes=", ".join(READ_SUFFIXES))
    if len(series) > 1:
        listed = ", ".join(f"{uid} ({len(reader.GetGDCMSeriesFileNames(str(folder), uid))} files)" for uid in series)
        raise InputError("The folder {folder} contains {count} DICOM series: {listed}. "
                         "Put the series you want into a folder of its own.", folder=folder, count=len(series),
                         listed=listed)
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series[0]))
    return reader.Execute()


def read_volume(path: str | Path) -> sitk.Image:
    """Read a 3D scan: a .nrrd/.nhdr, .nii/.nii.gz or .mha/.mhd file, or a folder holding one DICOM series.

    Returns the image with its own pixel type and geometry. Raises
    :class:`InputError` for a missing path, an unsupported or unreadable file,
    anything but a 3D single-channel real-valued or RGB volume, and a NIfTI file
    that stores NaN or infinite voxels (ITK's reader would silently make them 0).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("{path} does not exist.", path=path)
    if not path.is_dir() and _suffix(path) not in READ_SUFFIXES:
        raise InputError("{path} is not a supported volume: use {suffixes} "
                         "or a folder holding one DICOM series.", path=path, suffixes=", ".join(READ_SUFFIXES))
    try:
        image = _read_dicom_series(path) if path.is_dir() else sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise InputError("Could not read {path}: {reason}", path=path, reason=_first_line(error)) from error
    check_volume(image, f"volume in {path}", rgb=True)
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
                raise InputError("The volume in {path} contains NaN or infinite voxels (NIfTI readers silently "
                                 "read them as 0); replace them (for example with 0) first.", path=path)


def check_volume_path(path: str | Path) -> None:
    """Raise :class:`InputError` unless AMIF can write a volume to ``path`` (judged by its extension)."""
    if _suffix(Path(path)) not in WRITE_SUFFIXES:
        raise InputError("Cannot write {path}: use one of {suffixes} "
                         "(.nhdr and .mhd keep their voxels in a second file, so they are not offered).", path=path,
                         suffixes=", ".join(WRITE_SUFFIXES))


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
    :class:`FileExistsError`). No metadata is added.
    """
    write_atomically([volume_output(image, path)], force)


