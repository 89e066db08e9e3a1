"""Archive round trips of protected volumes: what survives (integer re-saves, DICOM out and back) and what is
refused (real modifications), measured on any MRI and second scan.

:func:`survivals` stores one protected volume each way an archive or a viewer
would (16-bit NRRD, NIfTI and MHA, signed 16-bit, a DICOM series read back by
SimpleITK and by pydicom) and unlocks it again; :func:`refusals` modifies it
and records how the key refuses each copy; :func:`check_dicom` validates a
series and searches its bytes for the key. ``benchmarks/archive_roundtrips.py``
prints these figures and the tests assert them.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from amif_core.errors import KeyMismatchError
from amif_core.evaluation.psnr import psnr
from amif_core.inference.model import AMIFModel
from amif_core.inference.pipeline import protect_volume, protected_voxels, unlock_volume
from amif_core.atomic import write_atomically
from amif_core.io.dicom import dicom_series_output, read_series_with_pydicom
from amif_core.io.geometry import axis_first, resample_to_reference
from amif_core.io.volumes import read_volume, write_volume
from amif_core.key.core import Key, image_signature, signature_correlation
from amif_core.key.file import read_key, write_key

SOURCE_PATIENT = {  # the stand-in scanner series' patient and study (made up)
    "PatientName": "Archive^Test", "PatientID": "AMIF-0001", "PatientBirthDate": "19700101", "PatientSex": "O",
    "StudyDate": "20261201", "StudyTime": "120000", "StudyID": "42", "AccessionNumber": "ACC-42",
    "StudyDescription": "AMIF archive check",
}
_SITK_TAGS = {"PatientName": "0010|0010", "PatientID": "0010|0020", "PatientBirthDate": "0010|0030",
              "PatientSex": "0010|0040", "StudyDate": "0008|0020", "StudyTime": "0008|0030", "StudyID": "0020|0010",
              "AccessionNumber": "0008|0050", "StudyDescription": "0008|1030", "StudyInstanceUID": "0020|000d",
              "FrameOfReferenceUID": "0020|0052"}


@dataclass(frozen=True)
class Survival:
    """One way of storing the protected volume and the unlock from it: ``psnr_db`` against the clean fusion."""

    name: str
    psnr_db: float


@dataclass(frozen=True)
class Refusal:
    """One modified copy and what unlocking it raised (``error`` is the class name; None: it unlocked), with the
    Pearson r of its signature and the key's (None when the sizes differ; see
    :func:`~amif_core.key.core.signatures_match`)."""

    name: str
    error: str | None
    message: str
    correlation: float | None


def write_source_series(image: sitk.Image, folder: Path, attributes: dict[str, str]) -> None:
    """Write a scalar MRI as a DICOM series (int16, one file per k slice, with SimpleITK/GDCM), a stand-in for a
    scanner's series: ``attributes`` (keywords of :data:`SOURCE_PATIENT`, plus the study and frame UIDs) go into
    every file."""
    import pydicom

    folder.mkdir(parents=True, exist_ok=True)
    scaled = sitk.Cast(sitk.RescaleIntensity(image, 0, 4000), sitk.sitkInt16)
    series = pydicom.uid.generate_uid()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = scaled.GetDirection()
    for k in range(scaled.GetSize()[2]):
        plane = scaled[:, :, k]
        for name, value in attributes.items():
            plane.SetMetaData(_SITK_TAGS[name], str(value))
        plane.SetMetaData("0008|0060", "MR")
        plane.SetMetaData("0020|000e", series)
        plane.SetMetaData("0008|0018", pydicom.uid.generate_uid())
        plane.SetMetaData("0020|0013", str(k + 1))
        plane.SetMetaData("0020|0037", "\\".join(f"{v:.10g}" for v in direction[0::3] + direction[1::3]))
        plane.SetMetaData("0020|0032", "\\".join(f"{v:.10g}" for v in
                                                scaled.TransformIndexToPhysicalPoint((0, 0, k))))
        writer.SetFileName(str(folder / f"MR{k + 1:05d}.dcm"))
        writer.Execute(plane)


def clean_fusion(model: AMIFModel, mri: sitk.Image, other: sitk.Image, axis: int,
                 colour_table: str | None = None) -> np.ndarray:
    """The watermark-free fusion on the MRI grid, in SimpleITK's (z, y, x) order (RGB: (z, y, x, 3)) float32."""
    on_grid, _ = resample_to_reference(other, mri)
    fused = model.fuse_clean(axis_first(mri, axis), axis_first(on_grid, axis), colour_table=colour_table)
    return np.moveaxis(fused, 0, axis)


def _unlocked_psnr(model: AMIFModel, protected: sitk.Image, key: Key, clean: np.ndarray) -> float:
    return psnr(sitk.GetArrayFromImage(unlock_volume(model, protected, key)), clean)


def survivals(model: AMIFModel, mri: sitk.Image, other: sitk.Image, folder: Path, identifier: str,
              colour_table: str | None = None, source: dict[str, object] | None = None) -> list[Survival]:
    """Protect once, store the protected volume each way (into ``folder``), read it back and unlock it.

    Grey: uint16 NRRD, NIfTI and MHA, int16 NRRD, and a DICOM series read by
    SimpleITK and by pydicom. Colour: 8-bit RGB NRRD and the DICOM series.
    ``source``: the MRI series' attributes for the DICOM output.
    """
    protected, key = protect_volume(model, mri, other, identifier, colour_table=colour_table, notice=lambda _: None)
    clean = clean_fusion(model, mri, other, key.axis, colour_table)
    write_key(folder / "protected.amifkey", key)
    key = read_key(folder / "protected.amifkey")
    results = [Survival("as protected (in memory)", _unlocked_psnr(model, protected, key, clean))]
    stores: list[tuple[str, str, Callable[[sitk.Image], sitk.Image]]] = [
        ("NRRD", "protected.nrrd", lambda image: image)]
    if key.colour is None:
        stores += [("NIfTI", "protected.nii.gz", lambda image: image), ("MHA", "protected.mha", lambda image: image),
                   ("int16 NRRD", "protected-int16.nrrd", lambda image: sitk.Cast(image, sitk.sitkInt16))]
    for name, file_name, convert in stores:
        write_volume(convert(protected), folder / file_name)
        stored = read_volume(folder / file_name)
        results.append(Survival(f"{stored.GetPixelIDTypeAsString()} {name}", _unlocked_psnr(model, stored, key, clean)))
    series = folder / "protected-dicom"
    write_atomically([dicom_series_output(protected, series, key.identifier, source)])
    kind = "8-bit RGB" if key.colour is not None else "16-bit grey"
    for reader, read in (("SimpleITK", read_volume), ("pydicom", read_series_with_pydicom)):
        results.append(Survival(f"{kind} DICOM, read by {reader}", _unlocked_psnr(model, read(series), key, clean)))
    return results


def _smoothed(protected: sitk.Image, sigma_mm: float) -> sitk.Image:
    """``protected`` through a 3D Gaussian filter, rounded and clamped back into its own integer type."""
    smooth = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(sitk.Cast(
        protected, sitk.sitkVectorFloat32 if protected.GetNumberOfComponentsPerPixel() > 1 else sitk.sitkFloat32),
        sigma_mm))
    dtype = sitk.GetArrayViewFromImage(protected).dtype
    image = sitk.GetImageFromArray(np.clip(np.rint(smooth), 0, np.iinfo(dtype).max).astype(dtype),
                                   isVector=protected.GetNumberOfComponentsPerPixel() > 1)
    image.CopyInformation(protected)
    return image


def _coarser(protected: sitk.Image, factor: float = 4 / 3) -> sitk.Image:
    """``protected`` resampled (linear) onto a grid of ``factor`` times its spacing over the same region."""
    size = [max(1, round(n / factor)) for n in protected.GetSize()]
    spacing = [n * s / m for n, s, m in zip(protected.GetSize(), protected.GetSpacing(), size)]
    return sitk.Resample(protected, size, sitk.Transform(), sitk.sitkLinear, protected.GetOrigin(), spacing,
                         protected.GetDirection(), 0, protected.GetPixelID())


def _modified_copies(protected: sitk.Image) -> dict[str, sitk.Image]:
    size = protected.GetSize()
    edited = sitk.Image(protected)
    middle = tuple(s // 2 for s in size)
    edited[middle] = 0 if protected.GetNumberOfComponentsPerPixel() == 1 else (0, 0, 0)
    copies = {
        "cropped": protected[1:, :, :],
        "resampled by a third of a voxel": sitk.Resample(protected, protected, sitk.TranslationTransform(
            3, tuple(s / 3 for s in protected.GetSpacing())), sitk.sitkLinear),
        "resampled to a coarser grid": _coarser(protected),
        "filtered (Gaussian, sigma 1 mm)": _smoothed(protected, 1.0),
        "edited voxel": edited,
    }
    if protected.GetNumberOfComponentsPerPixel() == 1:
        copies["down-cast to 8-bit"] = sitk.Cast(sitk.RescaleIntensity(protected, 0, 255), sitk.sitkUInt8)
    return copies


def _correlation(copy: sitk.Image, key: Key) -> float | None:
    if tuple(copy.GetSize()) != tuple(key.size):
        return None
    return signature_correlation(image_signature(protected_voxels(copy, key), key.colour is not None), key.signature)


def _refusal(model: AMIFModel, name: str, copy: sitk.Image, key: Key) -> Refusal:
    try:
        unlock_volume(model, copy, key)
    except KeyMismatchError as error:
        return Refusal(name, type(error).__name__, str(error), _correlation(copy, key))
    return Refusal(name, None, "unlocked", _correlation(copy, key))


def refusals(model: AMIFModel, protected: sitk.Image, key: Key) -> list[Refusal]:
    """Unlock modified copies of ``protected`` (cropped, resampled by a third of a voxel and onto a coarser
    grid, smoothed, one voxel edited, and for grey down-cast to 8 bits) and record what each raised."""
    return [_refusal(model, name, copy, key) for name, copy in _modified_copies(protected).items()]


def other_volumes(model: AMIFModel, protected: sitk.Image, key: Key, other: sitk.Image) -> list[Refusal]:
    """What the key says of volumes on its grid that are not its image: ``other`` (another fusion of the same
    MRI), ``protected`` mirrored left-right, and its slices shifted by one."""
    voxels = sitk.GetArrayFromImage(protected)
    copies = {"another fusion of the same MRI": other,
              "mirrored left-right": voxels[:, :, ::-1], "slices shifted by one": np.roll(voxels, 1, axis=key.axis)}
    results = []
    for name, copy in copies.items():
        if isinstance(copy, np.ndarray):
            copy = sitk.GetImageFromArray(np.ascontiguousarray(copy), isVector=voxels.ndim == 4)
            copy.CopyInformation(protected)
        results.append(_refusal(model, name, copy, key))
    return results


def check_dicom(folder: Path) -> tuple[str, list[str]]:
    """Validate every file of a DICOM series: with ``dciodvfy`` (dicom3tools) when it is installed, else with
    pydicom (file meta, and every element re-read under its strict validation). Returns (validator, errors)."""
    files = sorted(folder.glob("*.dcm"))
    if shutil.which("dciodvfy"):
        errors = []
        for path in files:
            run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
            errors += [f"{path.name}: {line}" for line in (run.stdout + run.stderr).splitlines()
                       if line.startswith("Error")]
        return "dciodvfy", errors
    import pydicom
    from pydicom import config

    errors = []
    strict = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.RAISE
    try:
        for path in files:
            try:
                ds = pydicom.dcmread(path)
                pydicom.dataset.validate_file_meta(ds.file_meta, enforce_standard=True)
                for element in ds.iterall():
                    element.value  # noqa: B018 - reading the value runs pydicom's validation of its VR
                ds.pixel_array  # noqa: B018 - the pixel data must decode to Rows x Columns x Samples
            except Exception as error:  # every failure is reported, not raised
                errors.append(f"{path.name}: {error}")
    finally:
        config.settings.reading_validation_mode = strict
    return "pydicom", errors


def key_material_found(folder: Path, key_file: Path, key: Key) -> list[str]:
    """The files of ``folder`` that contain any 32-byte run of the key's payload (the key file after its
    header, and the codes as stored in memory); empty when none does."""
    raw = key_file.read_bytes()
    needles = [raw[-n:] for n in (32, 64)] + [raw[len(raw) // 2:len(raw) // 2 + 32]]
    for array in (key.codes, key.chroma_codes):
        data = np.ascontiguousarray(array).tobytes()
        needles += [data[i:i + 32] for i in range(0, min(len(data), 4096) - 31, 512)]
    found = []
    for path in sorted(folder.glob("*.dcm")):
        content = path.read_bytes()
        if any(needle and needle in content for needle in needles):
            found.append(path.name)
    return found

