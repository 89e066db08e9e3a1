"""The attack benchmark's mechanics on small synthetic data (the real figures need the trained weights)."""
from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

import amif_core.cli.main as cli
from amif_core.constants import DEFAULT_IDENTIFIER
from amif_core.data.harvard import VALIDATION_PATIENTS
from amif_core.evaluation.attacks import (
    filters,
    inpainting,
    key_only,
    mask_estimation,
    require,
    scoring,
    white_box,
)
from amif_core.evaluation.attacks.remover import (
    RemoverConfig,
    UNet,
    fit,
    loss_fn,
    remove,
    sample_crops,
)
from amif_core.evaluation.attacks import distill, distill_eval
from amif_core.evaluation.attacks.runner import REFERENCES, labels
from amif_core.evaluation.attacks.wrong_keys import wrong_key
from amif_core.key.codec import support_masks
from amif_core.transforms.colour import COLOUR_TABLES, apply_table
from amif_core.transforms.identifier import crop_mask, render_identifier_canvas

SIZE = 256


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: one thread is faster, and never oversubscribes a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def head(size: int, seed: int) -> np.ndarray:
    """A (size, size) float32 'fusion': dark background, a bright textured ellipse with a dark ventricle."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    inside = (yy - 0.5) ** 2 / 0.14 + (xx - 0.5) ** 2 / 0.1 < 1
    ventricle = (yy - 0.45) ** 2 / 0.004 + (xx - 0.5) ** 2 / 0.002 < 1
    tissue = 0.65 + 0.1 * np.sin(9 * xx) * np.cos(7 * yy)
    image = np.where(inside & ~ventricle, tissue, 0.05) + rng.normal(0, 0.01, (size, size))
    return np.clip(image, 0, 1).astype(np.float32)


def strokes(size: int, offset: tuple[int, int] = (37, 91)) -> np.ndarray:
    """The default identifier's (size, size) uint8 {0, 1} mask at ``offset``."""
    return crop_mask(render_identifier_canvas(DEFAULT_IDENTIFIER, size, size), offset, size, size).copy()


def draw(clean: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Identifier ink as AMIF draws it: bright on dark content, dark on bright content."""
    ink = np.where(clean < 0.5, 0.95, 0.05)
    return np.where(mask > 0, ink, clean).astype(np.float32)


def test_estimated_mask_finds_synthetic_strokes() -> None:
    mask = strokes(SIZE)
    estimated = mask_estimation.estimate_mask(draw(head(SIZE, 0), mask))
    precision, recall = mask_estimation.precision_recall(estimated, mask)
    assert estimated.shape == mask.shape and estimated.dtype == np.uint8
    assert precision > 0.7 and recall > 0.7, (precision, recall)


def test_estimated_mask_is_nearly_empty_without_identifier() -> None:
    assert mask_estimation.estimate_mask(head(SIZE, 1)).mean() < 0.01


@pytest.mark.parametrize("method", [inpainting.inpaint_telea, inpainting.inpaint_navier_stokes,
                                    inpainting.inpaint_biharmonic])
def test_inpainting_fills_strokes_of_a_flat_image(method) -> None:
    mask = strokes(128)
    out = method(draw(np.full((128, 128), 0.3, np.float32), mask), mask)
    assert out.shape == (128, 128) and out.dtype == np.float32 and np.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1
    assert np.abs(out - 0.3).max() < 0.02  # the strokes (0.95 ink) are gone


def test_inpainting_returns_unit_range_on_a_textured_image() -> None:
    clean = head(SIZE, 2)
    mask = strokes(SIZE)
    protected = draw(clean, mask)
    for method in (inpainting.inpaint_telea, inpainting.inpaint_navier_stokes, inpainting.inpaint_biharmonic):
        out = method(protected, mask)
        assert out.shape == clean.shape and np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
        inside = mask > 0
        assert np.abs(out - clean)[inside].mean() < np.abs(protected - clean)[inside].mean() / 2


def test_dilate_grows_by_one_pixel() -> None:
    mask = np.zeros((9, 9), np.uint8)
    mask[4, 4] = 1
    assert inpainting.dilate(mask).sum() == 9 and inpainting.dilate(mask, 0).sum() == 1


def test_median_and_jpeg_change_the_image() -> None:
    image = draw(head(128, 3), strokes(128))
    for out in [filters.median(image, s) for s in filters.MEDIAN_SIZES] + [filters.jpeg(image, q) for q in
                                                                          filters.JPEG_QUALITIES]:
        assert out.shape == image.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
        assert np.abs(out - image).mean() > 1e-3
    flat = np.full((64, 64), 0.4, np.float32)
    assert np.array_equal(filters.median(flat, 5), flat)
    assert np.abs(filters.jpeg(flat, 50) - 0.4).max() <= 1 / 255 + 1e-6
    assert np.abs(filters.jpeg(image, 95) - image).mean() < np.abs(filters.jpeg(image, 50) - image).mean()


def fixed_batch_loss(net: UNet, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    with torch.inference_mode():
        return float(loss_fn(net(batch[0]), batch[1]))


def test_unet_remover_reduces_its_loss() -> None:
    torch.manual_seed(0)
    clean = np.stack([head(64, s) for s in range(4)])
    protected = np.stack([draw(c, strokes(64, (5 * s, 7 * s))) for s, c in enumerate(clean)])
    fixed = sample_crops(protected, clean, np.random.default_rng(1), 4, 64)
    net = UNet()
    before = fixed_batch_loss(net, fixed)
    losses = fit(net, protected, clean, RemoverConfig(steps=100, batch=4, crop=64, lr=3e-3), np.random.default_rng(0))
    assert len(losses) == 100 and not net.training
    assert fixed_batch_loss(net, fixed) < 0.7 * before
    out = remove(net, protected[0][:61, :58])  # any size: padded to a multiple of 4 and cropped back
    assert out.shape == (61, 58) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1


def test_other_volume_wrong_key_is_the_other_key(model) -> None:
    first = model.protect(head(64, 0) * 100, head(64, 1) * 50)
    second = model.protect(head(64, 2) * 100, head(64, 3) * 50)
    forged = wrong_key(first.key, "other_volume", second.key, np.random.default_rng(0))
    assert forged.fingerprint == first.key.fingerprint
    assert np.array_equal(forged.codes, second.key.codes) and forged.mask_offsets is second.key.mask_offsets


def fake_harvard(root: Path, size: int = 64, colour: bool = False) -> Path:
    """A Harvard-layout folder: 2 training and 3 validation grey slices of ``size`` x ``size``; with ``colour``
    the PET is RGB pseudo-colour (the ``pet`` table), as in the Harvard atlas."""
    rows = [("CT-MRI", "2"), ("CT-MRI", "2"), ("CT-MRI", VALIDATION_PATIENTS["CT-MRI"][0]),
            ("CT-MRI", VALIDATION_PATIENTS["CT-MRI"][0]), ("PET-MRI", VALIDATION_PATIENTS["PET-MRI"][0])]
    with (root / "pairs.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["pair", "file", "patient", "slice"])
        for index, (pair, patient) in enumerate(rows):
            name = f"{patient}{index:03d}.png"
            writer.writerow([pair, name, patient, f"{index:03d}"])
            for modality, seed in (("MRI", index), (pair.split("-")[0], 50 + index)):
                (root / pair / modality).mkdir(parents=True, exist_ok=True)
                image = head(size, seed)
                if colour and modality == "PET":
                    image = apply_table(image, COLOUR_TABLES["pet"])
                Image.fromarray(np.round(image * 255).astype(np.uint8)).save(root / pair / modality / name)
    return root


def test_attack_eval_command_reports_every_attack(tmp_path: Path, weights_file: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    data = fake_harvard(tmp_path)
    code = cli.main(["attack-eval", "--data", str(data), "--leaked", "1,all", "--remover-steps", "2",
                     "--weights", str(weights_file), "--device", "cpu", "--json", str(tmp_path / "a.json"),
                     "--picture", str(tmp_path / "a.png"), "-q"])
    report = capsys.readouterr().out
    assert code == 0
    result = json.loads((tmp_path / "a.json").read_text())
    names = labels({"unet_1": 1, "unet_all": 2})
    assert result["labels"] == names and result["slices"] == {"CT-MRI": 2, "PET-MRI": 1, "SPECT-MRI": 0}
    assert set(result["summary"]) == set(names)
    for row, label in names.items():
        judged = row not in scoring.UNJUDGED_ROWS
        assert report.count(f"| {label} |") == 2 + judged  # in each table, and in the inpainting bar's
        if row not in REFERENCES:
            assert f"- {label}: in-mask PSNR gap to authorized unlock (dB)" in report
    assert result["bars"]["best_inpainting"]["row"] in ("telea_true", "ns_true", "biharmonic_true")
    assert set(result["bars"]["rows"]) == set(names) - set(scoring.UNJUDGED_ROWS)
    for row, control in scoring.KEY_ONLY_CONTROLS.items():
        limit = result["summary"][control]["psnr_mask"] + scoring.MARGIN_DB
        assert result["bars"]["rows"][row]["limit_db"] == pytest.approx(limit)
    assert result["mask_recovery"]["slices"] == 3
    # PET-MRI's single slice has no other slice of its patient: that row is skipped there only.
    assert [("key_other_slice" in s["figures"]) for s in result["per_slice"]] == [True, True, False]
    assert all(row["psnr_mask"] <= 100.0 for row in result["summary"].values())  # capped
    with Image.open(tmp_path / "a.png") as picture:
        assert picture.mode == "L" and picture.size == (3 * 2 * 64 + 2 * 8, 2 * 64 + 24)


def test_attack_eval_in_colour_scores_the_image_attacks_and_wrong_keys_in_rgb(
        tmp_path: Path, weights_file: Path, capsys: pytest.CaptureFixture) -> None:
    data = fake_harvard(tmp_path, colour=True)
    code = cli.main(["attack-eval", "--data", str(data), "--colour", "--leaked", "", "--weights", str(weights_file),
                     "--device", "cpu", "--json", str(tmp_path / "c.json"), "--picture", str(tmp_path / "c.png"), "-q"])
    report = capsys.readouterr().out
    assert code == 0 and "protected in colour, scored in RGB" in report
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["colour"] is True and result["slices"] == {"PET-MRI": 1, "SPECT-MRI": 0}
    rows = set(result["summary"])
    assert rows == {"protected", "unlocked", "telea_true", "ns_true", "biharmonic_true", "telea_estimated",
                    "key_random", "key_zero", "key_shuffled", "median3", "median5", "jpeg95", "jpeg75", "jpeg50"}
    assert result["summary"]["unlocked"]["psnr_mask"] >= 50.0  # the RGB unlock (the colour bar: 50 dB)
    assert all(result["gaps"][row]["meets_bar"] for row in rows - set(REFERENCES))
    assert "forward solve" not in report.split("no attack does better")[1]  # it did not run in colour
    with Image.open(tmp_path / "c.png") as picture:
        assert picture.mode == "RGB"


def test_attack_eval_in_colour_trains_no_removers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = fake_harvard(tmp_path, colour=True)
    assert cli.main(["attack-eval", "--data", str(data), "--colour", "--device", "cpu", "-q"]) != 0
    assert "pass --leaked '' with --colour" in capsys.readouterr().err


def test_image_attacks_keep_an_rgb_image_rgb() -> None:
    mask = strokes(96)
    clean = apply_table(head(96, 4), COLOUR_TABLES["pet"])
    protected = np.where(mask[..., None] > 0, np.float32(0.95), clean)
    for method in (inpainting.inpaint_telea, inpainting.inpaint_navier_stokes, inpainting.inpaint_biharmonic):
        out = method(protected, mask)
        assert out.shape == clean.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
        inside = mask > 0
        assert np.abs(out - clean)[inside].mean() < np.abs(protected - clean)[inside].mean() / 2
    for out in [filters.median(protected, 3), filters.jpeg(protected, 75)]:
        assert out.shape == clean.shape and out.dtype == np.float32
    flat = np.broadcast_to(np.array([0.8, 0.2, 0.1], np.float32), (32, 32, 3)).copy()
    assert np.array_equal(filters.median(flat, 5), flat)  # channels are not mixed


def test_leaked_budget_option_rejects_bad_values(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["attack-eval", "--data", ".", "--leaked", "10,none"]) == cli.EXIT_USAGE
    assert "neither a positive number of pairs nor 'all'" in capsys.readouterr().err


def test_missing_attack_dependency_says_how_to_install() -> None:
    with pytest.raises(ImportError, match=r'pip install "amif-core\[attack\]"'):
        require("amif_no_such_module")


def test_mask_is_located_exactly_from_a_clean_stroke_estimate() -> None:
    canvas = render_identifier_canvas(DEFAULT_IDENTIFIER, 96, 96)
    for offset in ((0, 0), (37, 91), (96, 5)):
        assert white_box.locate_offset(crop_mask(canvas, offset, 96, 96), canvas) == offset


def test_forward_solve_cannot_move_the_covered_pixels(model) -> None:
    """p does not depend on f under the strokes, so the solve leaves them where its Telea start put them."""
    clean = head(64, 4)
    mri, other = clean * 700, head(64, 5) * 30
    protected = model.protect(mri, other)
    mask = model.identifier_mask(protected.key)
    solved, evaluations = white_box.solve_forward(model.net, protected.image, mask, evaluations=40)
    start = inpainting.inpaint_telea(protected.image, mask)
    assert evaluations >= 40
    np.testing.assert_array_equal(solved[mask > 0], np.clip(start[mask > 0], 0, 1))
    ring = (inpainting.dilate(mask) > 0) & (mask == 0)
    assert np.abs(solved - protected.image)[ring].mean() < np.abs(start - protected.image)[ring].mean()


def test_key_only_views_and_flow_mean(model) -> None:
    protected = model.protect(head(64, 6) * 900, head(64, 7) * 20)
    mask = model.identifier_mask(protected.key)
    view = key_only.key_view(model, protected.key)
    assert view.shape == (64, 64) and 0 <= view.min() and view.max() <= 1
    assert np.array_equal(key_only.blank_view(model, protected.key), mask.astype(np.float32))
    for image in (key_only.blank_flow_inverse(model, protected.key),
                  white_box.flow_mean_unlock(model, protected.image, protected.key)):
        assert image.shape == (64, 64) and image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
    flow_mean = white_box.flow_mean_unlock(model, protected.image, protected.key)
    untouched = ~np.kron(support_masks(mask[None], (64, 64))[0], np.ones((2, 2), bool))
    np.testing.assert_allclose(flow_mean[untouched], protected.image[untouched], atol=1e-6)


def test_random_code_control_keeps_only_the_header(model) -> None:
    protected = model.protect(head(64, 6) * 900, head(64, 7) * 20)
    key = protected.key
    control = wrong_key(key, "random", None, np.random.default_rng(0))  # the key-only controls' key
    assert control.codes.dtype == np.int16 and control.codes.shape == key.codes.shape
    assert not np.array_equal(control.codes, key.codes)
    assert control.identifier == key.identifier and control.shape == key.shape
    np.testing.assert_array_equal(model.identifier_mask(control), model.identifier_mask(key))
    # Padded codes are uniform words, and so are the control's: their spreads agree.
    assert abs(float(control.codes.std()) - float(key.codes.std())) < 0.1 * float(key.codes.std())
    view = key_only.key_view(model, control)
    assert view.shape == (64, 64) and 0 <= view.min() and view.max() <= 1
    outside = ~np.kron(support_masks(model.identifier_mask(key)[None], (64, 64))[0], np.ones((2, 2), bool))
    assert np.ptp(view[outside]) == 0  # nothing but the support carries codes


def test_key_only_attack_is_judged_against_its_random_code_control() -> None:
    def slice_figures(flow: float, control: float) -> dict[str, dict[str, float]]:
        rows = {"unlocked": 100.0, "protected": 2.0, "telea_true": 16.0, "ns_true": 16.0, "biharmonic_true": 17.0,
                "key_only_flow": flow, "random_flow": control, "key_only_unet": 7.0, "random_unet": 7.2,
                "blank_unet": 5.0}
        return {row: dict.fromkeys(scoring.FIGURES, value) for row, value in rows.items()}

    bars = scoring.inpainting_bars([slice_figures(8.5, 8.0)])["rows"]
    assert bars["key_only_flow"] == {"psnr_db": 8.5, "limit_db": 8.0 + scoring.MARGIN_DB, "meets": True}
    assert bars["key_only_unet"]["meets"]  # above the mask-only U-Net, but not above its control
    assert not {"random_flow", "random_unet", "blank_unet"} & set(bars)
    assert not scoring.inpainting_bars([slice_figures(9.5, 8.0)])["rows"]["key_only_flow"]["meets"]


def test_students_train_for_every_setting() -> None:
    """Each student recipe runs, reduces nothing to NaN and gives a fusion in [0, 1] of the input's size."""
    rng = np.random.default_rng(0)
    inputs = rng.random((3, 2, 48, 40), dtype=np.float32)
    targets = inputs.max(axis=1)
    strokes_ = np.zeros((3, 48, 40), np.uint8)
    strokes_[:, 10:14, :] = 1
    for name, config in distill.with_steps(distill.SETTINGS, 2).items():
        weights = distill.loss_weights(strokes_, config.degrade)
        assert weights[:, 12].max() == 0 and weights[:, 30].min() == 1, name
        net = distill.train_student(inputs, np.stack([distill.degrade(t, config.degrade) for t in targets]),
                                    weights, replace(config, crop=32), seed=0)
        out = distill.student_fusion(net, inputs[0, 0], inputs[0, 1])
        assert out.shape == (48, 40) and np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1, name


def test_attack_eval_distill_reports_students_and_independent_suspects(tmp_path: Path, weights_file: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    data = fake_harvard(tmp_path)
    code = cli.main(["attack-eval", "--distill", "--data", str(data), "--student-steps", "2", "--student-seeds", "1",
                     "--probes", "3", "--settings", "a_unet_l1,d_blurred_targets", "--weights", str(weights_file),
                     "--device", "cpu", "--json", str(tmp_path / "d.json"), "-q"])
    report = capsys.readouterr().out
    assert code == 0
    result = json.loads((tmp_path / "d.json").read_text())
    assert set(result["suspects"]) == {"pixel_max", "pixel_mean", "unmarked_network", "amif_other_secret",
                                       "a_unet_l1/seed0", "d_blurred_targets/seed0", "control_student_other_secret"}
    assert result["bars"]["students"] == 2 and result["bars"]["independent"] == 5
    assert result["bars"]["wrong_secret_tests"] == 7 * distill_eval.WRONG_SECRETS
    for name, row in result["suspects"].items():
        assert 0 <= row["trace"]["p_value"] <= 1 and name in report
    assert "students traced at p <= 1e-06" in report
