#!/usr/bin/env python3
"""Score simple variants of the shipped fusion against the quality bar, on the training patients.

The fusion's quality bars count the 8 table metrics above CDDFuse's published
row and above the pixel-wise max, for every pair, with floors on MI, VIF and
SSIM relative to the max's (docs/training.md says which bar asked for what).
This script shows how far simple changes of the network's output move the
metrics, so that a change can be judged without looking at the validation
patients.

Every variant is built from the normalised sources a, b, their pixel-wise
maximum m and the network's residual r = fuse_clean - m (all (H, W) float32 in
[0, 1]; variants are clipped to [0, 1]):

* ``net``: m + r, the shipped fusion; ``max``: m;
* ``gain G``: m + G * r (a weaker residual);
* ``soft T``: m + shrink(r, T), residuals shrunk towards 0 by T;
* ``hard T``: m + r where |r| > T, else m;
* ``max+B*min``: m + B * min(a, b), a pixel rule that keeps the weaker source
  (the ``select`` fusion head with a constant alpha = B and no edge transfer);
* ``2-scale S``: blur(m) + the larger-magnitude detail of a and b, with
  ``blur`` a Gaussian of S pixels and ``detail(x) = x - blur(x)`` (the classic
  two-scale fusion rule: a source's edges kept where the maximum drops them);
* ``+K*detail S``: m + 0.05 * min(a, b) + K * detail(m) at S pixels, the
  select rule sharpened (what raises SF, and what it costs in MI and VIF).

For each pair it prints the mean of each table metric, the count of metrics
above CDDFuse's row and above ``max``, and MI, VIF and SSIM over ``max``'s
(the fidelity bar: >= 0.85x, 0.95x, 0.98x).

Usage::

    python benchmarks/fusion_variants.py --data ../shared/data/harvard            # every 4th training slice
    python benchmarks/fusion_variants.py --data ../shared/data/harvard --every 1  # all of them (slow)
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # score this checkout, installed or not

from amif_core import AMIFModel, load_model  # noqa: E402
from amif_core.data.harvard import PAIRS, read_pair, read_records, split_records  # noqa: E402
from amif_core.evaluation.fusion import CDDFUSE_MIF, TABLE_METRICS  # noqa: E402
from amif_core.evaluation.metrics import fusion_metrics  # noqa: E402
from amif_core.transforms.colour import larger_magnitude, two_scales  # noqa: E402
from amif_core.transforms.intensity import fit_normalisation  # noqa: E402

Variant = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def variants() -> dict[str, Variant]:
    """The scored variants, as functions of (m, r, a, b) -> fused image (unclipped)."""
    table: dict[str, Variant] = {"net": lambda m, r, a, b: m + r, "max": lambda m, r, a, b: m}
    for gain in (0.2, 0.5):
        table[f"gain {gain}"] = lambda m, r, a, b, g=gain: m + g * r
    table["soft 0.02"] = lambda m, r, a, b: m + np.sign(r) * np.maximum(np.abs(r) - 0.02, 0.0)
    table["hard 0.04"] = lambda m, r, a, b: m + r * (np.abs(r) > 0.04)
    for share in (0.05, 0.10, 0.15):  # the "select" head with a constant alpha and no edge transfer
        table[f"max+{share:.2f}*min"] = lambda m, r, a, b, s=share: m + s * np.minimum(a, b)
    for sigma in (1.0, 2.0):
        table[f"2-scale {sigma:g}"] = lambda m, r, a, b, s=sigma: (
            two_scales(m, s)[0] + larger_magnitude(two_scales(a, s)[1], two_scales(b, s)[1]))
    for gain, sigma in ((0.15, 1.0), (0.2, 1.5), (0.25, 1.5)):
        table[f"+{gain:g}*detail {sigma:g}"] = lambda m, r, a, b, k=gain, s=sigma: (
            m + 0.05 * np.minimum(a, b) + k * two_scales(m, s)[1])
    return table


def score_pair(model: AMIFModel, data: Path, pair: str, split: str, every: int) -> tuple[int, dict[str, dict[str, float]]]:
    """Mean table metrics of every variant over every ``every``-th slice of ``pair`` in ``split``."""
    records = [r for r in split_records(read_records(data), split) if r.pair == pair][::every]
    table = variants()
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        mri, other = read_pair(data, record)
        a, b = fit_normalisation(mri).apply(mri), fit_normalisation(other).apply(other)
        m = np.maximum(a, b)
        r = model.fuse_clean(mri, other) - m
        for name, build in table.items():
            for metric, value in fusion_metrics(np.clip(build(m, r, a, b), 0.0, 1.0), a, b).items():
                sums[name][metric].append(value)
    return len(records), {n: {k: float(np.nanmean(v)) for k, v in d.items()} for n, d in sums.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the Harvard pairs folder (with pairs.csv)")
    parser.add_argument("--split", default="train", choices=("train", "val"), help="patients to score (default train)")
    parser.add_argument("--every", type=int, default=4, help="score every N-th slice (default 4)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    args = parser.parse_args()
    if not (args.data / "pairs.csv").is_file():
        raise SystemExit(f"{args.data} has no pairs.csv; pass the Harvard pairs folder with --data")
    torch.set_num_threads(args.threads)
    model = load_model(device="cpu")
    for pair in PAIRS:
        count, means = score_pair(model, args.data, pair, args.split, args.every)
        print(f"\n{pair}: {count} {args.split} slices (every {args.every}th)")
        print(f"{'variant':<16}" + "".join(f"{k:>7}" for k in TABLE_METRICS) + "  >CDDFuse  >max  MI/VIF/SSIM of max")
        for name, row in means.items():
            above_cdd = sum(row[k] > CDDFUSE_MIF[pair][k] for k in TABLE_METRICS)
            above_max = sum(row[k] > means["max"][k] for k in TABLE_METRICS)
            ratios = "/".join(f"{row[k] / means['max'][k]:.3f}" for k in ("MI", "VIF", "SSIM"))
            print(f"{name:<16}" + "".join(f"{row[k]:7.2f}" for k in TABLE_METRICS)
                  + f"  {above_cdd}/8      {above_max}/8   {ratios}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
