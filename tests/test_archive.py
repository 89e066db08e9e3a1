"""Protected volumes in archives: integer-exact storage, DICOM series out and back in, and what is still refused.

Every way a protected volume is stored (16-bit NRRD, NIfTI, MHA, int16, a
DICOM series read by SimpleITK and by pydicom; 8-bit RGB in colour) unlocks to
>= 50 dB; each real modification is refused with its own message; the DICOM
series copies the MRI series' patient and study, has the MRI grid, validates,
and holds no key material.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from volume_factory import coarse_pet, geometry_close, oblique_mri, rotation, scan, snapshot

import amif_core.cli.main as cli
from amif_core.errors import ImageModifiedError, InputError, KeyMismatchError
from amif_core.evaluation import archive
from amif_core.inference.model import AMIFModel
from amif_core.inference.pipeline import protect_volume, unlock_volume
from amif_core.atomic import Output, write_atomically
from amif_core.io.dicom import dicom_series_output, read_series_with_pydicom, source_attributes
from amif_core.io.volumes import read_volume
from amif_core.key.file import read_key, write_key
from amif_core.key.storage import GREY_LEVELS, from_stored, quantise, to_stored

IDENTIFIER = "Clinic \u00a9 7"


@pytest.fixture(scope="module")
def source_series(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The oblique test MRI as a scanner's DICOM series, with a patient and a study."""
    folder = tmp_path_factory.mktemp("mri-series")
    attributes = {**archive.SOURCE_PATIENT, "StudyInstanceUID": pydicom.uid.generate_uid(),
                  "FrameOfReferenceUID": pydicom.uid.generate_uid()}
    archive.write_source_series(oblique_mri(), folder, attributes)
    return folder, attributes


def test_the_storage_is_exact_for_every_integer_type() -> None:
    image = np.random.default_rng(0).random((3, 7, 5)).astype(np.float32)
    stored = quantise(image, GREY_LEVELS)
    integers = to_stored(stored, GREY_LEVELS)
    assert integers.dtype == np.uint16 and integers.max() <= GREY_LEVELS <= np.iinfo(np.int16).max
    for dtype in (np.uint16, np.int16, np.int32, np.float32, np.float64):
        assert np.array_equal(from_stored(integers.astype(dtype), GREY_LEVELS), stored)
    assert np.abs(stored - image).max() <= 0.5 / GREY_LEVELS + 1e-7


@pytest.mark.parametrize("colour_table", [None, "pet"])
def test_every_lossless_store_unlocks_to_50_db(model: AMIFModel, source_series: tuple[Path, dict], tmp_path: Path,
                                               colour_table: str | None) -> None:
    mri = read_volume(source_series[0])
    results = archive.survivals(model, mri, coarse_pet(), tmp_path, IDENTIFIER, colour_table,
                                source_attributes(source_series[0]))
    names = [result.name for result in results]
    assert any("DICOM, read by SimpleITK" in name for name in names)
    assert any("DICOM, read by pydicom" in name for name in names)
    if colour_table is None:
        assert any(name.startswith("16-bit signed integer") for name in names)  # a signed re-save too
    assert all(result.psnr_db >= 50 for result in results), results


@pytest.mark.parametrize("colour_table", [None, "pet"])
def test_real_modifications_are_refused_with_their_own_messages(model: AMIFModel, tmp_path: Path,
                                                                colour_table: str | None) -> None:
    # 64 x 64 slices: the 8 x 8 blocks of the key's signature then hold 64 voxels each, as in real scans (>= 1024)
    mri = scan((64, 64, 6), (1.0, 1.0, 2.0), rotation(about_x=10), pixel_type=sitk.sitkInt16)
    pet = scan((40, 40, 5), (1.6, 1.6, 2.4), rotation(about_y=-5), kind="pet")
    protected, key = protect_volume(model, mri, pet, IDENTIFIER, colour_table=colour_table, notice=lambda _: None)
    refused = {result.name: result for result in archive.refusals(model, protected, key)}
    expected = {
        "cropped": ("ImageModifiedError", "was cropped after it was protected"),
        "resampled by a third of a voxel": ("ImageModifiedError", "was modified after it was protected"),
        "resampled to a coarser grid": ("ImageModifiedError", "was resampled after it was protected"),
        "filtered (Gaussian, sigma 1 mm)": ("ImageModifiedError", "was modified after it was protected"),
        "edited voxel": ("ImageModifiedError", "was modified after it was protected"),
    }
    if colour_table is None:
        expected["down-cast to 8-bit"] = ("ImageModifiedError", "it was down-cast")
    assert set(refused) == set(expected)
    for name, (error, words) in expected.items():
        assert refused[name].error == error and words in refused[name].message, refused[name]


def test_the_dicom_series_copies_the_study_has_the_mri_grid_validates_and_holds_no_key(
        model: AMIFModel, source_series: tuple[Path, dict], tmp_path: Path) -> None:
    folder, attributes = source_series
    mri = read_volume(folder)
    protected, key = protect_volume(model, mri, coarse_pet(), IDENTIFIER, notice=lambda _: None)
    write_key(tmp_path / "k.amifkey", key)
    series = tmp_path / "series"
    write_atomically([dicom_series_output(protected, series, key.identifier, source_attributes(folder))])
    files = sorted(series.glob("*.dcm"))
    assert len(files) == mri.GetSize()[2]
    datasets = [pydicom.dcmread(path) for path in files]
    source = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
    for ds in datasets:
        for name, value in attributes.items():
            assert str(ds.data_element(name).value) == str(value), name
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID and ds.SOPInstanceUID != source.SOPInstanceUID
        assert (ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation) == (
            "MONOCHROME2", 16, 16, 0)
        assert IDENTIFIER in ds.DerivationDescription and IDENTIFIER in ds.ImageComments
        assert "AMIF-protected fusion" in ds.DerivationDescription and ds.BurnedInAnnotation == "YES"
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets) == len({ds.InstanceNumber for ds in datasets})
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    back = read_volume(series)
    assert geometry_close(back, mri, 1e-4) and back.GetPixelID() == sitk.sitkUInt16
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(protected))
    validator, errors = archive.check_dicom(series)
    assert validator in ("dciodvfy", "pydicom") and errors == []
    assert archive.key_material_found(series, tmp_path / "k.amifkey", key) == []


def test_a_colour_series_is_8_bit_rgb_and_unlocks(model: AMIFModel, tmp_path: Path) -> None:
    protected, key = protect_volume(model, oblique_mri(), coarse_pet(), IDENTIFIER, colour_table="pet",
                                    notice=lambda _: None)
    assert protected.GetPixelID() == sitk.sitkVectorUInt8
    write_atomically([dicom_series_output(protected, tmp_path / "rgb", key.identifier)])
    ds = pydicom.dcmread(next((tmp_path / "rgb").glob("*.dcm")))
    assert (ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.BitsAllocated, ds.PlanarConfiguration) == (
        "RGB", 3, 8, 0)
    for read in (read_volume, read_series_with_pydicom):
        back = read(tmp_path / "rgb")
        assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(protected))
        assert unlock_volume(model, back, key).GetNumberOfComponentsPerPixel() == 3


def test_a_left_handed_grid_comes_back_from_dicom_in_its_own_slice_order(model: AMIFModel, tmp_path: Path) -> None:
    mri = scan((20, 16, 6), (1.0, 1.2, 2.5), direction=(1, 0, 0, 0, 1, 0, 0, 0, -1), pixel_type=sitk.sitkInt16)
    protected, key = protect_volume(model, mri, scan((20, 16, 6), (1.0, 1.2, 2.5), direction=(1, 0, 0, 0, 1, 0, 0, 0, -1),
                                                     kind="pet"), notice=lambda _: None)
    write_atomically([dicom_series_output(protected, tmp_path / "series", key.identifier)])
    back = read_volume(tmp_path / "series")
    assert np.allclose(back.GetDirection()[8], 1.0)  # DICOM's right-handed order
    unlocked = unlock_volume(model, back, key)
    assert geometry_close(unlocked, mri, 1e-4)
    assert np.array_equal(sitk.GetArrayFromImage(unlocked), sitk.GetArrayFromImage(unlock_volume(model, protected, key)))


def test_the_cli_writes_a_series_and_unlocks_it_back(capsys, weights_file: Path, source_series: tuple[Path, dict],
                                                     tmp_path: Path) -> None:
    folder = source_series[0]
    sitk.WriteImage(coarse_pet(), str(tmp_path / "pet.nrrd"))
    before = snapshot(folder)
    fuse = ["fuse", str(folder), str(tmp_path / "pet.nrrd"), "-o", str(tmp_path / "series"), "--dicom", "--key",
            str(tmp_path / "k.amifkey"), "--weights", str(weights_file), "--identifier", IDENTIFIER, "-q"]
    assert cli.main(fuse) == 0, capsys.readouterr().err
    assert snapshot(folder) == before
    assert cli.main(["unlock", str(tmp_path / "series"), "--key", str(tmp_path / "k.amifkey"), "-o",
                     str(tmp_path / "u.nrrd"), "--weights", str(weights_file), "-q"]) == 0
    assert read_volume(tmp_path / "u.nrrd").GetSize() == read_volume(folder).GetSize()
    (tmp_path / "k.amifkey").unlink()
    assert cli.main(fuse) == 2  # the series folder exists: nothing is overwritten without --force
    assert "already exists and is not empty" in capsys.readouterr().err and not (tmp_path / "k.amifkey").exists()
    assert cli.main([*fuse[:4], str(folder), *fuse[5:]]) == 2  # never into the MRI's own folder
    assert "AMIF never overwrites its inputs" in capsys.readouterr().err


def test_a_failing_series_write_leaves_nothing(tmp_path: Path) -> None:
    def broken(temp: Path) -> None:
        (temp / "IM00001.dcm").write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically([Output(tmp_path / "series", broken, folder=True)])
    assert os.listdir(tmp_path) == []


def test_only_amif_stored_volumes_become_dicom(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="uint16 grey or 8-bit RGB"):
        dicom_series_output(oblique_mri(), tmp_path / "series", IDENTIFIER)


def test_the_key_stays_small_and_a_float_copy_still_unlocks(model: AMIFModel, tmp_path: Path) -> None:
    mri = oblique_mri()
    protected, key = protect_volume(model, mri, coarse_pet(), IDENTIFIER, notice=lambda _: None)
    write_key(tmp_path / "k.amifkey", key)
    assert (tmp_path / "k.amifkey").stat().st_size <= 0.6 * 4 * mri.GetNumberOfPixels()
    as_float = sitk.Cast(protected, sitk.sitkFloat32)  # e.g. a viewer that loads integers as float
    from_float = unlock_volume(model, as_float, read_key(tmp_path / "k.amifkey"))
    assert np.array_equal(sitk.GetArrayViewFromImage(from_float),
                          sitk.GetArrayViewFromImage(unlock_volume(model, protected, key)))
    rescaled = sitk.Cast(sitk.ShiftScale(protected, 0, 2.0), sitk.sitkUInt16)  # stretched to the full 16 bits
    with pytest.raises((ImageModifiedError, KeyMismatchError)):
        unlock_volume(model, rescaled, key)
