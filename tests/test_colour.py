"""Colour fusion: RGB and colour-table inputs, the exact RGB unlock, the identifier in colour, bad colour input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from volume_factory import coarse_pet, oblique_mri, reference_fusion, snapshot

import amif_core
import amif_core.cli.main as cli
from amif_core.errors import InputError
from amif_core.evaluation.fusion import psnr
from amif_core.inference.model import AMIFModel
from amif_core.inference.pipeline import protect_volume, unlock_volume
from amif_core.io.volumes import read_volume
from amif_core.key.file import read_key, read_key_header, write_key
from amif_core.transforms.intensity import fit_normalisation
from amif_core.transforms.colour import (
    COLOUR_TABLES,
    apply_table,
    chroma,
    compose,
    fit_gamut,
    luma,
    rgb_from,
    slice_luma,
)


def phantom(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth MRI-like image and a PET-like uptake with a hot spot, float32 of ``shape`` (H, W) or (D, H, W)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius = np.sqrt(sum(g**2 for g in grids))
    mri = (np.cos(6 * radius) * (radius < 0.9) * 300 + 400 + rng.normal(0, 5, shape)).astype(np.float32)
    pet = (np.exp(-((grids[-1] - 0.3) ** 2 + (grids[-2] + 0.2) ** 2) / 0.02) * 5 + (radius < 0.8)).astype(np.float32)
    return mri, pet


@pytest.mark.parametrize("shape", [(37, 53), (3, 29, 41), (2, 64, 64)])
@pytest.mark.parametrize("kind", ["uint8", "float", "table"])
def test_colour_shapes_dtypes_and_exact_unlock(model: AMIFModel, shape: tuple[int, ...], kind: str) -> None:
    mri, pet = phantom(shape)
    if kind == "table":
        other, options = pet, {"colour_table": "pet"}
    else:
        rgb = apply_table(pet / pet.max(), COLOUR_TABLES["spect"])
        other, options = (np.rint(rgb * 255).astype(np.uint8) if kind == "uint8" else rgb), {}
    before = other.copy(), mri.copy()
    prot = model.protect(mri, other, **options)
    clean = model.fuse_clean(mri, other, **options)
    assert prot.image.shape == clean.shape == shape + (3,)
    assert prot.image.dtype == clean.dtype == np.float32
    assert 0 <= prot.image.min() and prot.image.max() <= 1 and 0 <= clean.min() and clean.max() <= 1
    unlocked = model.unlock(prot.image, prot.key)
    assert unlocked.shape == prot.image.shape and unlocked.dtype == np.float32
    for channel in range(3):
        assert psnr(unlocked[..., channel], clean[..., channel]) >= 50
    assert np.array_equal(before[0], other) and np.array_equal(before[1], mri)  # inputs untouched


def test_the_identifier_is_grey_ink_visible_on_any_hue(model: AMIFModel) -> None:
    mri, pet = phantom((2, 96, 96), seed=3)
    prot = model.protect(mri, pet, colour_table="pet")
    clean = model.fuse_clean(mri, pet, colour_table="pet")
    mask = prot.key.identifier_mask() > 0
    covered = prot.image[mask]
    assert np.array_equal(covered[:, 0], covered[:, 1]) and np.array_equal(covered[:, 1], covered[:, 2])  # no chroma
    assert np.array_equal(prot.image[~mask], clean[~mask])  # outside the strokes, the clean fusion bit for bit
    contrast = np.abs(luma(prot.image) - luma(clean))[mask]
    assert contrast.mean() >= 0.25
    hue = np.abs(chroma(clean)[mask]).sum(axis=-1) > 0.05  # strokes over coloured (not grey) fusion
    assert hue.any() and np.abs(luma(prot.image) - luma(clean))[mask][hue].mean() >= 0.25


def test_the_colour_fusion_is_the_composition_of_the_fused_luma_with_the_partners_hue(model: AMIFModel) -> None:
    mri, pet = phantom((64, 64), seed=1)
    rgb = apply_table(pet / pet.max(), COLOUR_TABLES["pet"])
    clean = model.fuse_clean(mri, rgb, owner=None)  # the composition itself, without the trace mark on top
    grey = model.fuse_clean(mri, luma(rgb), owner=None)  # the grey fusion of the luma is the colour fusion's fused luma
    want_luma = luma(compose(grey, fit_normalisation(mri).apply(mri), luma(rgb), chroma(rgb)))
    assert np.allclose(luma(clean), want_luma, atol=1e-5)
    got, want = chroma(clean).astype(np.float64), chroma(rgb).astype(np.float64)
    assert np.abs(got[..., 0] * want[..., 1] - got[..., 1] * want[..., 0]).max() < 1e-5  # the same hue
    assert ((got * want).sum(axis=-1) >= 0).all() and (np.abs(got) <= np.abs(want) + 1e-5).all()  # only shrunk
    kept = np.isclose(got, want, atol=1e-4).all(axis=-1)
    assert kept.mean() > 0.3  # the chroma is whole wherever the gamut has room for it


def test_fit_gamut_keeps_the_luma_and_hue_and_changes_nothing_inside_the_gamut() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.random((40, 30, 3)).astype(np.float32)
    assert np.abs(fit_gamut(luma(rgb), chroma(rgb)) - rgb).max() < 1e-6
    y, cbcr = rng.random((40, 30)), rng.uniform(-0.5, 0.5, (40, 30, 2))
    out = fit_gamut(y, cbcr)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    assert np.abs(luma(out) - y).max() < 1e-5
    got = chroma(out).astype(np.float64)
    assert np.abs(got[..., 0] * cbcr[..., 1] - got[..., 1] * cbcr[..., 0]).max() < 1e-5


def test_slice_luma_keeps_a_grey_slice_and_takes_an_rgb_slices_luma() -> None:
    rgb = np.random.default_rng(1).random((6, 5, 3)).astype(np.float32)
    assert np.array_equal(slice_luma(rgb), luma(rgb))
    assert np.array_equal(slice_luma(rgb[..., 0]), rgb[..., 0])


def _spot_and_stripes(spot: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An MRI of vertical stripes (0.2 / 0.5, 4 px), a fusion that is the (diffuse, 0.6) uptake's luma wherever it
    beats the MRI (the maximum-like fusion), and a uptake with an 8 px square spot of ``spot`` in the middle."""
    mri = np.where((np.arange(48) // 4) % 2 == 0, 0.2, 0.5)[None, :].repeat(48, axis=0)
    uptake = np.full((48, 48), 0.6)
    uptake[20:28, 20:28] = spot
    rgb = apply_table(uptake, COLOUR_TABLES["pet"])
    return mri, np.maximum(mri, luma(rgb)), rgb


def test_the_mri_anatomy_stays_under_diffuse_uptake() -> None:
    mri, fused, rgb = _spot_and_stripes(0.6)
    out = luma(compose(fused, mri, luma(rgb), chroma(rgb)))
    stripes = out[4:16, 8:40]  # away from the spot and the borders
    # the maximum-like fusion flattens the dark stripes to the uptake's luma; the composition keeps them apart
    assert np.ptp(fused[4:16, 8:40]) < 0.1 and np.ptp(stripes) > 0.25
    assert np.corrcoef(stripes.ravel(), mri[4:16, 8:40].ravel())[0, 1] > 0.9


@pytest.mark.parametrize("spot", [1.0, 0.1])
def test_hot_spots_and_cold_defects_show_in_the_luma(spot: float) -> None:
    mri, fused, rgb = _spot_and_stripes(spot)
    out = luma(compose(fused, mri, luma(rgb), chroma(rgb)))
    inside, around = out[22:26, 22:26].mean(), np.concatenate([out[8:14, 16:32].ravel(), out[34:40, 16:32].ravel()]).mean()
    # the spot moves the luma by at least half of what it moves the uptake's luma, either way
    partner = luma(rgb)
    assert abs(inside - around) >= 0.5 * abs(partner[24, 24] - partner[10, 10])
    assert (inside > around) == (spot > 0.6)


def test_colour_tables_rise_in_luma() -> None:
    assert set(COLOUR_TABLES) >= {"pet", "spect"} and amif_core.COLOUR_TABLES is COLOUR_TABLES
    for name, table in COLOUR_TABLES.items():
        assert table.shape == (256, 3) and table.dtype == np.float32, name
        assert table.min() >= 0 and table.max() <= 1, name
        assert (np.diff(luma(table)) > 0).all(), f"{name}: luma must rise with uptake"


def test_ycbcr_round_trip_is_exact() -> None:
    rgb = np.random.default_rng(0).random((50, 40, 3)).astype(np.float32)
    assert np.abs(rgb_from(luma(rgb), chroma(rgb)) - rgb).max() < 1e-6
    assert np.abs(chroma(rgb)).max() <= 0.5


@pytest.mark.parametrize("make, words", [
    (lambda mri, pet: (mri, np.zeros(mri.shape + (4,), np.uint8), {}), "4 channels"),
    (lambda mri, pet: (np.zeros(mri.shape + (3,), np.float32), np.zeros(mri.shape + (3,), np.float32), {}),
     "MRI must be greyscale"),
    (lambda mri, pet: (mri, pet, {"colour_table": "jet"}), "Unknown colour table 'jet'"),
    (lambda mri, pet: (mri, np.zeros(mri.shape + (3,), np.uint8), {"colour_table": "pet"}), "already RGB"),
    (lambda mri, pet: (mri, np.full(mri.shape + (3,), 200.0, np.float32), {}), r"must lie in \[0, 1\]"),
    (lambda mri, pet: (mri, np.zeros(mri.shape + (3,), np.int32), {}), "uint8 .* or float"),
])
def test_bad_colour_input_is_refused_clearly(model: AMIFModel, make, words: str) -> None:
    mri, pet = phantom((2, 32, 32))
    a, b, options = make(mri, pet)
    for call in (model.protect, model.fuse_clean):
        with pytest.raises(InputError, match=words):
            call(a, b, **options)


def test_a_colour_key_file_round_trips(model: AMIFModel, tmp_path: Path) -> None:
    mri, pet = oblique_mri(), coarse_pet()
    protected, key = protect_volume(model, mri, pet, colour_table="spect", notice=lambda text: None)
    assert protected.GetNumberOfComponentsPerPixel() == 3 and protected.GetPixelID() == sitk.sitkVectorUInt8
    write_key(tmp_path / "k.amifkey", key, passphrase="pw")
    header = read_key_header(tmp_path / "k.amifkey")
    assert header["format_version"] == 7 and header["colour"]["table"] == "spect" and header["levels"] == 255
    assert header["payload"]["chroma_count"] == key.chroma_codes.size > 0
    again = read_key(tmp_path / "k.amifkey", "pw")
    assert again.shape == key.shape and again.colour == key.colour
    assert np.array_equal(again.chroma_codes, key.chroma_codes)
    unlocked = unlock_volume(model, protected, again)
    assert unlocked.GetNumberOfComponentsPerPixel() == 3
    assert unlocked.GetSize() == mri.GetSize() and unlocked.GetSpacing() == mri.GetSpacing()
    reference = reference_fusion(model, mri, pet, key.axis, colour_table="spect")
    for channel in range(3):
        assert psnr(sitk.GetArrayViewFromImage(unlocked)[..., channel], reference[..., channel]) >= 50


def test_cli_fuses_in_colour_and_unlocks_rgb(capsys, weights_file: Path, tmp_path: Path) -> None:
    sitk.WriteImage(oblique_mri(), str(tmp_path / "mri.nii.gz"))
    pet = coarse_pet()
    rgb = apply_table(np.clip(sitk.GetArrayFromImage(pet) / sitk.GetArrayFromImage(pet).max(), 0, 1),
                      COLOUR_TABLES["pet"])
    rgb_image = sitk.GetImageFromArray(np.rint(rgb * 255).astype(np.uint8), isVector=True)
    rgb_image.CopyInformation(pet)
    sitk.WriteImage(rgb_image, str(tmp_path / "pet_rgb.nrrd"))
    sitk.WriteImage(pet, str(tmp_path / "pet.nrrd"))
    before = snapshot(tmp_path)
    for name, extra in (("table", ["--colour", "pet"]), ("rgb", [])):
        other = tmp_path / ("pet.nrrd" if name == "table" else "pet_rgb.nrrd")
        out = tmp_path / name
        out.mkdir()
        code = cli.main(["fuse", str(tmp_path / "mri.nii.gz"), str(other), "-o", str(out / "p.nrrd"), "--key",
                         str(out / "p.amifkey"), "--weights", str(weights_file), "-q", *extra])
        assert code == 0, capsys.readouterr().err
        code = cli.main(["unlock", str(out / "p.nrrd"), "--key", str(out / "p.amifkey"), "-o", str(out / "u.nii.gz"),
                         "--weights", str(weights_file), "-q"])
        assert code == 0, capsys.readouterr().err
        protected, unlocked = read_volume(out / "p.nrrd"), read_volume(out / "u.nii.gz")
        assert protected.GetNumberOfComponentsPerPixel() == unlocked.GetNumberOfComponentsPerPixel() == 3
        assert 0 <= sitk.GetArrayViewFromImage(unlocked).min() and sitk.GetArrayViewFromImage(unlocked).max() <= 1
    code = cli.main(["fuse", str(tmp_path / "mri.nii.gz"), str(tmp_path / "pet_rgb.nrrd"), "-o",
                     str(tmp_path / "x.nrrd"), "--key", str(tmp_path / "x.amifkey"), "--weights", str(weights_file),
                     "-q", "--colour", "pet"])
    assert code != 0 and "already RGB" in capsys.readouterr().err
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith(("table/", "rgb/"))} == before


def test_a_pseudo_colour_palette_is_recovered_and_inverted() -> None:
    from amif_core.data.palette import estimate_palette, uptake_from_rgb

    table = np.rint(COLOUR_TABLES["spect"][::2] * 255).astype(np.uint8)  # 128 colours, luma not needed monotone
    rng = np.random.default_rng(0)
    uptake = rng.integers(0, len(table), size=(2, 40, 50))
    images = [table[u] for u in uptake]
    images[0][0, 0] = (0, 255, 0)  # a stray colour (an annotation), far from every table colour
    palette = estimate_palette(images)
    assert np.array_equal(palette, table[: len(palette)]) and len(palette) >= len(table) - 1
    recovered = uptake_from_rgb(images[1], palette)
    assert recovered.dtype == np.float32 and recovered.shape == (40, 50)
    assert np.allclose(recovered, np.minimum(uptake[1], len(palette) - 1) / (len(palette) - 1))


def test_the_colour_choices_of_every_front_end_come_from_the_colour_tables(monkeypatch):
    from amif_core.cli.main import build_parser
    from amif_core.transforms import colour

    monkeypatch.setitem(colour.COLOUR_TABLES, "bone", colour.COLOUR_TABLES["pet"])  # a table added later
    monkeypatch.setitem(colour.TABLE_LOOKS, "bone", "grey-blue")
    assert [name for name, _ in colour.table_choices()] == list(colour.COLOUR_TABLES)
    fuse = build_parser("fuse")._subparsers._group_actions[0].choices["fuse"]
    help_text = next(action.help for action in fuse._actions if action.dest == "colour")
    assert all(f"{name}: {look}" in help_text for name, look in colour.table_choices())
