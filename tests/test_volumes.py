"""amif_core.io.volumes: reading, writing, grids, slicing and protect/unlock of real 3D volumes."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from volume_factory import (
    IDENTITY,
    coarse_pet,
    geometry_close,
    grid,
    oblique_mri,
    physical_points,
    reference_fusion,
    rotation,
    scan,
    snapshot,
)

from amif_core.errors import (
    CancelledError,
    ImageModifiedError,
    InputError,
    KeyMismatchError,
    ModelMismatchError,
)
from amif_core.inference.model import AMIFModel
from amif_core.inference.pipeline import protect_volume, unlock_volume
from amif_core.io.geometry import (
    display_orientation,
    extents_overlap,
    image_geometry,
    resample_to_reference,
    slice_axis,
    volume_fingerprint,
)
from amif_core.io.volumes import read_volume, write_volume
from amif_core.key.file import read_key, write_key
from amif_core.montage import oriented
from amif_core.transforms.identifier import IdentifierStyle, render_identifier_canvas
from amif_core.evaluation.fusion import psnr
from amif_core.key.storage import GREY_LEVELS

SAGITTAL = (0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0)  # index x runs superior, index z runs left
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0)  # index y runs superior


# ---------------------------------------------------------------- reading and writing


@pytest.mark.parametrize("name", ["scan.nrrd", "scan.nii.gz", "scan.nii", "scan.mha", "scan.mhd"])
def test_read_volume_formats_keep_voxels_and_geometry(tmp_path: Path, name: str) -> None:
    image = scan((11, 9, 5), (0.8, 1.1, 2.5), rotation(about_x=12), pixel_type=sitk.sitkInt16)
    sitk.WriteImage(image, str(tmp_path / name))
    read = read_volume(tmp_path / name)
    assert geometry_close(read, image, 1e-4)  # NIfTI stores geometry in float32
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(read), sitk.GetArrayViewFromImage(image))


def write_dicom_series(image: sitk.Image, folder: Path) -> None:
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    d = image.GetDirection()
    series = [("0008|0060", "MR"), ("0020|000d", "1.2.826.0.1.3680043.2.1125.1"),
              ("0020|000e", "1.2.826.0.1.3680043.2.1125.1.2"), ("0008|0008", "DERIVED\\SECONDARY"),
              ("0020|0037", "\\".join(str(v) for v in (d[0], d[3], d[6], d[1], d[4], d[7])))]
    for z in range(image.GetDepth()):
        plane = image[:, :, z]
        for tag, value in series:
            plane.SetMetaData(tag, value)
        plane.SetMetaData("0020|0032", "\\".join(str(v) for v in image.TransformIndexToPhysicalPoint((0, 0, z))))
        plane.SetMetaData("0020|0013", str(z + 1))
        plane.SetMetaData("0018|0050", str(image.GetSpacing()[2]))
        writer.SetFileName(str(folder / f"slice{z:03d}.dcm"))
        writer.Execute(plane)


def test_read_volume_dicom_series(tmp_path: Path) -> None:
    image = scan((12, 10, 6), (0.7, 0.7, 2.0), centre=(5.0, -3.0, 20.0), pixel_type=sitk.sitkInt16)
    write_dicom_series(image, tmp_path / "series")
    read = read_volume(tmp_path / "series")
    assert read.GetSize() == image.GetSize()
    assert np.allclose(read.GetSpacing(), image.GetSpacing(), atol=1e-4)
    assert np.allclose(read.GetOrigin(), image.GetOrigin(), atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(read), sitk.GetArrayViewFromImage(image))


def test_read_volume_errors_say_what_is_wrong(tmp_path: Path) -> None:
    sitk.WriteImage(sitk.Image([8, 8], sitk.sitkUInt8), str(tmp_path / "flat.nrrd"))
    sitk.WriteImage(sitk.Image([4, 4, 4, 3], sitk.sitkFloat32), str(tmp_path / "series4d.nrrd"))
    sitk.WriteImage(sitk.Image([6, 6, 6], sitk.sitkVectorUInt8, 2), str(tmp_path / "rgb.nrrd"))
    (tmp_path / "broken.nrrd").write_bytes(b"NRRD0004\nthis is not a header\n")
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    expected = {
        "missing.nrrd": "does not exist",
        "photo.png": "not a supported volume",
        "flat.nrrd": "is 2D",
        "series4d.nrrd": "is 4D",
        "rgb.nrrd": "'vector of 8-bit unsigned integer' \\(2 values each\\)",  # RGB (3) reads: colour PET
        "broken.nrrd": "Could not read",
        "empty_folder": "no DICOM series",
    }
    for name, words in expected.items():
        with pytest.raises(InputError, match=words):
            read_volume(tmp_path / name)


def test_write_volume_is_atomic_and_never_overwrites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = scan((9, 8, 3), (1.0, 1.0, 2.0))
    target = tmp_path / "out.nrrd"
    write_volume(image, target)
    before = snapshot(tmp_path)
    with pytest.raises(FileExistsError, match="already exists; nothing was overwritten"):
        write_volume(scan((9, 8, 3), (1.0, 1.0, 2.0), seed=5), target)
    assert snapshot(tmp_path) == before
    write_volume(scan((9, 8, 3), (1.0, 1.0, 2.0), seed=5), target, force=True)
    assert snapshot(tmp_path) != before and len(snapshot(tmp_path)) == 1

    def failing_write(*args, **kwargs):
        Path(args[1]).write_bytes(b"half a volume")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", failing_write)
    with pytest.raises(OSError, match="Could not write the volume: disk full"):
        write_volume(image, tmp_path / "second.nrrd")
    assert sorted(os.listdir(tmp_path)) == ["out.nrrd"]
    with pytest.raises(InputError, match="second file"):
        write_volume(image, tmp_path / "detached.mhd")


# ---------------------------------------------------------------- grids and slicing


@pytest.mark.parametrize(("direction", "axis"), [
    (IDENTITY, 0), (SAGITTAL, 2), (CORONAL, 1), (rotation(about_x=30), 0), (rotation(about_x=60), 1),
    (rotation(about_y=-70), 2),
])
def test_slice_axis_follows_superior_inferior(direction: tuple[float, ...], axis: int) -> None:
    assert slice_axis(grid((5, 6, 7), (1.0, 1.0, 1.0), direction)) == axis


@pytest.mark.parametrize("direction", [
    IDENTITY,  # LPS: no change
    (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0),  # RAS-stored, like the demo MRI: both in-plane axes reversed
    (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0),  # in-plane axes swapped: columns run A-P, rows R-L
    rotation(about_z=20),  # slightly oblique
])
def test_identifier_reads_upright_in_the_radiological_axial_view(direction: tuple[float, ...]) -> None:
    """The canvas drawn with display_orientation's style, shown as the montage (and Slicer) shows an
    axial slice, is the upright canvas of a plain 2D array."""
    height, width = 40, 56
    upright = render_identifier_canvas("AMIF \u00a9", height, width)
    probe = grid((5, 5, 5), (1.0, 1.0, 1.0), direction)
    style = IdentifierStyle(**display_orientation(probe, slice_axis(probe)))
    canvas = render_identifier_canvas("AMIF \u00a9", *((width, height) if style.transpose else (height, width)), style)
    volume = sitk.GetImageFromArray(canvas[None].astype(np.float32))
    volume.SetDirection(direction)
    shown = oriented(volume)[0][0]
    assert shown.shape == upright.shape
    assert np.array_equal(shown, upright)


def test_resample_to_reference() -> None:
    mri, pet = oblique_mri(), coarse_pet()
    same, covered = resample_to_reference(mri, mri)
    assert same is mri and covered is None
    moved, covered = resample_to_reference(pet, mri)
    assert covered is not None and 0 < covered <= 1 and geometry_close(moved, mri, 0) and moved.GetPixelID() == sitk.sitkFloat32
    truth = scan(mri.GetSize(), mri.GetSpacing(), mri.GetDirection(), kind="pet")  # the phantom on the MRI grid
    values, expected = sitk.GetArrayViewFromImage(moved), sitk.GetArrayViewFromImage(truth)
    assert np.corrcoef(values.ravel(), expected.ravel())[0, 1] > 0.95


def test_volumes_that_do_not_overlap_are_refused() -> None:
    box = grid((10, 10, 10), (1.0, 1.0, 1.0), centre=(4.5, 4.5, 4.5))
    far = grid((10, 10, 10), (1.0, 1.0, 1.0), centre=(4.5, 4.5, 400.0))
    # A thin oblique slab beyond the box's corner: the bounding boxes overlap, the volumes do not.
    slab = grid((30, 1, 10), (1.0, 1.0, 1.0), rotation(about_z=135), centre=(13.0, 13.0, 5.0))
    touching = grid((6, 6, 6), (1.0, 1.0, 1.0), rotation(about_z=45), centre=(11.0, 5.0, 5.0))
    assert not extents_overlap(box, far) and not extents_overlap(box, slab)
    assert extents_overlap(box, touching) and extents_overlap(box, box)
    with pytest.raises(InputError, match="do not overlap in physical space"):
        resample_to_reference(scan((10, 10, 10), (1.0, 1.0, 1.0), centre=(4.5, 4.5, 400.0), kind="pet"), box)


# ---------------------------------------------------------------- protect and unlock


@pytest.fixture(scope="module")
def protected_pair(model: AMIFModel, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The oblique MRI and coarse PET protected once, with the protected volume and key saved."""
    mri, pet = oblique_mri(), coarse_pet()
    before = [(sitk.GetArrayFromImage(v), image_geometry(v)) for v in (mri, pet)]
    notices: list[str] = []
    protected, key = protect_volume(model, mri, pet, notice=notices.append)
    folder = tmp_path_factory.mktemp("protected")
    write_volume(protected, folder / "protected.nrrd")
    write_key(folder / "protected.amifkey", key)
    return {"mri": mri, "pet": pet, "protected": protected, "key": key, "notices": notices, "folder": folder,
            "inputs_before": before}


def test_protect_keeps_mri_geometry_and_unlock_from_files_matches_fuse_clean(model: AMIFModel,
                                                                               protected_pair: dict) -> None:
    mri, protected, folder = protected_pair["mri"], protected_pair["protected"], protected_pair["folder"]
    assert len(protected_pair["notices"]) == 1 and protected_pair["notices"][0].startswith("Resampled the second scan")
    assert geometry_close(protected, mri) and protected.GetPixelID() == sitk.sitkUInt16  # 15-bit fixed point
    assert not protected.GetMetaDataKeys()
    values = sitk.GetArrayViewFromImage(protected)
    assert values.min() >= 0 and values.max() <= GREY_LEVELS
    saved = read_volume(folder / "protected.nrrd")
    assert geometry_close(saved, mri)
    unlocked = unlock_volume(model, saved, read_key(folder / "protected.amifkey"))
    assert geometry_close(unlocked, mri)
    reference = reference_fusion(model, mri, protected_pair["pet"], protected_pair["key"].axis)
    assert psnr(sitk.GetArrayViewFromImage(unlocked), reference) >= 50


def test_sagittal_acquisition_is_sliced_axially_on_the_same_grid(model: AMIFModel) -> None:
    mri = scan((9, 17, 21), (2.0, 0.8, 0.7), SAGITTAL)
    pet = scan((9, 17, 21), (2.0, 0.8, 0.7), SAGITTAL, kind="pet")
    notices: list[str] = []
    protected, key = protect_volume(model, mri, pet, notice=notices.append)
    assert key.axis == 2 and tuple(key.shape) == (9, 21, 17) and not notices
    unlocked = unlock_volume(model, protected, key)
    assert geometry_close(unlocked, mri)
    assert psnr(sitk.GetArrayViewFromImage(unlocked), reference_fusion(model, mri, pet, 2)) >= 50


def test_axis_override(model: AMIFModel) -> None:
    mri, pet = oblique_mri(), coarse_pet()
    protected, key = protect_volume(model, mri, pet, axis=1, notice=lambda message: None)
    assert key.axis == 1 and tuple(key.shape) == (19, 9, 23)
    unlocked = unlock_volume(model, protected, key)
    assert psnr(sitk.GetArrayViewFromImage(unlocked), reference_fusion(model, mri, pet, 1)) >= 50
    thin = scan((20, 20, 5), (1.0, 1.0, 4.0))
    with pytest.raises(InputError, match="gives 5x20 slices; AMIF needs slices of at least 8x8"):
        protect_volume(model, thin, thin, axis=2)


def test_bad_inputs_are_refused_before_any_work(model: AMIFModel) -> None:
    mri, pet = oblique_mri(), coarse_pet()
    broken = sitk.GetArrayFromImage(pet)
    broken[3, 4, 5] = np.nan
    nan_pet = sitk.GetImageFromArray(broken)
    nan_pet.CopyInformation(pet)
    with pytest.raises(InputError, match="NaN"):
        protect_volume(model, mri, nan_pet)
    with pytest.raises(InputError, match="cannot draw"):
        protect_volume(model, mri, pet, identifier="\u4e2d\u6587")
    with pytest.raises(InputError, match="do not overlap"):
        protect_volume(model, mri, scan((8, 8, 8), (1.0, 1.0, 1.0), centre=(0.0, 0.0, 900.0), kind="pet"))


def test_cancel_stops_protect_and_unlock(model: AMIFModel, protected_pair: dict) -> None:
    calls: list[tuple[int, int]] = []
    with pytest.raises(CancelledError):
        protect_volume(model, protected_pair["mri"], protected_pair["pet"], progress=lambda d, t: calls.append((d, t)),
                       cancel=lambda: len(calls) >= 1, notice=lambda message: None)
    assert calls == [(0, 9)]
    with pytest.raises(CancelledError):
        unlock_volume(model, protected_pair["protected"], protected_pair["key"], cancel=lambda: True)


def _with_voxels(image: sitk.Image, values: np.ndarray) -> sitk.Image:
    out = sitk.GetImageFromArray(values)
    out.CopyInformation(image)
    return out


def test_every_key_problem_has_its_own_error(model: AMIFModel, protected_pair: dict,
                                             tmp_path: Path) -> None:
    protected, key = protected_pair["protected"], protected_pair["key"]
    values = sitk.GetArrayFromImage(protected)
    mri_values = sitk.GetArrayFromImage(protected_pair["mri"]).astype(np.float32)
    another_volume = _with_voxels(protected, np.rint(GREY_LEVELS * (mri_values - mri_values.min())
                                                     / np.ptp(mri_values)).astype(np.uint16))
    edited = values.copy()
    edited[4, 5:12, 6:14] = np.minimum(edited[4, 5:12, 6:14] + 0.1 * GREY_LEVELS, GREY_LEVELS)
    shifted = sitk.Image(protected)
    shifted.SetOrigin([v + 2.0 for v in protected.GetOrigin()])
    other_model = AMIFModel(model.net, model.device, "0" * 64, {})
    cases = [
        (other_model, protected, ModelMismatchError, "another model version"),
        (model, another_volume, KeyMismatchError, "belongs to another volume"),
        (model, protected[:, :, :5], ImageModifiedError,
         "was cropped after it was protected .* the key is for 23x19x9 voxels, this volume has 23x19x5"),
        (model, _with_voxels(protected, edited), ImageModifiedError, "was modified after it was protected"),
        (model, _with_voxels(protected, values.astype(np.float16).astype(np.float32)), ImageModifiedError,
         "modified after it was protected"),
        (model, sitk.Cast(sitk.ShiftScale(protected, 0, 255 / GREY_LEVELS), sitk.sitkUInt8), ImageModifiedError,
         "stored as '8-bit unsigned integer' .* it was down-cast"),
        (model, shifted, ImageModifiedError, "its origin changed"),
    ]
    messages = []
    for which_model, volume, error, words in cases:
        with pytest.raises(error, match=words) as caught:
            unlock_volume(which_model, volume, key)
        assert type(caught.value) is error
        messages.append(re.sub(r"[0-9a-f]{12}", "<fingerprint>", str(caught.value)))
    assert messages[3] == messages[4]  # edited, and re-saved as float16: both "modified", as documented
    assert len(set(messages)) == len(messages) - 1
    actual = volume_fingerprint(another_volume)[:12]
    assert f"volume fingerprint {actual}, the key expects {key.volume_fingerprint[:12]}" in str(caught_message(
        model, another_volume, key))
    forced = unlock_volume(model, _with_voxels(protected, edited), key, verify=False)
    assert forced.GetSize() == protected.GetSize()


def caught_message(model: AMIFModel, volume: sitk.Image, key) -> str:
    with pytest.raises(KeyMismatchError) as caught:
        unlock_volume(model, volume, key)
    return str(caught.value)


def test_nifti_round_trip_of_the_protected_volume_still_unlocks(model: AMIFModel, protected_pair: dict,
                                                                tmp_path: Path) -> None:
    write_volume(protected_pair["protected"], tmp_path / "protected.nii.gz")
    saved = read_volume(tmp_path / "protected.nii.gz")
    unlocked = unlock_volume(model, saved, protected_pair["key"])
    direct = unlock_volume(model, protected_pair["protected"], protected_pair["key"])
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(unlocked), sitk.GetArrayViewFromImage(direct))


def test_key_file_is_at_most_0_6_of_the_protected_volume(model: AMIFModel, tmp_path: Path) -> None:
    mri = scan((64, 48, 6), (1.0, 1.0, 2.0))
    pet = scan((64, 48, 6), (1.0, 1.0, 2.0), kind="pet")
    start = time.perf_counter()
    protected, key = protect_volume(model, mri, pet)
    assert time.perf_counter() - start < 60
    write_key(tmp_path / "k.amifkey", key)
    ratio = os.path.getsize(tmp_path / "k.amifkey") / (4 * np.prod(protected.GetSize()))
    assert ratio <= 0.6, ratio


def test_inputs_are_not_modified(protected_pair: dict) -> None:
    for (values, geometry), image in zip(protected_pair["inputs_before"], (protected_pair["mri"], protected_pair["pet"])):
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), values)
        assert image_geometry(image) == geometry


def test_physical_points_helper_matches_simpleitk() -> None:
    image = grid((4, 3, 2), (0.5, 2.0, 3.0), rotation(about_x=25, about_z=-40), centre=(1.0, 2.0, 3.0))
    points = physical_points(image)
    assert np.allclose(points[1, 2, 3], image.TransformIndexToPhysicalPoint((3, 2, 1)))
