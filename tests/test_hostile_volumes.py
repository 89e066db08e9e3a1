"""Unusual and hostile input volumes: each gets a correct result or a specific error.

A correct result: protect then unlock recovers model.fuse_clean of the
(resampled) inputs to >= 50 dB, and the protected and unlocked volumes have
exactly the MRI's geometry. Non-finite voxels are refused, not masked: AMIF
would otherwise have to invent diagnostic values.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from volume_factory import geometry_close, grid, reference_fusion, scan, snapshot

import amif_core.cli.main as cli
from amif_core.errors import ImageModifiedError, InputError
from amif_core.inference.model import AMIFModel
from amif_core.inference.pipeline import protect_volume, unlock_volume
from amif_core.io.geometry import resample_to_reference
from amif_core.io.volumes import read_volume
from amif_core.transforms.intensity import fit_normalisation
from amif_core.evaluation.fusion import psnr

SPACING = (1.0, 1.0, 1.0)
SMALL = (16, 12, 6)  # x, y, z voxels: six slices of 12 x 16


def round_trip(model: AMIFModel, mri: sitk.Image, other: sitk.Image, axis: int | None = None) -> list[str]:
    """Protect and unlock; assert the MRI's geometry and >= 50 dB against fuse_clean. Returns the notices."""
    notices: list[str] = []
    protected, key = protect_volume(model, mri, other, axis=axis, notice=notices.append)
    unlocked = unlock_volume(model, protected, key)
    assert geometry_close(protected, mri, 0) and geometry_close(unlocked, mri, 0)
    assert protected.GetPixelID() == sitk.sitkUInt16 and unlocked.GetPixelID() == sitk.sitkFloat32
    reference = reference_fusion(model, mri, other, key.axis)
    assert psnr(sitk.GetArrayViewFromImage(unlocked), reference) >= 50
    return notices


def with_voxel(image: sitk.Image, value: float, index: tuple[int, int, int] = (2, 3, 4)) -> sitk.Image:
    values = sitk.GetArrayFromImage(image)
    values[index] = value
    out = sitk.GetImageFromArray(values)
    out.CopyInformation(image)
    return out


# ---------------------------------------------------------------- NaN and infinity: refused


@pytest.mark.parametrize(("role", "value", "pixel_type"), [
    ("MRI", np.nan, sitk.sitkFloat32), ("MRI", -np.inf, sitk.sitkFloat64),
    ("second scan", np.inf, sitk.sitkFloat32), ("second scan", np.nan, sitk.sitkFloat64),
])
def test_non_finite_voxels_are_refused_naming_the_scan(model: AMIFModel, role: str, value: float,
                                                       pixel_type: int) -> None:
    mri, other = scan(SMALL, SPACING, pixel_type=pixel_type), scan(SMALL, SPACING, kind="pet", pixel_type=pixel_type)
    if role == "MRI":
        mri = with_voxel(mri, value)
    else:
        other = with_voxel(other, value)
    with pytest.raises(InputError, match=f"^The {role} contains NaN or infinite voxels; replace them"):
        protect_volume(model, mri, other)


def test_cli_refuses_non_finite_inputs_with_exit_code_2(capsys, weights_file: Path, tmp_path: Path) -> None:
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir(), out.mkdir()
    sitk.WriteImage(scan(SMALL, SPACING), str(inputs / "mri.nrrd"))
    sitk.WriteImage(scan(SMALL, SPACING, kind="pet"), str(inputs / "pet.nrrd"))
    sitk.WriteImage(with_voxel(scan(SMALL, SPACING, kind="pet"), np.nan), str(inputs / "nan_pet.nrrd"))
    sitk.WriteImage(with_voxel(scan(SMALL, SPACING), np.inf), str(inputs / "inf_mri.nii.gz"))
    before = snapshot(inputs)
    cases = [("mri.nrrd", "nan_pet.nrrd", "error: The second scan contains NaN or infinite voxels; replace them"),
             ("inf_mri.nii.gz", "pet.nrrd", "inf_mri.nii.gz contains NaN or infinite voxels (NIfTI readers silently "
                                            "read them as 0); replace them")]
    for mri, other, words in cases:
        code = cli.main(["fuse", str(inputs / mri), str(inputs / other), "-o", str(out / "p.nrrd"), "--key",
                         str(out / "p.amifkey"), "--weights", str(weights_file)])
        err = capsys.readouterr().err
        assert code == 2 and words in err, err
    assert os.listdir(out) == [] and snapshot(inputs) == before


@pytest.mark.parametrize("name", ["nan.nii", "nan.nii.gz"])
def test_nifti_files_holding_nan_are_refused_although_itk_reads_them_as_zero(tmp_path: Path, name: str) -> None:
    image = with_voxel(scan(SMALL, SPACING, pixel_type=sitk.sitkFloat64), np.nan, (5, 11, 15))  # the last voxel
    sitk.WriteImage(image, str(tmp_path / name))
    assert np.isfinite(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / name)))).all()  # what ITK does
    with pytest.raises(InputError, match="contains NaN or infinite voxels"):
        read_volume(tmp_path / name)
    sitk.WriteImage(scan(SMALL, SPACING, pixel_type=sitk.sitkFloat64), str(tmp_path / name))
    assert read_volume(tmp_path / name).GetPixelID() == sitk.sitkFloat64


def test_a_protected_volume_with_non_finite_voxels_was_modified(model: AMIFModel) -> None:
    protected, key = protect_volume(model, scan(SMALL, SPACING), scan(SMALL, SPACING, kind="pet"))
    as_float = sitk.Cast(protected, sitk.sitkFloat32)  # a float re-save: it can hold what AMIF never writes
    for value in (np.nan, np.inf):
        with pytest.raises(ImageModifiedError, match="contains NaN or infinite voxels, which AMIF never writes"):
            unlock_volume(model, with_voxel(as_float, value), key)


# ---------------------------------------------------------------- degenerate contents and pixel types


@pytest.mark.parametrize(("mri_value", "other_value"), [(700.0, None), (None, 3.0), (0.0, 0.0)])
def test_constant_volumes(model: AMIFModel, mri_value: float | None, other_value: float | None) -> None:
    def volume(value: float | None, kind: str) -> sitk.Image:
        return scan(SMALL, SPACING, kind=kind) if value is None else grid(SMALL, SPACING) + value

    assert round_trip(model, volume(mri_value, "mri"), volume(other_value, "pet")) == []


@pytest.mark.parametrize(("mri_type", "other_type"), [  # every scalar type SimpleITK has, as MRI or second scan
    (sitk.sitkUInt8, sitk.sitkInt64), (sitk.sitkInt16, sitk.sitkUInt32), (sitk.sitkUInt16, sitk.sitkInt8),
    (sitk.sitkInt32, sitk.sitkUInt64), (sitk.sitkFloat64, sitk.sitkUInt8),
], ids=["uint8-int64", "int16-uint32", "uint16-int8", "int32-uint64", "float64-uint8 labels"])
def test_every_scalar_pixel_type(model: AMIFModel, mri_type: int, other_type: int) -> None:
    other = scan(SMALL, SPACING, kind="pet", pixel_type=other_type)
    if other_type == sitk.sitkUInt8:  # a label volume (segmentation) as the second scan: {0, 2}
        other = sitk.Cast(other > 3, sitk.sitkUInt8) * 2
        assert set(np.unique(sitk.GetArrayViewFromImage(other))) == {0, 2}
    round_trip(model, scan(SMALL, SPACING, pixel_type=mri_type), other)


@pytest.mark.parametrize(("mri", "other", "words"), [
    (sitk.Image([16, 12], sitk.sitkFloat32), None, "The MRI is 2D; AMIF needs a 3D volume"),
    (None, sitk.Image([16, 12, 6, 3], sitk.sitkFloat32), "The second scan is 4D; AMIF needs a 3D volume"),
    (sitk.Image([16, 12, 6], sitk.sitkVectorUInt8, 3), None,
     "The MRI holds voxels of type 'vector of 8-bit unsigned integer' (3 values each); AMIF needs one real value"),
    (None, sitk.Image([16, 12, 6], sitk.sitkVectorFloat32, 2),
     "'vector of 32-bit float' (2 values each); AMIF needs one real value per voxel"),
    (sitk.Image([16, 12, 6], sitk.sitkComplexFloat32), None, "The MRI holds voxels of type 'complex of 32-bit float'"),
    (None, sitk.LabelImageToLabelMap(sitk.Image([16, 12, 6], sitk.sitkUInt8) + 1),
     "'label of 8-bit unsigned integer' (1 values each); AMIF needs one real value per voxel. Convert colour, "
     "vector, complex or label-map images"),
], ids=["2D", "4D", "RGB MRI", "2-vector", "complex", "label map"])
def test_images_that_are_not_scalar_3d_volumes_are_refused(model: AMIFModel, mri, other, words: str) -> None:
    with pytest.raises(InputError) as caught:
        protect_volume(model, mri if mri is not None else scan(SMALL, SPACING),
                       other if other is not None else scan(SMALL, SPACING, kind="pet"))
    assert words in str(caught.value)


# ---------------------------------------------------------------- one voxel thick


@pytest.mark.parametrize(("size", "default_error", "axis"), [
    ((16, 12, 1), None, 0),  # a single axial slice: the default axis works
    ((16, 1, 12), "Slicing along axis 0 gives 1x16 slices; AMIF needs slices of at least 8x8 voxels. "
                  "Slicing along axis 1 (12x16 slices) would do.", 1),
    ((1, 16, 12), "Slicing along axis 0 gives 16x1 slices; AMIF needs slices of at least 8x8 voxels. "
                  "Slicing along axis 2 (12x16 slices) would do.", 2),
], ids=["thin z", "thin y", "thin x"])
def test_one_voxel_thick_volumes(model: AMIFModel, size: tuple[int, int, int], default_error: str | None,
                                 axis: int) -> None:
    mri, other = scan(size, SPACING), scan(size, SPACING, kind="pet")
    if default_error is not None:
        with pytest.raises(InputError) as caught:
            protect_volume(model, mri, other)
        assert str(caught.value) == default_error
        assert caught.value.setting == "axis" and caught.value.hint(cli.CLI_HINTS).endswith("Choose another --axis.")
    round_trip(model, mri, other, axis=axis)


def test_a_volume_too_thin_for_any_axis(model: AMIFModel) -> None:
    needle = scan((1, 16, 1), SPACING)
    with pytest.raises(InputError, match=r"gives 16x1 slices; .* No axis does: the volume \(1x16x1 voxels of 1x1x1 mm\) "
                                         "is too small for AMIF."):
        protect_volume(model, needle, needle)


# ---------------------------------------------------------------- physical extents


def test_partial_overlap_works_says_so_and_leaves_the_rest_empty(model: AMIFModel) -> None:
    mri = scan((16, 12, 10), SPACING)  # z from -5 to 5 mm
    other = scan((16, 12, 10), SPACING, centre=(0.0, 0.0, 6.0), kind="pet")  # z from 1 to 11 mm
    notices = round_trip(model, mri, other)
    assert len(notices) == 1 and notices[0].startswith("Resampled the second scan")
    assert "it covers only 40% of the MRI, the rest takes its lowest value" in notices[0]
    on_grid, _ = resample_to_reference(other, mri)
    normalised = fit_normalisation(sitk.GetArrayViewFromImage(on_grid)).apply(sitk.GetArrayViewFromImage(on_grid))
    assert (normalised[:6] == 0).all() and (normalised[6:] > 0).mean() > 0.9  # slices 0-5 lie outside, below 1 mm


def test_scans_that_do_not_overlap_stop_the_cli_with_exit_code_2(capsys, weights_file: Path, tmp_path: Path) -> None:
    sitk.WriteImage(scan((16, 12, 10), SPACING), str(tmp_path / "mri.nrrd"))
    # The MRI's extent is z in [-5, 5] mm; the sliver's starts at 4.8 mm, so no MRI voxel centre lies inside it.
    sitk.WriteImage(scan((16, 12, 10), SPACING, centre=(0.0, 0.0, 9.8), kind="pet"), str(tmp_path / "sliver.nrrd"))
    sitk.WriteImage(scan((16, 12, 10), SPACING, centre=(0.0, 0.0, 300.0), kind="pet"), str(tmp_path / "far.nrrd"))
    before = snapshot(tmp_path)
    for other in ("sliver.nrrd", "far.nrrd"):
        code = cli.main(["fuse", str(tmp_path / "mri.nrrd"), str(tmp_path / other), "-o", str(tmp_path / "p.nrrd"),
                         "--key", str(tmp_path / "p.amifkey"), "--weights", str(weights_file), "-q"])
        err = capsys.readouterr().err
        assert code == 2 and "The second scan and the MRI do not overlap in physical space" in err, (other, err)
    assert snapshot(tmp_path) == before
