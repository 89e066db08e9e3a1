"""Multi-modal image fusion (MMIF) quality metrics.

The metrics follow the evaluator used for the published CDDFuse tables
(Zhao et al., CVPR 2023, ``utils/Evaluator.py`` of MMIF-CDDFuse), so numbers
are comparable with those tables.

Conventions
-----------
* Images are grey, shape ``(H, W)``, on the 0..255 scale; computations are
  done in float64.
* :func:`fusion_metrics` takes images in [0, 1] and quantises them to 8 bits
  (``np.round`` then clip to 0..255), as the reference does by saving the fused
  image as PNG and reading every image back as rounded grey levels.  The
  per-metric functions expect such 8-bit-valued images.
* EN: Shannon entropy (bits) of the 256-bin grey-level histogram.
* SD: ``np.std``.  SF: spatial frequency.  AG: average gradient from central
  differences (one-sided at the border).
* MI: ``sklearn.metrics.mutual_info_score`` (nats) of fused vs A plus fused
  vs B, grey levels used as labels.
* SCD: sum of the correlations of differences, corr(A, F - B) + corr(B, F - A).
* VIF: four-scale VIFF (``Evaluator.compare_viff``) of A vs F plus B vs F.
* Qabf: Xydeas-Petrovic edge preservation with Sobel operators.
* SSIM: ``skimage.metrics.structural_similarity(F, X, data_range=2)`` summed
  over both inputs; ``data_range=2`` is what older scikit-image used for float
  input, i.e. what the tables report.

scikit-image and scikit-learn are optional (``pip install "amif-core[eval]"``)
and are imported only by :func:`ssim` and :func:`mi`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.signal import convolve2d

__all__ = [
    "METRIC_NAMES",
    "ag",
    "en",
    "fusion_metrics",
    "mi",
    "qabf",
    "scd",
    "sd",
    "sf",
    "ssim",
    "vif",
]

METRIC_NAMES: tuple[str, ...] = ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM", "AG")

FloatImage = NDArray[np.float64]

# Smallest side for which all four VIFF scales have a non-empty "valid" output.
VIF_MIN_SIDE = 41
# structural_similarity's default 7x7 window.
SSIM_MIN_SIDE = 7

# VIFF constants (Evaluator.compare_viff).
_VIF_SIGMA_NSQ = 2.0
_VIF_EPS = 1e-10

# Qabf constants (Evaluator.Qabf_getQabf).
_Q_TG, _Q_KG, _Q_DG = 0.9994, -15.0, 0.5
_Q_TA, _Q_KA, _Q_DA = 0.9879, -22.0, 0.8
_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_SOBEL_Y = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])


def _gaussian_window(size: int) -> FloatImage:
    """MATLAB ``fspecial('gaussian', size, size / 5)`` as used by VIFF."""
    radius = (size - 1) / 2.0
    sigma = size / 5.0
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    h = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0.0
    return h / h.sum()


# Scales 1..4 use windows of side 2**(5 - scale) + 1 = 17, 9, 5, 3.
_VIF_WINDOWS: tuple[FloatImage, ...] = tuple(_gaussian_window(2 ** (5 - s) + 1) for s in range(1, 5))


def _optional(module: str) -> ModuleType:
    """Import an optional evaluation dependency or explain how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f'{module} is needed for this metric; install it with: pip install "amif-core[eval]"'
        ) from exc


def _image(x: ArrayLike, name: str, min_side: int = 2) -> FloatImage:
    """Validate one grey image of shape (H, W) and return it as float64."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D grey image of shape (H, W), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must have a real numeric dtype, got {arr.dtype}")
    if min(arr.shape) < min_side:
        raise ValueError(f"{name} must be at least {min_side}x{min_side} pixels, got shape {arr.shape}")
    out = arr.astype(np.float64)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return out


def _triplet(
    f: ArrayLike, a: ArrayLike, b: ArrayLike, min_side: int = 2
) -> tuple[FloatImage, FloatImage, FloatImage]:
    """Validate a fused image and its two sources (same shape (H, W))."""
    fa = _image(f, "fused image", min_side)
    aa = _image(a, "source A", min_side)
    ba = _image(b, "source B", min_side)
    if not fa.shape == aa.shape == ba.shape:
        raise ValueError(
            f"fused image and sources must have the same shape, got {fa.shape}, {aa.shape} and {ba.shape}"
        )
    return fa, aa, ba


def en(f: ArrayLike) -> float:
    """Entropy in bits of the 256-bin histogram of the grey levels.

    Args:
        f: fused image, shape (H, W), real dtype, values on 0..255 (rounded to
            integer levels for binning).

    Returns:
        Entropy in [0, 8] bits.
    """
    img = _image(f, "fused image", min_side=1)
    levels = np.clip(np.round(img), 0, 255).astype(np.intp).ravel()
    p = np.bincount(levels, minlength=256) / levels.size
    p = p[p > 0]
    return float(-np.sum(p * np.log2(p)))


def sd(f: ArrayLike) -> float:
    """Standard deviation of the grey levels (``np.std``, population form).

    Args:
        f: fused image, shape (H, W), real dtype, values on 0..255.
    """
    return float(np.std(_image(f, "fused image", min_side=1)))


def sf(f: ArrayLike) -> float:
    """Spatial frequency ``sqrt(mean(dx**2) + mean(dy**2))`` of forward differences.

    Args:
        f: fused image, shape (H, W) with H, W >= 2, real dtype, values on 0..255.
    """
    img = _image(f, "fused image")
    return float(np.sqrt(np.mean(np.diff(img, axis=1) ** 2) + np.mean(np.diff(img, axis=0) ** 2)))


def ag(f: ArrayLike) -> float:
    """Average gradient ``mean(sqrt((Gx**2 + Gy**2) / 2))``.

    Gradients are central differences inside the image and one-sided at the
    border (``np.gradient``), as in the reference.

    Args:
        f: fused image, shape (H, W) with H, W >= 2, real dtype, values on 0..255.
    """
    gy, gx = np.gradient(_image(f, "fused image"))
    return float(np.mean(np.sqrt((gx * gx + gy * gy) / 2.0)))


def mi(f: ArrayLike, a: ArrayLike, b: ArrayLike) -> float:
    """Mutual information (nats) of F with A plus F with B.

    Grey levels are used as labels of ``sklearn.metrics.mutual_info_score``,
    so the images should hold 8-bit levels (see :func:`fusion_metrics`).

    Args:
        f, a, b: fused image and sources, shape (H, W), real dtype, values on 0..255.
    """
    fa, aa, ba = _triplet(f, a, b)
    score = _optional("sklearn.metrics").mutual_info_score
    fl = fa.ravel()
    return float(score(fl, aa.ravel()) + score(fl, ba.ravel()))


def _corr(x: FloatImage, y: FloatImage) -> float:
    """Pearson correlation of two images; NaN if either is constant."""
    xc = x - x.mean()
    yc = y - y.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum(xc * yc) / np.sqrt(np.sum(xc * xc) * np.sum(yc * yc)))


def scd(f: ArrayLike, a: ArrayLike, b: ArrayLike) -> float:
    """Sum of the correlations of differences, corr(A, F - B) + corr(B, F - A).

    As in the reference, the result is NaN when a source or a difference image
    is constant (0/0 correlation).

    Args:
        f, a, b: fused image and sources, shape (H, W), real dtype, values on 0..255.

    Returns:
        A value in [-2, 2] (or NaN).
    """
    fa, aa, ba = _triplet(f, a, b)
    return _corr(aa, fa - ba) + _corr(ba, fa - aa)


def _viff(ref: FloatImage, dist: FloatImage) -> float:
    """Four-scale VIFF of ``dist`` against ``ref`` (``Evaluator.compare_viff``)."""
    eps = _VIF_EPS
    num = den = 0.0
    for scale, win in enumerate(_VIF_WINDOWS):
        # The windows are symmetric, so this convolution is also a correlation.
        if scale > 0:
            ref = convolve2d(ref, win, mode="valid")[::2, ::2]
            dist = convolve2d(dist, win, mode="valid")[::2, ::2]
        mu1 = convolve2d(ref, win, mode="valid")
        mu2 = convolve2d(dist, win, mode="valid")
        s1 = np.maximum(convolve2d(ref * ref, win, mode="valid") - mu1 * mu1, 0.0)
        s2 = np.maximum(convolve2d(dist * dist, win, mode="valid") - mu2 * mu2, 0.0)
        s12 = convolve2d(ref * dist, win, mode="valid") - mu1 * mu2

        flat_ref = s1 < eps
        g = np.where(flat_ref, 0.0, s12 / (s1 + eps))
        sv = np.where(flat_ref, s2, s2 - g * s12)
        s1 = np.where(flat_ref, 0.0, s1)
        flat_dist = s2 < eps
        g = np.where(flat_dist, 0.0, g)
        sv = np.where(flat_dist, 0.0, sv)
        sv = np.where(g < 0, s2, sv)
        g = np.maximum(g, 0.0)
        sv = np.maximum(sv, eps)

        num += float(np.sum(np.log10(1.0 + g * g * s1 / (sv + _VIF_SIGMA_NSQ))))
        den += float(np.sum(np.log10(1.0 + s1 / _VIF_SIGMA_NSQ)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.float64(num) / np.float64(den)
    # Reference convention: a constant reference (0/0) scores 1.
    return 1.0 if np.isnan(ratio) else float(ratio)


def vif(f: ArrayLike, a: ArrayLike, b: ArrayLike) -> float:
    """Visual information fidelity (multi-scale VIFF) of F w.r.t. A plus w.r.t. B.

    Each term is 1 when F equals the source, and also 1 for a constant source
    (the reference maps its 0/0 to 1).

    Args:
        f, a, b: fused image and sources, shape (H, W) with H, W >= 41,
            real dtype, values on 0..255.
    """
    fa, aa, ba = _triplet(f, a, b, min_side=VIF_MIN_SIDE)
    return _viff(aa, fa) + _viff(ba, fa)


def _sobel(img: FloatImage) -> tuple[FloatImage, FloatImage]:
    """Sobel edge strength and orientation (zero padding, ``same`` size)."""
    gx = convolve2d(img, _SOBEL_X, mode="same")
    gy = convolve2d(img, _SOBEL_Y, mode="same")
    strength = np.sqrt(gx * gx + gy * gy)
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.where(gx == 0, np.pi / 2, np.arctan(gy / gx))
    return strength, angle


def _edge_preservation(g_src: FloatImage, a_src: FloatImage, g_f: FloatImage, a_f: FloatImage) -> FloatImage:
    """Per-pixel edge preservation Q^{XF} = Q_g * Q_a of the reference."""
    with np.errstate(divide="ignore", invalid="ignore"):
        # Where strengths are equal the reference uses g_f itself, not 1.
        rel_strength = np.where(g_src > g_f, g_f / g_src, np.where(g_src < g_f, g_src / g_f, g_f))
    rel_angle = 1.0 - np.abs(a_src - a_f) / (np.pi / 2)
    q_g = _Q_TG / (1.0 + np.exp(_Q_KG * (rel_strength - _Q_DG)))
    q_a = _Q_TA / (1.0 + np.exp(_Q_KA * (rel_angle - _Q_DA)))
    return q_g * q_a


def qabf(f: ArrayLike, a: ArrayLike, b: ArrayLike) -> float:
    """Xydeas-Petrovic gradient-based fusion quality Q^{AB/F}.

    ``sum(Q^AF * g_A + Q^BF * g_B) / sum(g_A + g_B)`` with Sobel strengths g
    and the reference constants (Tg=0.9994, kg=-15, Dg=0.5, Ta=0.9879,
    ka=-22, Da=0.8).  NaN when both sources have no edges at all.

    Args:
        f, a, b: fused image and sources, shape (H, W), real dtype, values on 0..255.

    Returns:
        A value in [0, Tg * Ta) (or NaN).
    """
    fa, aa, ba = _triplet(f, a, b)
    g_a, ang_a = _sobel(aa)
    g_b, ang_b = _sobel(ba)
    g_f, ang_f = _sobel(fa)
    q_af = _edge_preservation(g_a, ang_a, g_f, ang_f)
    q_bf = _edge_preservation(g_b, ang_b, g_f, ang_f)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum(q_af * g_a + q_bf * g_b) / np.sum(g_a + g_b))


def ssim(f: ArrayLike, a: ArrayLike, b: ArrayLike) -> float:
    """SSIM(F, A) + SSIM(F, B) with ``structural_similarity(..., data_range=2)``.

    Args:
        f, a, b: fused image and sources, shape (H, W) with H, W >= 7,
            real dtype, values on 0..255.

    Returns:
        A value in [-2, 2]; 2 when F equals both sources.
    """
    fa, aa, ba = _triplet(f, a, b, min_side=SSIM_MIN_SIDE)
    structural_similarity = _optional("skimage.metrics").structural_similarity
    return float(structural_similarity(fa, aa, data_range=2) + structural_similarity(fa, ba, data_range=2))


def _to_8bit(x: ArrayLike, name: str) -> FloatImage:
    """Map a [0, 1] float image of shape (H, W) to rounded 0..255 levels."""
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must be a float image in [0, 1], got dtype {arr.dtype}")
    img = _image(arr, name, min_side=VIF_MIN_SIDE)
    return np.clip(np.round(img * 255.0), 0.0, 255.0)


_FUSED_METRICS: dict[str, Callable[[FloatImage], float]] = {"EN": en, "SD": sd, "SF": sf, "AG": ag}
_PAIR_METRICS: dict[str, Callable[[FloatImage, FloatImage, FloatImage], float]] = {
    "MI": mi,
    "SCD": scd,
    "VIF": vif,
    "Qabf": qabf,
    "SSIM": ssim,
}


def fusion_metrics(fused: ArrayLike, a: ArrayLike, b: ArrayLike) -> dict[str, float]:
    """All nine metrics of a fused image against its two sources.

    Args:
        fused: fused image, shape (H, W) with H, W >= 41, any float dtype,
            values in [0, 1].
        a, b: source images, same shape and convention as ``fused``.

    Every image is scaled to 0..255 and quantised to 8 bits (``np.round``,
    then clip to 0..255) before any metric, matching the reference pipeline.

    Returns:
        ``{name: value}`` for every name of :data:`METRIC_NAMES`, in that order.

    Raises:
        ValueError: wrong dimensionality, non-float dtype, too small, mismatched
            shapes or non-finite values.
        ImportError: scikit-image / scikit-learn missing.
    """
    f8 = _to_8bit(fused, "fused image")
    a8 = _to_8bit(a, "source A")
    b8 = _to_8bit(b, "source B")
    if not f8.shape == a8.shape == b8.shape:
        raise ValueError(
            f"fused image and sources must have the same shape, got {f8.shape}, {a8.shape} and {b8.shape}"
        )
    values = {name: fn(f8) for name, fn in _FUSED_METRICS.items()}
    values.update({name: fn(f8, a8, b8) for name, fn in _PAIR_METRICS.items()})
    return {name: values[name] for name in METRIC_NAMES}
