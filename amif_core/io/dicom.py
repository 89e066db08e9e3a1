"""Protected volumes as derived DICOM series, for archives (PACS): written with pydicom, read back by either reader.

:func:`dicom_series_output` writes one Secondary Capture instance per slice
of the volume's k axis (SimpleITK's z): grey as MONOCHROME2 16-bit unsigned,
colour as RGB 8-bit, the stored integers exactly (no rescaling, no
compression). Each instance carries the MRI grid's Image Position and
Orientation (Patient), Pixel Spacing and slice spacing; patient and study
attributes (and the frame of reference) are copied from the MRI series when
the MRI came from DICOM (:func:`source_attributes`), with new Series and SOP
Instance UIDs. Derivation Description and Image Comments say that it is an
AMIF-protected fusion, with its identifier text. No key material is written.

DICOM has right-handed slice order (the normal is row x column): a volume
whose grid is left-handed is written in reversed k order, and a reader gives
it back so; :func:`amif_core.io.geometry.restore_slice_order` undoes that
before a key is checked. Readers: :func:`amif_core.io.volumes.read_volume`
(SimpleITK/GDCM) and :func:`read_series_with_pydicom`.
"""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from amif_core.constants import VERSION
from amif_core.errors import InputError
from amif_core.atomic import Output

SOURCE_ATTRIBUTES = (  # copied from the MRI series: the patient, the study and the MRI's frame of reference
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName",
    "StudyDescription", "FrameOfReferenceUID",
)
TYPE2_EMPTY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
               "AccessionNumber", "ReferringPhysicianName", "PositionReferenceIndicator", "PatientOrientation",
               "Manufacturer")
SERIES_DESCRIPTION = "AMIF protected fusion"


def _pydicom():
    try:
        import pydicom
    except ModuleNotFoundError as error:
        raise InputError("Writing or reading DICOM with AMIF needs the Python package pydicom: "
                         "pip install pydicom") from error
    return pydicom


def source_attributes(mri_path: str | Path) -> dict[str, object]:
    """The patient and study attributes of the MRI series in the folder ``mri_path`` (empty when the MRI is a
    volume file): {keyword: value} for the :data:`SOURCE_ATTRIBUTES` the first file holds."""
    path = Path(mri_path)
    if not path.is_dir():
        return {}
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(path))
    if not series:
        return {}
    first = reader.GetGDCMSeriesFileNames(str(path), series[0])[0]
    dataset = _pydicom().dcmread(first, stop_before_pixels=True)
    return {name: dataset.data_element(name).value for name in SOURCE_ATTRIBUTES if name in dataset}


def _ds(value: float) -> str:
    """A DICOM decimal string of at most 16 characters holding ``value`` as exactly as it can."""
    for digits in range(15, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    raise ValueError(f"{value} has no 16-character decimal string")


def _slice_order(image: sitk.Image) -> tuple[np.ndarray, bool]:
    """The volume's direction matrix (columns: i, j, k) and whether its k axis runs against DICOM's normal."""
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    normal = np.cross(direction[:, 0], direction[:, 1])
    return direction, float(normal @ direction[:, 2]) < 0


def _base_dataset(image: sitk.Image, identifier: str, source: dict[str, object], now: datetime.datetime) -> object:
    pydicom = _pydicom()
    ds = pydicom.Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the identifier may hold any character
    for name in TYPE2_EMPTY:
        setattr(ds, name, "")
    for name, value in source.items():
        setattr(ds, name, value)
    ds.SOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    ds.StudyInstanceUID = source.get("StudyInstanceUID") or pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.FrameOfReferenceUID = source.get("FrameOfReferenceUID") or pydicom.uid.generate_uid()
    ds.Modality = "OT"
    ds.SeriesNumber = 9001
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.SeriesDate, ds.SeriesTime = ds.ContentDate, ds.ContentTime
    ds.ConversionType = "WSD"
    ds.Manufacturer = "AMIF"
    ds.SecondaryCaptureDeviceManufacturer = "AMIF"
    ds.SecondaryCaptureDeviceSoftwareVersions = VERSION
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = (f"AMIF-protected fusion of an MRI with a CT/PET/SPECT; visible identifier "
                                f"'{identifier}'")[:1024]
    ds.ImageComments = (f"AMIF-protected fusion carrying the identifier '{identifier}'. The identifier-free fusion "
                        "is released only with the key file written with it (not stored here).")[:10240]
    ds.BurnedInAnnotation = "YES"
    ds.LossyImageCompression = "00"
    spacing = image.GetSpacing()
    ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]  # (between rows, between columns)
    ds.SliceThickness = _ds(spacing[2])
    ds.SpacingBetweenSlices = _ds(spacing[2])
    direction, _ = _slice_order(image)
    ds.ImageOrientationPatient = [_ds(v) for v in np.concatenate([direction[:, 0], direction[:, 1]])]
    rgb = image.GetNumberOfComponentsPerPixel() == 3
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
    if rgb:
        ds.PlanarConfiguration = 0
    bits = 8 * image.GetSizeOfPixelComponent()
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    size = image.GetSize()
    ds.Columns, ds.Rows = size[0], size[1]
    return ds


def dicom_series_output(image: sitk.Image, folder: str | Path, identifier: str,
                        source: dict[str, object] | None = None) -> Output:
    """An :class:`~amif_core.atomic.Output` that writes ``image`` (AMIF's stored protected volume: uint16 grey
    or 8-bit RGB vector voxels) as a DICOM series into the new folder ``folder``, one file per k slice.

    ``source``: the MRI series' attributes (:func:`source_attributes`). Raises
    :class:`InputError` for any other pixel type.
    """
    pydicom = _pydicom()
    pixel = image.GetPixelID()
    if pixel not in (sitk.sitkUInt16, sitk.sitkVectorUInt8) or (
            pixel == sitk.sitkVectorUInt8 and image.GetNumberOfComponentsPerPixel() != 3):
        raise InputError("AMIF writes DICOM for its protected volumes only (uint16 grey or 8-bit RGB), not for "
                         "'{pixel_type}'.", pixel_type=image.GetPixelIDTypeAsString())
    source = dict(source or {})

    def write(temp: Path) -> None:
        base = _base_dataset(image, identifier, source, datetime.datetime.now())
        voxels = sitk.GetArrayViewFromImage(image)
        _, reversed_k = _slice_order(image)
        depth = voxels.shape[0]
        for number in range(depth):
            k = depth - 1 - number if reversed_k else number
            ds = base.copy()
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            ds.InstanceNumber = number + 1
            position = image.TransformIndexToPhysicalPoint((0, 0, int(k)))
            ds.ImagePositionPatient = [_ds(v) for v in position]
            ds.PixelData = np.ascontiguousarray(voxels[k]).astype(voxels.dtype.newbyteorder("<")).tobytes()
            meta = pydicom.dataset.FileMetaDataset()
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
            meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
            ds.file_meta = meta
            path = temp / f"IM{number + 1:05d}.dcm"
            ds.save_as(path, enforce_file_format=True)  # write_atomically flushes each file to disk

    return Output(Path(folder), write, folder=True)


def read_series_with_pydicom(folder: str | Path) -> sitk.Image:
    """Read a DICOM series that AMIF wrote (or any uncompressed single-frame series) with pydicom alone: slices
    sorted along the normal, geometry from the Image Plane attributes; uint16 (or int16) grey or 8-bit RGB vector."""
    pydicom = _pydicom()
    files = sorted(Path(folder).glob("*.dcm"))
    if not files:
        raise InputError("The folder {folder} holds no .dcm files.", folder=folder)
    datasets = [pydicom.dcmread(path) for path in files]
    orientation = np.array(datasets[0].ImageOrientationPatient, dtype=np.float64)
    row, column = orientation[:3], orientation[3:]
    normal = np.cross(row, column)
    datasets.sort(key=lambda ds: float(np.array(ds.ImagePositionPatient, dtype=np.float64) @ normal))
    positions = np.array([ds.ImagePositionPatient for ds in datasets], dtype=np.float64)
    array = np.stack([ds.pixel_array for ds in datasets])
    image = sitk.GetImageFromArray(array, isVector=array.ndim == 4)
    spacing_z = float(np.linalg.norm(positions[-1] - positions[0]) / (len(datasets) - 1)) if len(datasets) > 1 \
        else float(datasets[0].SliceThickness)
    pixel_spacing = [float(v) for v in datasets[0].PixelSpacing]
    image.SetSpacing((pixel_spacing[1], pixel_spacing[0], spacing_z))
    image.SetOrigin(tuple(positions[0]))
    image.SetDirection(tuple(np.column_stack([row, column, normal]).reshape(-1)))
    return image
