"""protect / unlock / fuse_clean through the public API."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import amif_core
from amif_core.evaluation.fusion import psnr
from amif_core.key.codec import apply_pad, pad_seed


def _pair(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth synthetic head-like pair: MRI in scanner-like units, a PET-like blob image."""
    rng = np.random.default_rng(seed)
    h, w = shape[-2:]
    yy, xx = np.mgrid[0:h, 0:w]
    head = (((yy - h / 2) / (0.42 * h)) ** 2 + ((xx - w / 2) / (0.36 * w)) ** 2 < 1).astype(np.float64)
    mri = head * (800 + 300 * np.sin(xx / 5.0) * np.cos(yy / 7.0))
    pet = head * np.exp(-(((yy - 0.4 * h) ** 2 + (xx - 0.6 * w) ** 2) / (0.02 * h * w)))
    if len(shape) == 3:
        mri = np.stack([mri * (1 + 0.05 * k) for k in range(shape[0])])
        pet = np.stack([np.roll(pet, k, axis=1) for k in range(shape[0])])
    return mri + rng.normal(0, 5, mri.shape), pet


@pytest.mark.parametrize("shape", [(64, 64), (3, 48, 40), (2, 37, 53)])
def test_shapes_dtypes_and_exact_unlock(model: amif_core.AMIFModel, shape: tuple[int, ...]) -> None:
    mri, other = _pair(shape)
    protected = model.protect(mri, other)
    assert protected.image.shape == shape and protected.image.dtype == np.float32
    assert protected.image.min() >= 0 and protected.image.max() <= 1
    clean = model.fuse_clean(mri, other)
    unlocked = model.unlock(protected.image, protected.key)
    assert unlocked.shape == shape and unlocked.dtype == np.float32
    assert psnr(unlocked, clean) >= 50


def test_batch_size_does_not_change_results(model: amif_core.AMIFModel) -> None:
    mri, other = _pair((5, 40, 48))
    results = []
    for batch in (1, 2, 5):
        model.batch_size = batch
        results.append(model.protect(mri, other))
    model.batch_size = 4
    for other_result in results[1:]:
        np.testing.assert_allclose(other_result.image, results[0].image, atol=2e-6)
        assert other_result.key.codes.size == results[0].key.codes.size
        np.testing.assert_allclose(model.unlock(other_result.image, other_result.key),
                                   model.unlock(results[0].image, results[0].key), atol=2e-4)  # key quantisation


def test_protect_is_deterministic_on_cpu(model: amif_core.AMIFModel) -> None:
    mri, other = _pair((2, 48, 48))
    first, second = model.protect(mri, other), model.protect(mri, other)
    assert first.image.tobytes() == second.image.tobytes()
    assert first.key.codes.tobytes() == second.key.codes.tobytes()
    assert first.key.fingerprint == second.key.fingerprint


def test_key_of_another_image_is_refused(model: amif_core.AMIFModel) -> None:
    mri, other = _pair((48, 48), seed=0)
    mine = model.protect(mri, other)
    theirs = model.protect(*_pair((48, 48), seed=1))
    unrelated = model.protect(mri[::-1].copy(), other[::-1].copy())
    with pytest.raises(amif_core.KeyMismatchError, match="belongs to another image"):
        model.unlock(mine.image, unrelated.key)
    with pytest.raises(amif_core.ImageModifiedError, match="modified"):
        model.unlock(np.round(mine.image * 255) / 255, mine.key)
    with pytest.raises(amif_core.KeyMismatchError, match="shape"):
        model.unlock(mine.image[:40], mine.key)
    assert theirs.key.fingerprint != mine.key.fingerprint
    other_model = dataclasses.replace(mine.key, model_id="0" * 64)
    with pytest.raises(amif_core.ModelMismatchError, match="other|weights"):
        model.unlock(mine.image, other_model)
    forced = model.unlock(mine.image, unrelated.key, verify=False)
    assert forced.shape == mine.image.shape


def test_identifier_is_visible_in_protected_and_gone_after_unlock(model: amif_core.AMIFModel) -> None:
    mri, other = _pair((96, 96))
    protected = model.protect(mri, other)
    clean = model.fuse_clean(mri, other)
    mask = model.identifier_mask(protected.key) > 0
    assert 0.08 <= mask.mean() <= 0.25
    assert np.abs(protected.image - clean)[mask].mean() >= 0.25
    assert np.abs(model.unlock(protected.image, protected.key) - clean)[mask].mean() < 1e-3
    assert np.array_equal(protected.image[~mask], clean[~mask])


def test_unlock_from_the_image_rounded_to_16_bits(model: amif_core.AMIFModel) -> None:
    mri, other = _pair((2, 64, 56))
    protected = model.protect(mri, other)
    rounded = (np.rint(protected.image * 65535) / 65535).astype(np.float32)
    assert psnr(model.unlock(rounded, protected.key, verify=False), model.fuse_clean(mri, other)) >= 50


def test_the_key_codes_look_random_without_the_image(model: amif_core.AMIFModel) -> None:
    """The stored codes are padded with a stream only the image derives: flat histogram, no structure."""
    protected = model.protect(*_pair((3, 96, 96)))
    words = protected.key.codes.view(np.uint16).astype(np.int64)
    counts = np.bincount(words >> 12, minlength=16)
    expected = words.size / 16
    assert ((counts - expected) ** 2 / expected).sum() < 50  # chi-square, 15 degrees of freedom: p < 1e-4
    neighbours = np.corrcoef(words[:-1], words[1:])[0, 1]
    assert abs(neighbours) < 0.03
    unpadded = dataclasses.replace(protected.key, codes=apply_pad(protected.key.codes, pad_seed(protected.image), 0, -1))
    assert np.abs(unpadded.codes.astype(np.int64)).max() == 32767  # the plain codes span their fixed-point range


def test_the_code_scales_are_hidden_without_the_image(model: amif_core.AMIFModel) -> None:
    """The per-band origin and step follow the covered content, so they are padded too (key format 5)."""
    mri, other = _pair((40, 64, 64))
    protected = model.protect(mri, other)
    key = protected.key
    assert key.scale_padded and key.code_origin.dtype == np.uint32 and key.code_step.dtype == np.uint32
    origin, step = key.scales(pad_seed(protected.image))
    assert np.isfinite(origin).all() and (step > 0).all() and step.max() < 1e-2  # y2's range / 65534, per band
    stored = np.concatenate([key.code_origin, key.code_step], axis=1).view(np.float32)
    assert not np.isin(stored, np.concatenate([origin, step], axis=1)).any()
    with np.errstate(invalid="ignore"):
        assert (~(np.abs(stored) < 1e3)).mean() > 0.3  # padded words read as any float: half are huge or not finite
    exponents = (np.concatenate([key.code_origin, key.code_step]) >> 23) & 0xFF
    assert len(np.unique(exponents)) > 60  # real scales share a handful of exponents
    other_seed = pad_seed(model.protect(*_pair((40, 64, 64), seed=1)).image)
    wrong_origin, wrong_step = key.scales(other_seed)
    assert np.isfinite(wrong_origin).all() and not np.allclose(wrong_step, step)
    assert np.isfinite(model.unlock(protected.image, dataclasses.replace(key, code_origin=key.code_origin[::-1].copy()),
                                    verify=False)).all()


def test_a_key_with_its_scales_in_the_clear_still_unlocks(model: amif_core.AMIFModel) -> None:
    """Keys written before key format 5 hold origin and step as plain float32; they unlock as before."""
    from amif_core.key.codec import scale_words

    protected = model.protect(*_pair((2, 48, 40)))
    words = scale_words(*protected.key.scales(pad_seed(protected.image)))
    clear = dataclasses.replace(protected.key, scale_padded=False, code_origin=words[0], code_step=words[1])
    np.testing.assert_array_equal(model.unlock(protected.image, clear), model.unlock(protected.image, protected.key))


def test_bad_inputs_get_clear_errors(model: amif_core.AMIFModel) -> None:
    with pytest.raises(amif_core.InputError, match="same shape"):
        model.protect(np.zeros((32, 32)), np.zeros((32, 30)))
    with pytest.raises(amif_core.InputError, match="2D slice"):
        model.protect(np.zeros((2, 2, 32, 32)), np.zeros((2, 2, 32, 32)))
    with pytest.raises(ValueError, match="NaN"):
        bad = np.zeros((32, 32))
        bad[3, 3] = np.nan
        model.protect(bad, np.zeros((32, 32)))
    with pytest.raises(ValueError, match="cannot draw"):
        model.protect(np.zeros((32, 32)), np.zeros((32, 32)), identifier="\u00e9t\u00e9")
