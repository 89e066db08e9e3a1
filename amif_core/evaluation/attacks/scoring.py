"""How close an attack gets to the clean fusion, and whether it stays far enough from the key's result.

Every image is scored against the clean fusion ``f`` (``model.fuse_clean``):

* PSNR (peak 1) and SSIM (``skimage.metrics.structural_similarity``, 7x7
  window, data range 1; the mean of its SSIM map) inside the identifier mask
  and over the whole image. For an RGB image PSNR runs over all three
  channels, and SSIM and the fusion metrics on the BT.601 luma. PSNR is capped at :data:`PSNR_CAP` dB per slice,
  so an exact recovery (infinite PSNR) averages to a finite number;
* the 8 fusion metrics of :data:`amif_core.evaluation.fusion.TABLE_METRICS` of the
  whole image against the normalised sources, as ``amif evaluate`` reports them.

Two bars. Every attack's mean in-mask PSNR stays at least :data:`BAR_DB`
below the authorized unlock's (both capped at :data:`PSNR_CAP`). And, since
the released image is built to carry nothing under the strokes, no attack
does better there than plain inpainting (:func:`inpainting_bars`).
"""
from __future__ import annotations

import numpy as np

from amif_core.evaluation.attacks import require
from amif_core.evaluation.fusion import TABLE_METRICS, psnr
from amif_core.evaluation.metrics import fusion_metrics
from amif_core.transforms.colour import slice_luma

skimage_metrics = require("skimage.metrics")

PSNR_CAP = 100.0
BAR_DB = 15.0
REFERENCE = "unlocked"
REFERENCE_ROWS = ("protected", "unlocked")
FIGURES = ("psnr_mask", "ssim_mask", "psnr_whole", "ssim_whole", *TABLE_METRICS)


def capped_psnr(image: np.ndarray, clean: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of two (H, W) [0, 1] images (over ``mask`` > 0 if given), capped at :data:`PSNR_CAP`."""
    return min(psnr(image, clean, mask), PSNR_CAP)


def ssim_map(image: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two (H, W) [0, 1] images (7x7 window, data range 1); float64 (H, W)."""
    _, full = skimage_metrics.structural_similarity(np.asarray(image, np.float64), np.asarray(clean, np.float64),
                                                    data_range=1.0, full=True)
    return full


def score(image: np.ndarray, clean: np.ndarray, mask: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Every figure of :data:`FIGURES` for one attacked (H, W) grey or (H, W, 3) RGB image.

    ``image``, ``clean``: float in [0, 1], of one shape; ``mask``: (H, W), the
    true identifier mask (non-zero = stroke); ``a``, ``b``: the normalised MRI
    and second scan's luma, (H, W) in [0, 1].
    """
    inside = np.asarray(mask) > 0
    grey = slice_luma(image)
    similarity = ssim_map(grey, slice_luma(clean))
    figures = {
        "psnr_mask": capped_psnr(image, clean, inside),
        "ssim_mask": float(similarity[inside].mean()),
        "psnr_whole": capped_psnr(image, clean),
        "ssim_whole": float(similarity.mean()),
    }
    metrics = fusion_metrics(np.asarray(grey, np.float32), a, b)
    figures.update({name: metrics[name] for name in TABLE_METRICS})
    return figures


def summarise(per_slice: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean of each figure per attack over the slices where the attack ran (NaNs ignored).

    ``per_slice``: one ``{attack: {figure: value}}`` per slice.
    """
    attacks = list(dict.fromkeys(name for row in per_slice for name in row))
    return {name: {figure: float(np.nanmean([row[name][figure] for row in per_slice if name in row]))
                   for figure in FIGURES}
            for name in attacks}


def gaps(per_slice: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float | bool]]:
    """In-mask PSNR gap of every attack to the authorized unlock (:data:`REFERENCE`).

    Returns ``{attack: {"mean_gap_db", "worst_slice_gap_db", "meets_bar"}}``:
    the difference of the mean in-mask PSNRs, the smallest per-slice difference,
    and whether the mean gap is at least :data:`BAR_DB`.
    """
    summary = summarise(per_slice)
    out: dict[str, dict[str, float | bool]] = {}
    for name in summary:
        if name == REFERENCE:
            continue
        per = [row[REFERENCE]["psnr_mask"] - row[name]["psnr_mask"] for row in per_slice if name in row]
        mean_gap = summary[REFERENCE]["psnr_mask"] - summary[name]["psnr_mask"]
        out[name] = {"mean_gap_db": mean_gap, "worst_slice_gap_db": float(np.nanmin(per)),
                     "meets_bar": bool(mean_gap >= BAR_DB)}
    return out


INPAINTING_ROWS = ("telea_true", "ns_true", "biharmonic_true")
MARGIN_DB = 1.0
SOLVE_ROW, TELEA_ROW, BLANK_ROW = "white_box_solve", "telea_true", "blank_unet"
KEY_ONLY_CONTROLS = {"key_only_flow": "random_flow", "key_only_unet": "random_unet"}
UNJUDGED_ROWS = (*REFERENCE_ROWS, *INPAINTING_ROWS, BLANK_ROW, *KEY_ONLY_CONTROLS.values())  # no bar of their own
WRONG_KEY_PREFIX = "key_"


def _bar(value: float, limit: float) -> dict[str, float | bool]:
    return {"psnr_db": value, "limit_db": limit, "meets": bool(value <= limit)}


def inpainting_bars(per_slice: list[dict[str, dict[str, float]]]) -> dict:
    """Each attack's in-mask PSNR against what inpainting alone achieves.

    - the white-box forward solve: its median over the slices it ran on, at
      most :data:`MARGIN_DB` above Telea's median on the same slices;
    - the key-only attacks: mean at most their control's (the same attack on
      random codes of the same support, which carry nothing of the image) plus
      :data:`MARGIN_DB`, the spread that training and sampling alone give;
    - wrong keys (rows ``key_*``): mean at most the best true-mask inpainting's;
    - every other attack: mean at most the best true-mask inpainting's plus :data:`MARGIN_DB`.

    Returns ``{"rows": {row: {"psnr_db", "limit_db", "meets"}}, "best_inpainting":
    {"row", "psnr_db"}}``.
    """
    summary = summarise(per_slice)
    best = max((r for r in INPAINTING_ROWS if r in summary), key=lambda r: summary[r]["psnr_mask"])
    best_db = summary[best]["psnr_mask"]
    bars: dict[str, dict[str, float | bool]] = {}
    solved = [row for row in per_slice if SOLVE_ROW in row]
    if solved:
        telea = float(np.median([row[TELEA_ROW]["psnr_mask"] for row in solved]))
        bars[SOLVE_ROW] = _bar(float(np.median([row[SOLVE_ROW]["psnr_mask"] for row in solved])), telea + MARGIN_DB)
    for name in summary:
        if name in UNJUDGED_ROWS or name == SOLVE_ROW:
            continue
        value = summary[name]["psnr_mask"]
        if name in KEY_ONLY_CONTROLS:
            if KEY_ONLY_CONTROLS[name] in summary:
                bars[name] = _bar(value, summary[KEY_ONLY_CONTROLS[name]]["psnr_mask"] + MARGIN_DB)
        elif name.startswith(WRONG_KEY_PREFIX):
            bars[name] = _bar(value, best_db)
        else:
            bars[name] = _bar(value, best_db + MARGIN_DB)
    return {"rows": bars, "best_inpainting": {"row": best, "psnr_db": best_db}}
