"""The 3D identifier: text upright in every plane of a volume at an even coverage, the per-plane cut protect uses,
and keys made before it (the 2D stamps of format 5, the text-plate lattice of format 6)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from volume_factory import scan

import amif_core
from amif_core.inference import model as model_module
from amif_core.inference.pipeline import protect_volume, protected_voxels, unlock_volume
from amif_core.io.geometry import display_orientation
from amif_core.key.core import Key
from amif_core.key.file import read_key, read_key_header, write_key
from amif_core.transforms.identifier import IdentifierStyle
from amif_core.transforms.identifier_masks import identifier_masks
from amif_core.transforms.identifier_tile import word_bitmap, tile_mask, volume_tile
from amif_core.transforms.identifier_volume import Lattice, VolumePlanes, _screen_tile, lattice_mask
from test_keyfile import parts, rebuild

TEXT = "AMIF \u00a9"
SHORT = "AI"  # a short identifier fits the 3D identifier (and a lattice of 2 x 2 x 2 cells) in a small, quick volume
DEMO_GRID = (112, 129, 105)  # the demo MRI's (z, y, x)


def _plane_coverage(mask: np.ndarray, axis: int) -> np.ndarray:
    return mask.mean(axis=tuple(a for a in range(3) if a != axis))


@pytest.mark.parametrize("shape", [DEMO_GRID, (60, 256, 256), (180, 256, 256)])
def test_every_slice_of_every_plane_is_covered_evenly(shape: tuple[int, int, int]) -> None:
    """Issue 25's coverage bar: 8 to 25 % of every slice in every plane, the demo's grid and thin and thick ones."""
    tile = volume_tile(TEXT, shape)
    assert tile is not None
    mask = tile_mask(TEXT, shape, tile)
    assert mask.shape == shape and set(np.unique(mask)) == {0, 1}
    for axis in range(3):
        coverage = _plane_coverage(mask, axis)
        assert coverage.min() >= 0.08 and coverage.max() <= 0.25, (axis, coverage.min(), coverage.max())


def _upright_copies(section: np.ndarray, word: np.ndarray) -> int:
    """How many places of ``section`` hold every stroke pixel of ``word`` unsheared."""
    hits = ndimage.correlate(section.astype(np.int32), word.astype(np.int32), mode="constant", cval=0)
    return int((hits == int(word.sum())).sum())


TURNED = VolumePlanes(orientations=((False, False, False), (False, True, False), (True, True, False)))


@pytest.mark.parametrize("planes", [VolumePlanes(), TURNED])
def test_every_plane_cuts_the_text_upright(planes: VolumePlanes) -> None:
    """Most slices of each plane hold a whole copy of the word as that plane shows it upright (turned by its
    orientation), unsheared: on the demo's grid, at least half of them (the OCR bar asks half the slices)."""
    tile = volume_tile(TEXT, DEMO_GRID, planes=planes)
    mask = tile_mask(TEXT, DEMO_GRID, tile)
    for axis in range(3):
        word = word_bitmap(TEXT, tile.font_px, planes.orientations[axis])
        held = [_upright_copies(np.take(mask, i, axis=axis), word) >= 1 for i in range(0, DEMO_GRID[axis], 2)]
        assert np.mean(held) >= 0.5, (axis, np.mean(held))


def test_the_slicing_axis_only_changes_the_cut() -> None:
    """Slice d along any axis is the cross-section of one 3D mask on the (z, y, x) grid."""
    zyx = (112, 130, 128)
    reference = tile_mask(TEXT, zyx, volume_tile(TEXT, zyx))
    for axis in (1, 2):
        shape = np.moveaxis(np.empty(zyx), axis, 0).shape
        tile = volume_tile(TEXT, shape, planes=VolumePlanes(axis=axis))
        assert tile is not None and tile.axis == axis
        assert np.array_equal(tile_mask(TEXT, shape, tile), np.moveaxis(reference, axis, 0))


def test_the_format_6_lattice_still_cuts_text_in_every_plane() -> None:
    """The text-plate lattice, which keys of format 6 rebuild, is unchanged: every slice crosses some text."""
    mask = lattice_mask(TEXT, DEMO_GRID, Lattice(font_px=16, cells=(6, 2, 1)))  # the demo's lattice in a format-6 key
    for axis in range(3):
        assert (_plane_coverage(mask, axis) > 0.02).all()


def test_thin_volumes_and_slices_keep_the_2d_identifier() -> None:
    masks, offsets, tile = identifier_masks(TEXT, (6, 96, 96), IdentifierStyle(), VolumePlanes(), seed=1)
    assert tile is None and offsets.shape == (6, 2) and masks.shape == (6, 96, 96)
    masks, offsets, tile = identifier_masks(TEXT, (1, 96, 96), IdentifierStyle(), None, seed=1)
    assert tile is None and offsets.shape == (1, 2)


def test_2d_inputs_keep_the_2d_identifier(model: amif_core.AMIFModel) -> None:
    rng = np.random.default_rng(0)
    protected = model.protect(rng.random((64, 64), dtype=np.float32), rng.random((64, 64), dtype=np.float32))
    assert protected.key.identifier_lattice is None and protected.key.mask_offsets.shape == (1, 2)


def _volume_pair() -> tuple[sitk.Image, sitk.Image]:
    size, spacing = (48, 56, 40), (1.5, 1.5, 1.5)  # (x, y, z)
    return scan(size, spacing, kind="mri"), scan(size, spacing, kind="pet", seed=1)


@pytest.fixture(scope="module")
def sliced_along_y(model: amif_core.AMIFModel) -> tuple[sitk.Image, sitk.Image, Key]:
    """The MRI, and the volume protected along numpy axis 1 with its key."""
    mri, pet = _volume_pair()
    return (mri, *protect_volume(model, mri, pet, SHORT, axis=1, notice=lambda _: None))


def test_a_volume_key_records_the_tile_and_unlocks_from_its_file(model: amif_core.AMIFModel, tmp_path: Path,
                                                                  sliced_along_y) -> None:
    mri, protected, key = sliced_along_y
    assert key.identifier_lattice is not None and key.identifier_lattice["kind"] == "diagonal"
    assert key.mask_offsets.shape == (0, 2)
    planes = [list(display_orientation(mri, a).values()) for a in range(3)]
    assert key.identifier_lattice["planes"] == planes and key.identifier_lattice["axis"] == 1
    write_key(tmp_path / "k.amifkey", key)
    assert read_key_header(tmp_path / "k.amifkey")["identifier_lattice"] == key.identifier_lattice
    saved = read_key(tmp_path / "k.amifkey")
    mask = saved.identifier_mask()
    assert np.array_equal(mask, key.identifier_mask())
    for axis in range(3):  # coverage of every slice in every plane of the protected volume's grid
        coverage = _plane_coverage(np.moveaxis(mask, 0, 1), axis)
        assert (coverage > 0.08).all() and (coverage < 0.25).all()
    unlocked = sitk.GetArrayFromImage(unlock_volume(model, protected, saved))
    stored = np.moveaxis(protected_voxels(protected, key), 0, 1)
    changed = np.abs(unlocked - stored) > 1e-3
    assert changed[np.moveaxis(mask, 0, 1) == 0].mean() < 1e-3  # the unlock changes the covered voxels only


def test_keys_made_before_the_3d_identifier_still_unlock(model: amif_core.AMIFModel, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A format-5 key (2D identifier stamped per slice, no lattice field) of a volume reads and unlocks."""
    mri, pet = _volume_pair()
    with monkeypatch.context() as patch:  # the volume protected as AMIF did before: per-slice 2D stamps
        patch.setattr(model_module, "identifier_masks",
                      lambda text, shape, style, planes, seed: identifier_masks(text, shape, style, None, seed))
        protected, key = protect_volume(model, mri, pet, SHORT, notice=lambda _: None)
    assert key.identifier_lattice is None and key.mask_offsets.shape == (key.shape[0], 2)
    write_key(tmp_path / "new.amifkey", key)
    _, header, payload = parts((tmp_path / "new.amifkey").read_bytes())
    old_header = {name: value for name, value in json.loads(header).items() if name != "identifier_lattice"}
    (tmp_path / "old.amifkey").write_bytes(rebuild(json.dumps(old_header).encode(), payload, version=5))
    assert read_key_header(tmp_path / "old.amifkey")["format_version"] == 5
    old = read_key(tmp_path / "old.amifkey")
    assert old.identifier_lattice is None and np.array_equal(old.identifier_mask(), key.identifier_mask())
    expected = sitk.GetArrayFromImage(unlock_volume(model, protected, key))
    assert np.array_equal(sitk.GetArrayFromImage(unlock_volume(model, protected, old)), expected)


def test_keys_of_format_6_with_the_text_plate_lattice_still_unlock(model: amif_core.AMIFModel, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A format-6 key (the text-plate lattice that the diagonal tile replaced) of a volume reads and unlocks."""
    mri, pet = _volume_pair()

    def plates(text, shape, style, planes, seed):
        lattice = Lattice(font_px=16, cells=(2, 2, 2), planes=planes.orientations, axis=planes.axis)
        return lattice_mask(text, shape, lattice), np.zeros((0, 2), dtype=np.int64), lattice

    with monkeypatch.context() as patch:  # the volume protected as AMIF did before: the text-plate lattice
        patch.setattr(model_module, "identifier_masks", plates)
        protected, key = protect_volume(model, mri, pet, SHORT, notice=lambda _: None)
    assert key.identifier_lattice["cells"] == [2, 2, 2]
    write_key(tmp_path / "new.amifkey", key)
    _, header, payload = parts((tmp_path / "new.amifkey").read_bytes())
    (tmp_path / "old.amifkey").write_bytes(rebuild(header, payload, version=6))
    old = read_key(tmp_path / "old.amifkey")
    assert read_key_header(tmp_path / "old.amifkey")["format_version"] == 6
    assert np.array_equal(old.identifier_mask(), key.identifier_mask())
    unlocked = sitk.GetArrayFromImage(unlock_volume(model, protected, old))
    assert np.array_equal(unlocked, sitk.GetArrayFromImage(unlock_volume(model, protected, key)))
    clean = model.fuse_clean(*[sitk.GetArrayFromImage(image) for image in (mri, pet)])
    assert np.abs(unlocked - clean).max() < 1e-3


def _anchor_outside_period(header: dict) -> dict:
    header["identifier_lattice"]["anchors"][0][0] = header["identifier_lattice"]["period"][0]
    return header


@pytest.mark.parametrize("craft, version, refusal", [
    (lambda header: header, 6, "identifier_lattice must be null or hold"),  # version 6 cannot hold the diagonal tile
    (_anchor_outside_period, 7, "identifier_lattice.anchors u"),
    (lambda header: {**header, "mask_offsets": [[0, 0]] * header["shape"][0]}, 7, "none with identifier_lattice"),
], ids=["tile-in-version-6", "anchor-outside-period", "offsets-with-a-3d-identifier"])
def test_a_malformed_3d_identifier_key_is_refused(tmp_path: Path, sliced_along_y, craft, version: int,
                                                   refusal: str) -> None:
    write_key(tmp_path / "k.amifkey", sliced_along_y[2])
    _, header, payload = parts((tmp_path / "k.amifkey").read_bytes())
    crafted = craft(json.loads(header))
    (tmp_path / "crafted.amifkey").write_bytes(rebuild(json.dumps(crafted).encode(), payload, version=version))
    with pytest.raises(amif_core.KeyFormatError, match=refusal):
        read_key(tmp_path / "crafted.amifkey")


def test_the_copyright_sign_stays_open_at_the_smallest_font() -> None:
    """At 16 px the font's own (c), thickened by the stroke, fills in; the drawn ring and arc keep holes in it."""
    sign = _screen_tile("\u00a9", 16, 24, 24)
    rows, cols = np.flatnonzero(sign.any(axis=1)), np.flatnonzero(sign.any(axis=0))
    inside = sign[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] == 0
    labels, _ = ndimage.label(inside)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    enclosed = np.isin(labels, border, invert=True).mean()
    assert enclosed > 0.2  # blank enclosed by the ring and the c (the font's own glyph: 0.014, a disc with a dot)


def test_attack_eval_planes_refuses_a_step_below_one(capsys: pytest.CaptureFixture) -> None:
    from amif_core.cli import main as cli

    code = cli.main(["attack-eval", "--data", "unused", "--planes", "0"])
    assert code != 0 and "--planes takes a step of at least 1" in capsys.readouterr().err
