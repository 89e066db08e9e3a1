"""Known-answer tests for amif_core.evaluation.metrics (hand-computed / analytic values)."""

from __future__ import annotations

import math
import sys
from typing import Callable

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from amif_core.evaluation import metrics as m

N = 48  # >= 41, the smallest side VIF accepts


def _texture(seed: int = 0, size: int = N) -> np.ndarray:
    """Smooth random grey texture with integer levels on 0..255 (saturating at both ends)."""
    rng = np.random.default_rng(seed)
    smooth = gaussian_filter(rng.normal(0.0, 1.0, (size, size)), 1.5)
    return np.clip(np.round(128.0 + 70.0 * smooth / smooth.std()), 0, 255)


def _stripes(axis: int, low: float = 50.0, high: float = 150.0, size: int = N) -> np.ndarray:
    """Alternating one-pixel stripes: `low`/`high` by column (axis=1) or row (axis=0)."""
    idx = np.indices((size, size))[axis]
    return np.where(idx % 2 == 0, low, high)


# --- EN -------------------------------------------------------------------


def test_en_constant_image_is_zero() -> None:
    assert m.en(np.full((5, 7), 42.0)) == 0.0


def test_en_two_and_four_equiprobable_levels() -> None:
    assert m.en(_stripes(axis=1)) == pytest.approx(1.0, abs=1e-12)
    four = np.array([[0.0, 1.0], [2.0, 3.0]]).repeat(3, 0).repeat(3, 1)
    assert m.en(four) == pytest.approx(2.0, abs=1e-12)


def test_en_bins_rounded_levels() -> None:
    # 100.4 -> 100 and 100.6 -> 101: two equally frequent bins, 1 bit.
    assert m.en(np.array([[100.4, 100.6], [100.4, 100.6]])) == pytest.approx(1.0, abs=1e-12)


# --- SD / SF / AG ---------------------------------------------------------


def test_sd_hand_computed() -> None:
    # values 0, 0, 2, 2: mean 1, every deviation 1 -> population std 1.
    assert m.sd(np.array([[0.0, 2.0], [0.0, 2.0]])) == pytest.approx(1.0)


def test_sf_hand_computed() -> None:
    # horizontal differences 1, 1 (mean square 1), vertical 2, 2 (mean square 4).
    assert m.sf(np.array([[0.0, 1.0], [2.0, 3.0]])) == pytest.approx(math.sqrt(5.0))


def test_sf_and_ag_of_linear_ramp() -> None:
    # f[i, j] = 4 i + 3 j: every difference (central or one-sided) is 3 along x, 4 along y.
    i, j = np.indices((6, 9))
    ramp = 4.0 * i + 3.0 * j
    assert m.sf(ramp) == pytest.approx(5.0)
    assert m.ag(ramp) == pytest.approx(5.0 / math.sqrt(2.0))


def test_ag_uses_one_sided_border_differences() -> None:
    # Row [0, 0, 6]: Gx = [0, 3, 6] (one-sided, central, one-sided), Gy = 0.
    row = np.array([[0.0, 0.0, 6.0], [0.0, 0.0, 6.0]])
    assert m.ag(row) == pytest.approx((0.0 + 3.0 + 6.0) / 3.0 / math.sqrt(2.0))


# --- MI -------------------------------------------------------------------


def test_mi_identical_images_is_twice_entropy_in_nats() -> None:
    f = _stripes(axis=1)
    assert m.mi(f, f, f) == pytest.approx(2.0 * math.log(2.0))
    tex = _texture()
    assert m.mi(tex, tex, tex) == pytest.approx(2.0 * m.en(tex) * math.log(2.0))


def test_mi_constant_fused_and_independent_sources_are_zero() -> None:
    cols, rows = _stripes(axis=1), _stripes(axis=0)
    assert m.mi(np.full((N, N), 7.0), cols, rows) == pytest.approx(0.0, abs=1e-12)
    # Column stripes carry no information about row stripes.
    assert m.mi(cols, rows, rows) == pytest.approx(0.0, abs=1e-12)
    assert m.mi(cols, cols, rows) == pytest.approx(math.log(2.0))


# --- SCD ------------------------------------------------------------------


def test_scd_of_sum_is_two() -> None:
    a, b = _texture(1), _texture(2)
    # F - B = A and F - A = B: both correlations are exactly 1.
    assert m.scd(a + b, a, b) == pytest.approx(2.0)


def test_scd_of_average_of_uncorrelated_sources() -> None:
    # a, b: zero covariance, equal variance 2500; F = (a + b) / 2.
    # corr(a, F - b) = corr(a, a - b) = var(a) / sqrt(var(a) * 2 var(a)) = 1/sqrt(2).
    a, b = _stripes(axis=1), _stripes(axis=0)
    assert m.scd((a + b) / 2.0, a, b) == pytest.approx(math.sqrt(2.0))


def test_scd_is_nan_when_a_difference_is_constant() -> None:
    a = _texture()
    assert math.isnan(m.scd(a, a, a))


# --- VIF ------------------------------------------------------------------


def test_vif_of_identical_images_is_one_per_input() -> None:
    a, b = _texture(1), _texture(2)
    assert m.vif(a, a, a) == pytest.approx(2.0, abs=1e-6)
    # F == A gives exactly 1 for the A term; the B term is below 1.
    assert 1.0 < m.vif(a, a, b) < 2.0


def test_vif_drops_for_noisy_fused() -> None:
    a = _texture()
    noisy = np.clip(a + np.random.default_rng(3).normal(0.0, 20.0, a.shape), 0, 255)
    assert m.vif(np.round(noisy), a, a) < 0.8 * m.vif(a, a, a)


def test_vif_constant_source_scores_one() -> None:
    # Reference convention: 0/0 for a flat reference image is mapped to 1.
    a = _texture()
    assert m.vif(a, a, np.full_like(a, 30.0)) == pytest.approx(2.0, abs=1e-6)


# --- Qabf -----------------------------------------------------------------

TG, TA = 0.9994, 0.9879


def test_qabf_identical_images_analytic_value() -> None:
    # F == A == B: orientation agreement 1 -> Q_a = Ta / (1 + exp(-22 * 0.2)).
    # Equal strengths use the strength itself in the reference (not 1); with
    # all Sobel strengths >= 10 here, Q_g = Tg / (1 + exp(-15 * (g - 0.5))) = Tg
    # to double precision, so Qabf = Tg * Ta / (1 + exp(-4.4)).
    tex = _texture() // 10 * 10
    expected = TG * TA / (1.0 + math.exp(-4.4))
    assert m.qabf(tex, tex, tex) == pytest.approx(expected, rel=1e-12)
    # An "equal strength -> 1" convention would give a value about 5.5e-4 lower.
    assert expected / (1.0 + math.exp(-7.5)) < expected - 5e-4


def test_qabf_lower_for_blurred_fused() -> None:
    a = _texture()
    blurred = np.round(gaussian_filter(a, 2.0))
    q = m.qabf(blurred, a, a)
    assert 0.0 < q < 0.8 * m.qabf(a, a, a)


def test_qabf_is_nan_without_source_edges() -> None:
    flat = np.zeros((8, 8))
    assert math.isnan(m.qabf(_texture(size=8), flat, flat))


# --- SSIM -----------------------------------------------------------------


def test_ssim_identical_is_one_per_input() -> None:
    a = _texture()
    assert m.ssim(a, a, a) == pytest.approx(2.0)


def test_ssim_uses_data_range_two() -> None:
    # Constant images 0 vs 1: SSIM = C1 / (1 + C1) with C1 = (0.01 * L)^2; L = 2.
    # (L = 255 would give about 0.87.)
    c1 = (0.01 * 2.0) ** 2
    zeros, ones = np.zeros((N, N)), np.ones((N, N))
    assert m.ssim(zeros, ones, zeros) == pytest.approx(c1 / (1.0 + c1) + 1.0)


# --- fusion_metrics: 8-bit convention -------------------------------------


def test_fusion_metrics_keys_and_identical_inputs() -> None:
    a = _texture() / 255.0
    out = m.fusion_metrics(a, a, a)
    assert tuple(out) == m.METRIC_NAMES
    assert all(isinstance(v, float) for v in out.values())
    assert out["SSIM"] == pytest.approx(2.0)
    assert out["VIF"] == pytest.approx(2.0, abs=1e-6)
    assert out["MI"] == pytest.approx(2.0 * out["EN"] * math.log(2.0))


def test_fusion_metrics_rounds_fused_to_8_bits() -> None:
    a, b, f = _texture(1), _texture(2), _texture(3)
    f = np.clip(f, 1, 254)
    exact = m.fusion_metrics(f / 255.0, a / 255.0, b / 255.0)
    # 100.4/255 behaves as 100 (and 99.6/255 as 100); float32 input is fine.
    shifted = m.fusion_metrics(((f + 0.4) / 255.0).astype(np.float32), a / 255.0, b / 255.0)
    assert shifted == pytest.approx(exact, rel=1e-12, abs=1e-12)
    below = m.fusion_metrics((f - 0.4) / 255.0, (a + 0.3) / 255.0, (b - 0.3) / 255.0)
    assert below == pytest.approx(exact, rel=1e-12, abs=1e-12)


def test_fusion_metrics_clips_fused_to_unit_range() -> None:
    f, a, b = (_texture(seed) / 255.0 for seed in (3, 1, 2))
    assert (f == 1.0).any() and (f == 0.0).any()
    over = f.copy()
    over[f == 1.0] = 1.3
    over[f == 0.0] = -0.2
    assert m.fusion_metrics(over, a, b) == pytest.approx(m.fusion_metrics(f, a, b), rel=1e-12, abs=1e-12)


# --- validation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        (m.en, (np.zeros((4, 4, 3)),)),
        (m.sd, (np.zeros(16),)),
        (m.sf, (np.zeros((1, 5)),)),
        (m.qabf, (np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 9)))),
        (m.vif, (np.zeros((40, 40)),) * 3),
        (m.ssim, (np.zeros((6, 6)),) * 3),
        (m.fusion_metrics, (np.zeros((N, N, 1)),) * 3),
        (m.fusion_metrics, (np.zeros((N, N)), np.zeros((N, N)), np.zeros((N, N + 1)))),
    ],
)
def test_bad_shapes_raise(fn: Callable[..., float], args: tuple[np.ndarray, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        fn(*args)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_raise(bad: float) -> None:
    img = np.zeros((N, N))
    img[3, 4] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        m.sd(img)
    with pytest.raises(ValueError, match="NaN or infinite"):
        m.mi(np.zeros((N, N)), img, np.zeros((N, N)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        m.fusion_metrics(img, np.zeros((N, N)), np.zeros((N, N)))


def test_fusion_metrics_rejects_integer_images() -> None:
    with pytest.raises(ValueError, match="float image"):
        m.fusion_metrics(np.zeros((N, N), np.uint8), np.zeros((N, N)), np.zeros((N, N)))


@pytest.mark.parametrize(("fn", "module"), [(m.mi, "sklearn.metrics"), (m.ssim, "skimage.metrics")])
def test_missing_optional_dependency_explains_install(
    monkeypatch: pytest.MonkeyPatch, fn: Callable[..., float], module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    img = _texture()
    with pytest.raises(ImportError, match=r'pip install "amif-core\[eval\]"'):
        fn(img, img, img)
