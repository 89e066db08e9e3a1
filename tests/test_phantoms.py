"""The lesion benchmark's phantom family (benchmarks/phantoms.py) makes the scans it claims to make."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from phantoms import PATTERNS, Lesion, activity, scan, tissues  # noqa: E402

SPACING = np.array([1.5, 1.5, 1.5])


@pytest.fixture(scope="module")
def mri() -> np.ndarray:
    """A T1-like head (z, y, x): dark CSF core, white matter, a grey-matter shell, a dark gap, dim scalp, air."""
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in (40, 48, 44)], indexing="ij")
    radius = np.sqrt(sum(g**2 for g in grids))
    values = np.select([radius < 0.3, radius < 0.55, radius < 0.75, radius < 0.85, radius < 0.9],
                       [40.0, 200.0, 120.0, 0.0, 30.0], 0.0)
    return (values + np.random.default_rng(0).normal(0, 2, radius.shape)).astype(np.float32)


def test_tissue_shares_follow_the_mri(mri: np.ndarray) -> None:
    shares = tissues(mri)
    centre, white, grey = (20, 24, 22), (20, 24, 31), (20, 24, 36)
    assert shares.csf[centre] > 0.9 and shares.white[white] > 0.9 and shares.grey[grey] > 0.9
    inside = shares.brain
    assert np.allclose((shares.grey + shares.white + shares.csf)[inside], 1.0, atol=1e-5)
    assert shares.outside[20, 24, 40] == 1 and not inside[20, 24, 40]  # the scalp


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.name)
def test_each_pattern_puts_its_uptake_in_each_tissue(mri: np.ndarray, pattern) -> None:
    shares = tissues(mri)
    level = activity(pattern, shares)
    for share, want in ((shares.grey, pattern.grey), (shares.white, pattern.white), (shares.csf, pattern.csf)):
        pure = (share > 0.95) & shares.brain  # within 5 % of one tissue: its uptake, give or take 5 % of the range
        spread = 0.05 * max(pattern.grey, pattern.white, pattern.csf)
        assert pure.sum() > 10 and np.abs(level[pure] - want).max() <= spread + 1e-6
    volume = scan(pattern, shares, SPACING, None, seed=0)
    assert volume.dtype == np.float32 and volume.min() >= 0 and volume.shape == mri.shape


def test_spect_is_blurrier_and_low_count_noisier_than_fdg(mri: np.ndarray) -> None:
    shares = tissues(mri)
    by_name = {p.name: p for p in PATTERNS}

    def roughness(pattern) -> float:  # mean absolute step between neighbours, relative to the brain's mean
        volume = scan(pattern, shares, SPACING, None, seed=1)
        return float(np.abs(np.diff(volume[20], axis=1)).mean() / volume[shares.brain].mean())

    assert roughness(by_name["low-count"]) > 2 * roughness(by_name["fdg"])  # a tenth of the counts
    # at counts high enough for the noise to vanish, what is left of the steps is the tissue edges: the same
    # uptake at SPECT's resolution has softer edges than at FDG PET's
    fdg, spect = by_name["fdg"], by_name["spect-perfusion"]
    sharp = roughness(replace(fdg, counts=1e7))
    assert roughness(replace(fdg, counts=1e7, fwhm_mm=spect.fwhm_mm)) < 0.8 * sharp


@pytest.mark.parametrize("contrast", [4.0, 0.2])
def test_hot_lesions_rise_and_cold_lesions_fall_against_the_same_scan(mri: np.ndarray, contrast: float) -> None:
    shares = tissues(mri)
    pattern = PATTERNS[1]  # diffuse: the lesion is the only focal change
    centre = (20, 24, 30)
    plain = scan(pattern, shares, SPACING, None, seed=3)
    lesioned = scan(pattern, shares, SPACING, Lesion(centre, 6.0, contrast), seed=3)
    core = tuple(slice(c - 1, c + 2) for c in centre)
    ratio = lesioned[core].mean() / plain[core].mean()
    assert (ratio > 1.8) if contrast > 1 else (ratio < 0.5)
    assert Lesion(centre, 6.0, contrast).kind == ("hot" if contrast > 1 else "cold")
