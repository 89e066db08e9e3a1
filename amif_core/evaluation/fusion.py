"""Evaluation on the Harvard pairs: fusion metrics per pair and the protection criteria.

For every slice of the chosen split the two PNGs are protected exactly as a
user's 2D slices would be (``model.protect`` normalises them), the protected
image is unlocked, and the nine fusion metrics are computed for the unlocked
and protected images and for the pixel-wise max and mean of the normalised
sources. Sources are the normalised inputs on the 0..255 scale, so fused and
sources share one scale. CDDFuse's published MIF numbers are shown as a
reference row.

The protection criteria are measured on every slice against ``fuse_clean``,
in grey and, for MRI-PET and MRI-SPECT, also in colour: the same slices
fused with the Harvard pseudo-colour RGB as it is (the identifier's contrast
measured on luma, unlock and wrong keys on every channel).
A wrong key must unlock to nothing closer to ``f`` inside the mask than a
plain inpainting of the strokes from their surroundings (:func:`surround_fill`).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from amif_core.data.harvard import PAIRS, read_pair, read_records, read_rgb, source_paths, split_records
from amif_core.evaluation.attacks.wrong_keys import SAME_SHAPE_KINDS, wrong_key
from amif_core.evaluation.metrics import fusion_metrics
from amif_core.evaluation.psnr import channel_psnr, psnr
from amif_core.inference.model import AMIFModel
from amif_core.key.core import Key
from amif_core.key.storage import from_stored, levels_for, to_stored
from amif_core.transforms.colour import slice_luma
from amif_core.transforms.intensity import fit_normalisation

TABLE_METRICS = ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM")

CDDFUSE_MIF: dict[str, dict[str, float]] = {
    "CT-MRI": dict(zip(TABLE_METRICS, (4.88, 79.17, 38.14, 2.61, 1.41, 0.61, 0.68, 1.34))),
    "PET-MRI": dict(zip(TABLE_METRICS, (4.22, 70.73, 29.57, 2.03, 1.69, 0.71, 0.71, 1.49))),
    "SPECT-MRI": dict(zip(TABLE_METRICS, (3.90, 58.31, 20.87, 2.49, 1.35, 0.97, 0.78, 1.48))),
}

COLOUR_PAIRS = ("PET-MRI", "SPECT-MRI")
DARK, BRIGHT = 0.25, 0.5
FILL_SIGMA = 3.0
MARK_PSNR_BAR = 46.0


def surround_fill(image: np.ndarray, mask: np.ndarray, sigma: float = FILL_SIGMA) -> np.ndarray:
    """Inpaint the strokes of an (H, W) [0, 1] image with a Gaussian-weighted mean of the uncovered pixels.

    A normalised convolution (``sigma`` pixels) of the image outside ``mask``
    (non-zero = stroke); float32 (H, W), equal to ``image`` outside the mask.
    An (H, W, 3) RGB image is filled channel by channel.
    """
    if np.ndim(image) == 3:
        return np.stack([surround_fill(image[..., c], mask, sigma) for c in range(image.shape[-1])], axis=-1)
    uncovered = (np.asarray(mask) == 0).astype(np.float64)
    total = ndimage.gaussian_filter(np.asarray(image, np.float64) * uncovered, sigma)
    weight = ndimage.gaussian_filter(uncovered, sigma)
    return np.where(uncovered > 0, image, total / np.maximum(weight, 1e-6)).astype(np.float32)


def protection_figures(model: AMIFModel, mri: np.ndarray, other: np.ndarray, other_key: Key | None,
                       rng: np.random.Generator) -> tuple[dict[str, float], dict[str, np.ndarray], Key]:
    """Protect one (H, W) pair and measure every protection criterion.

    ``other``: (H, W) grey, or (H, W, 3) uint8 RGB for a colour fusion (then
    PSNRs are each channel's lowest and the identifier's contrast is
    measured on luma). Returns (figures, images, key): figures hold
    unlock_psnr, unlock_psnr_16bit (from the protected image rounded to 16
    bits), unlock_psnr_stored (protected again for integer storage, as the
    volume pipeline stores it: 16-bit grey or 8-bit RGB, see
    :mod:`amif_core.key.storage`; unlocked from those integers),
    mask_coverage, mask_mean_abs, dark_mean_abs, bright_mean_abs (NaN
    when the mask has fewer than 50 such pixels), outside_psnr, mask_psnr_p,
    mask_psnr_fill (of :func:`surround_fill`), mark_psnr (the released fusion against the network's unmarked
    one: what the trace mark costs) and mask_psnr_<kind> for each wrong key; images hold clean, unmarked,
    protected, unlocked, mask.
    """
    clean = model.fuse_clean(mri, other)
    unmarked = model.fuse_clean(mri, other, owner=None)
    protected = model.protect(mri, other)
    unlocked = model.unlock(protected.image, protected.key)
    rounded = (np.rint(protected.image * 65535) / 65535).astype(np.float32)
    mask = model.identifier_mask(protected.key)
    colour = protected.image.ndim == 3
    levels = levels_for(colour)
    stored = model.protect(mri, other, levels=levels)
    from_integers = from_stored(to_stored(stored.image, levels), levels)
    clean_luma = slice_luma(clean)
    gap = np.abs(slice_luma(protected.image) - clean_luma)
    dark, bright = (mask > 0) & (clean_luma < DARK), (mask > 0) & (clean_luma >= BRIGHT)
    figures = {
        "unlock_psnr": channel_psnr(unlocked, clean),
        "unlock_psnr_16bit": channel_psnr(model.unlock(rounded, protected.key, verify=False), clean),
        "unlock_psnr_stored": channel_psnr(model.unlock(from_integers, stored.key), clean),
        "mask_coverage": float(mask.mean()),
        "mask_mean_abs": float(gap[mask > 0].mean()),
        "dark_mean_abs": float(gap[dark].mean()) if dark.sum() >= 50 else float("nan"),
        "bright_mean_abs": float(gap[bright].mean()) if bright.sum() >= 50 else float("nan"),
        "outside_psnr": channel_psnr(protected.image, clean, 1 - mask),
        "mask_psnr_p": psnr(protected.image, clean, mask),
        "mask_psnr_fill": psnr(surround_fill(protected.image, mask), clean, mask),
        "mark_psnr": channel_psnr(clean, unmarked),
    }
    for kind in SAME_SHAPE_KINDS:
        if kind == "other_slice" and other_key is None:
            continue
        forced = model.unlock(protected.image, wrong_key(protected.key, kind, other_key, rng), verify=False)
        figures[f"mask_psnr_{kind}"] = psnr(forced, clean, mask)
    images = {"clean": clean, "unmarked": unmarked, "protected": protected.image, "unlocked": unlocked, "mask": mask}
    return figures, images, protected.key


def evaluate(model: AMIFModel, data: Path, split: str = "val", limit: int | None = None, seed: int = 0,
             quiet: bool = False) -> dict:
    """Run the evaluation; returns {"metrics": {pair: {row: {metric: mean}}}, "protection": {...},
    "protection_colour": {...}} (the colour criteria: MRI-PET and MRI-SPECT fused in colour).

    ``limit`` caps the slices per pair (for quick checks).
    """
    rng = np.random.default_rng(seed)
    records = split_records(read_records(data), split)
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    protection: dict[str, list[dict[str, float]]] = defaultdict(list)
    protection_colour: dict[str, list[dict[str, float]]] = defaultdict(list)
    for pair in PAIRS:
        chosen = [r for r in records if r.pair == pair][:limit]
        sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        previous_key: Key | None = None
        previous_colour_key: Key | None = None
        for record in tqdm(chosen, desc=f"evaluate/{pair}", disable=quiet, dynamic_ncols=True):
            mri, other = read_pair(data, record)
            a, b = fit_normalisation(mri).apply(mri), fit_normalisation(other).apply(other)
            figures, images, key = protection_figures(model, mri, other, previous_key, rng)
            previous_key = key
            protection[pair].append(figures)
            if pair in COLOUR_PAIRS:
                rgb = read_rgb(source_paths(data, record)[1])
                colour_figures, _, previous_colour_key = protection_figures(model, mri, rgb, previous_colour_key, rng)
                protection_colour[pair].append(colour_figures)
            rows = {"unlocked": images["unlocked"], "unmarked network": images["unmarked"],
                    "protected": images["protected"],
                    "pixel-max": np.maximum(a, b), "pixel-mean": (a + b) / 2}
            for row, fused in rows.items():
                for name, value in fusion_metrics(fused, a, b).items():
                    sums[row][name].append(value)
        metrics[pair] = {row: {k: float(np.nanmean(v)) for k, v in values.items()} for row, values in sums.items()}
        metrics[pair]["CDDFuse (published)"] = dict(CDDFUSE_MIF[pair])
    result = {"metrics": metrics, "protection": summarise_protection(protection), "split": split}
    if protection_colour:
        result["protection_colour"] = summarise_protection(protection_colour)
    return result


def summarise_protection(per_pair: dict[str, list[dict[str, float]]]) -> dict:
    """Worst-case figures and pass counts of the protection criteria over all slices."""
    rows = [f for figures in per_pair.values() for f in figures]
    def worst(key: str, fn=np.nanmin) -> float:
        return float(fn([r[key] for r in rows if key in r]))
    wrong_margin = [max(r[f"mask_psnr_{k}"] - r["mask_psnr_fill"] for k in SAME_SHAPE_KINDS if f"mask_psnr_{k}" in r)
                    for r in rows]
    passes = [
        r["unlock_psnr"] >= 50 and r["unlock_psnr_16bit"] >= 50 and r["unlock_psnr_stored"] >= 50
        and 0.08 <= r["mask_coverage"] <= 0.25 and r["mask_mean_abs"] >= 0.25
        and not (r["dark_mean_abs"] < 0.25) and not (r["bright_mean_abs"] < 0.25) and r["outside_psnr"] >= 35
        and margin <= 0.0 and r["mark_psnr"] >= MARK_PSNR_BAR
        for r, margin in zip(rows, wrong_margin)
    ]
    return {
        "slices": len(rows),
        "slices_passing_all": int(sum(passes)),
        "min_unlock_psnr": worst("unlock_psnr"),
        "min_unlock_psnr_16bit": worst("unlock_psnr_16bit"),
        "min_unlock_psnr_stored": worst("unlock_psnr_stored"),
        "coverage_range": [worst("mask_coverage"), worst("mask_coverage", np.nanmax)],
        "min_mask_mean_abs": worst("mask_mean_abs"),
        "min_dark_mean_abs": worst("dark_mean_abs"),
        "min_bright_mean_abs": worst("bright_mean_abs"),
        "min_outside_psnr": worst("outside_psnr"),
        "min_mark_psnr": worst("mark_psnr"),
        "max_wrong_key_margin_db": float(max(wrong_margin)),
        "max_mask_psnr_by_wrong_key": {k: worst(f"mask_psnr_{k}", np.nanmax) for k in SAME_SHAPE_KINDS},
    }


def format_report(result: dict) -> str:
    """Human-readable tables of :func:`evaluate`'s result (Markdown)."""
    lines = []
    for pair, rows in result["metrics"].items():
        lines += [f"\n### {pair} ({result['split']})\n", "| row | " + " | ".join(TABLE_METRICS) + " | AG |",
                  "|---" * (len(TABLE_METRICS) + 2) + "|"]
        for row, values in rows.items():
            cells = [f"{values[m]:.2f}" if m in values else "-" for m in (*TABLE_METRICS, "AG")]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        ours = rows["unlocked"]
        for ref in ("CDDFuse (published)", "pixel-max"):
            wins = sum(ours[m] > rows[ref][m] for m in TABLE_METRICS)
            lines.append(f"\nunlocked beats {ref} on {wins}/8 metrics")
        plain = rows["unmarked network"]
        gap = max(abs(ours[m] - plain[m]) / abs(plain[m]) for m in TABLE_METRICS if plain[m])
        lines.append(f"\nthe trace mark moves the 8 metrics by at most {100 * gap:.2f}% (unlocked vs unmarked network)")
    for title, name in (("Protection criteria (every slice)", "protection"),
                        ("Protection criteria in colour (every MRI-PET and MRI-SPECT slice, RGB; contrast on luma)",
                         "protection_colour")):
        if name in result:
            lines += _protection_table(title, result[name])
    return "\n".join(lines)


def _protection_table(title: str, p: dict) -> list[str]:
    return [f"\n### {title}\n", "| criterion | bar | measured (worst slice) |", "|---|---|---|",
            f"| unlock vs fuse_clean PSNR | >= 50 dB | {p['min_unlock_psnr']:.1f} dB |",
            f"| unlock from p rounded to 16 bits | >= 50 dB | {p['min_unlock_psnr_16bit']:.1f} dB |",
            f"| unlock from the stored integers (16-bit grey, 8-bit RGB) | >= 50 dB | "
            f"{p['min_unlock_psnr_stored']:.1f} dB |",
            f"| mask coverage | 8-25% | {100 * p['coverage_range'][0]:.1f}-{100 * p['coverage_range'][1]:.1f}% |",
            f"| mean abs(p - f) in mask | >= 0.25 | {p['min_mask_mean_abs']:.3f} |",
            f"| ... on dark background (f < {DARK}) | >= 0.25 | {p['min_dark_mean_abs']:.3f} |",
            f"| ... on bright tissue (f >= {BRIGHT}) | >= 0.25 | {p['min_bright_mean_abs']:.3f} |",
            f"| PSNR(p, f) outside mask | >= 35 dB | {p['min_outside_psnr']:.1f} dB |",
            f"| wrong-key PSNR in mask minus inpainting's (surround fill) | <= 0 dB | "
            f"{p['max_wrong_key_margin_db']:+.1f} dB |",
            f"| trace mark: PSNR(released fusion, unmarked fusion) | >= {MARK_PSNR_BAR:g} dB | "
            f"{p['min_mark_psnr']:.1f} dB |",
            f"\n{p['slices_passing_all']}/{p['slices']} slices pass every criterion."]
