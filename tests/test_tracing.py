"""The trace mark, its owner secret and the trace statistic (amif_core.tracing)."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from scipy import ndimage, stats

import SimpleITK as sitk

import amif_core
from amif_core.data.demo_files import DEMO_MRI, DEMO_PET
from amif_core.errors import InputError
from amif_core.io.geometry import resample_to_reference
from amif_core.evaluation.psnr import psnr
from amif_core.tracing.detect import TraceAccumulator
from amif_core.tracing.mark import AMPLITUDE, DEMO_MARK, FEATURES, TraceMark, features, gate
from amif_core.inference.trace import Probe, trace_probes
from amif_core.transforms.intensity import fit_normalisation
from amif_core.tracing.secret import (
    DEMO_SECRET,
    ENVIRONMENT,
    OwnerSecret,
    new_secret,
    read_secret,
    resolve_secret,
    write_secret,
)


def _anatomy(seed: int, shape: tuple[int, int] = (96, 96)) -> tuple[np.ndarray, np.ndarray]:
    """Two smooth random 'scans' in [0, 1] with a black border, as normalised inputs are."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    head = ((yy - h / 2) / (0.42 * h)) ** 2 + ((xx - w / 2) / (0.4 * w)) ** 2 < 1
    scans = []
    for sigma in (2.0, 4.0):
        field = ndimage.gaussian_filter(rng.random(shape), sigma)
        field = (field - field.min()) / np.ptp(field)
        scans.append((field * head).astype(np.float32))
    return scans[0], scans[1]


def _demo_slices(count: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` axial slices of the bundled demo MRI and PET (real anatomy), normalised as protect does."""
    mri_image = sitk.ReadImage(str(DEMO_MRI))
    on_grid = resample_to_reference(sitk.ReadImage(str(DEMO_PET)), mri_image)[0]
    mri, pet = (sitk.GetArrayFromImage(image).astype(np.float32) for image in (mri_image, on_grid))
    mri, pet = fit_normalisation(mri).apply(mri), fit_normalisation(pet).apply(pet)
    centre = mri.shape[0] // 2
    return [(mri[k], pet[k]) for k in range(centre - 2 * count, centre + 2 * count, 4)]


def test_secret_file_round_trip_is_private_and_never_overwritten(tmp_path) -> None:
    secret = new_secret()
    path = tmp_path / "owner.secret"
    write_secret(path, secret)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_secret(path) == secret and not read_secret(path).demo
    with pytest.raises(FileExistsError):
        write_secret(path, new_secret())
    assert read_secret(path) == secret
    assert secret.bits.hex() not in repr(secret)


def test_secret_file_refusals(tmp_path) -> None:
    with pytest.raises(InputError, match="amif owner init"):
        read_secret(tmp_path / "missing.secret")
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("hello\n")
    wrong.chmod(0o600)
    with pytest.raises(InputError, match="not an AMIF owner secret"):
        read_secret(wrong)
    shared = tmp_path / "shared.secret"
    write_secret(shared, new_secret())
    shared.chmod(0o644)
    with pytest.raises(InputError, match="chmod 600"):
        read_secret(shared)


def test_resolve_secret_order(tmp_path, monkeypatch) -> None:
    path = tmp_path / "env.secret"
    write_secret(path, new_secret())
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    assert resolve_secret(None) is DEMO_SECRET
    assert resolve_secret("") is DEMO_SECRET  # an empty field or Slicer setting is no secret file
    monkeypatch.setenv(ENVIRONMENT, os.fspath(path))
    assert resolve_secret(None) == read_secret(path)
    assert resolve_secret("") == read_secret(path)


def test_mark_is_bounded_deterministic_and_zero_on_background() -> None:
    a, b = _anatomy(0)
    mark = TraceMark.from_secret(new_secret())
    values = mark.mark(a, b)
    assert values.dtype == np.float32 and np.abs(values).max() <= AMPLITUDE
    np.testing.assert_array_equal(values, mark.mark(a.copy(), b.copy()))
    assert np.abs(values).max() > 0.5 * AMPLITUDE  # the mark is really there
    zeros = np.zeros((40, 40), np.float32)
    assert np.all(mark.mark(zeros, zeros) == 0)
    fused = np.maximum(a, b)[None]
    assert psnr(mark.apply(fused, a[None], b[None]), fused) >= 46.0


def test_directions_are_unit_and_differ_per_secret() -> None:
    one, two = (TraceMark.from_secret(OwnerSecret(bytes([k]) * 32)) for k in (1, 2))
    assert one.direction.shape == (FEATURES,)
    assert np.isclose(np.linalg.norm(one.direction), 1.0)
    assert abs(one.direction @ two.direction) < 0.5
    np.testing.assert_array_equal(TraceMark.from_secret(DEMO_SECRET).direction, DEMO_MARK.direction)


def test_features_are_the_marks_basis() -> None:
    a, b = _anatomy(1)
    mark = TraceMark.from_secret(new_secret())
    np.testing.assert_allclose(np.tensordot(mark.direction, features(a, b), axes=1),
                               mark.response(a, b) * gate(a, b), atol=1e-4)


def test_mark_of_slices_smaller_than_its_offsets() -> None:
    a, b = _anatomy(2, (5, 7))
    assert DEMO_MARK.mark(a, b).shape == (5, 7) and features(a, b).shape == (FEATURES, 5, 7)


def _accumulate(suspect) -> TraceAccumulator:
    accumulator = TraceAccumulator()
    for seed, (a, b) in enumerate(_demo_slices()):
        reference = np.maximum(a, b)
        accumulator.add(a, b, reference, suspect(a, b, reference, seed))
    return accumulator


@pytest.mark.parametrize("seed", range(3))
def test_marked_outputs_are_traced_through_gain_and_noise(seed: int) -> None:
    """A suspect that learnt half the mark, on another scale, with noise of one grey level, is traced."""
    secret = OwnerSecret(bytes([seed]) * 32)
    mark = TraceMark.from_secret(secret)

    def student(a, b, reference, seed):
        rng = np.random.default_rng(100 + seed)
        return 0.9 * (reference + 0.5 * mark.mark(a, b)) + 0.02 + rng.normal(0, 1 / 255, a.shape)

    result = _accumulate(student).result(mark)
    assert result.verdict == "traced" and result.p_value <= 1e-6
    other = _accumulate(student).result(TraceMark.from_secret(OwnerSecret(bytes([100 + seed]) * 32)))
    assert other.p_value > 1e-6


def test_p_values_are_uniform_under_the_null() -> None:
    """An independent suspect against many random secrets: the p-values follow the uniform law."""

    def independent(a, b, reference, seed):
        return np.clip(0.6 * a + 0.6 * b + np.random.default_rng(seed).normal(0, 2 / 255, a.shape), 0, 1)

    accumulator = _accumulate(independent)
    p_values = [accumulator.result(TraceMark.from_secret(OwnerSecret(k.to_bytes(32, "little")))).p_value
                for k in range(300)]
    assert stats.kstest(p_values, "uniform").pvalue > 1e-3
    assert sum(p <= 1e-3 for p in p_values) <= 3


def test_model_releases_the_marked_fusion_and_unlock_returns_it(model: amif_core.AMIFModel) -> None:
    a, b = _anatomy(3, (64, 64))
    secret = new_secret()
    protected = model.protect(a, b, owner=secret)
    unlocked = model.unlock(protected.image, protected.key)
    marked = model.fuse_clean(a, b, owner=secret)
    plain = model.fuse_clean(a, b, owner=None)
    assert psnr(unlocked, marked) >= 50
    assert np.abs(marked - plain).max() <= AMPLITUDE + 1e-6
    assert psnr(marked, plain) >= 46
    np.testing.assert_array_equal(model.fuse_clean(a, b), model.fuse_clean(a, b, owner=DEMO_SECRET))


def test_trace_probes_from_the_model(model: amif_core.AMIFModel) -> None:
    secret = OwnerSecret(bytes(range(32)))
    pairs = _demo_slices()
    marked = [Probe(str(i), a, b, model.fuse_clean(a, b, owner=secret)) for i, (a, b) in enumerate(pairs)]
    as_8_bit = [Probe(p.name, p.mri, p.other, np.round(p.output * 255).astype(np.uint8)) for p in marked]
    assert trace_probes(model, as_8_bit, secret).verdict == "traced"
    unmarked = [Probe(str(i), a, b, model.fuse_clean(a, b, owner=None)) for i, (a, b) in enumerate(pairs)]
    assert trace_probes(model, unmarked, secret).p_value > 1e-3
    with pytest.raises(InputError, match="exactly these inputs"):
        trace_probes(model, [Probe("x", pairs[0][0], pairs[0][1], np.zeros((10, 10)))], secret)


def test_amif_trace_reads_probe_folders_and_gives_a_verdict(model: amif_core.AMIFModel, tmp_path, capsys) -> None:
    import json

    from PIL import Image

    import amif_core.cli.main as cli

    secret_path = tmp_path / "owner.secret"
    write_secret(secret_path, OwnerSecret(bytes(range(32))))
    probes, outputs = tmp_path / "probes", tmp_path / "outputs"
    outputs.mkdir()
    for index, (a, b) in enumerate(_demo_slices()):
        folder = probes / f"p{index}"
        folder.mkdir(parents=True)
        for name, image in (("mri", a), ("other", b)):
            Image.fromarray(np.round(image * 255).astype(np.uint8)).save(folder / f"{name}.png")
        mri, other = (np.asarray(Image.open(folder / f"{n}.png"), np.float32) for n in ("mri", "other"))
        released = model.fuse_clean(mri, other, owner=read_secret(secret_path))
        Image.fromarray(np.round(released * 255).astype(np.uint8)).save(outputs / f"p{index}.png")
    code = cli.main(["trace", str(probes), str(outputs), "--owner-secret", str(secret_path), "--device", "cpu",
                     "--json", "-", "-q"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["verdict"] == "traced" and result["slices"] == 8 and not result["demo_secret"]
