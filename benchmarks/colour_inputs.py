#!/usr/bin/env python3
"""Does the fusion work as well from a scalar PET/SPECT through a colour table as from the Harvard pseudo-colour?

The network was trained on the luma of the Harvard pseudo-colour images,
whose jet-like palettes are not monotone in uptake; users give AMIF a
scalar PET or SPECT, which it maps through a colour table whose luma rises
with uptake (``colour_table="pet"`` or ``"spect"``). This scores the clean
fusion of every validation PET and SPECT slice both ways:

* **as given**: the Harvard RGB slice itself (``model.fuse_clean(mri, rgb)``);
* **through the table**: the uptake recovered from that slice by inverting
  its palette (:mod:`amif_core.data.palette`) and mapped through the table.

For each way it prints the 8 table metrics, against the MRI and that way's
luma, of two images: the network's fused luma (the grey fusion of the
partner's luma, what the fusion-quality bar measures) and the luma of the
colour fusion a radiologist sees, which is that fused luma shaded by the
partner's luma (:func:`amif_core.transforms.colour.compose`). It prints the
same metrics of the pixel-wise maximum of the two inputs, how many each
image beats, and the fidelity ratios of the fusion-quality bar
(MI >= 0.85x, VIF >= 0.95x, SSIM >= 0.98x).

Usage::

    python benchmarks/colour_inputs.py --data ../shared/data/harvard
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, installed or not

from amif_core import load_model  # noqa: E402
from amif_core.data.harvard import read_pair, read_records, read_rgb, source_paths, split_records  # noqa: E402
from amif_core.data.palette import estimate_palette, uptake_from_rgb  # noqa: E402
from amif_core.evaluation.fusion import TABLE_METRICS  # noqa: E402
from amif_core.evaluation.metrics import fusion_metrics  # noqa: E402
from amif_core.transforms.colour import COLOUR_TABLES, apply_table, chroma, compose, luma  # noqa: E402
from amif_core.transforms.intensity import fit_normalisation  # noqa: E402

TABLES = {"PET-MRI": ("PET", "pet"), "SPECT-MRI": ("SPECT", "spect")}
FIDELITY = {"MI": 0.85, "VIF": 0.95, "SSIM": 0.98}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the Harvard pairs folder (with pairs.csv)")
    parser.add_argument("--weights", type=Path, help="weights file (default: the shipped weights)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    args = parser.parse_args()
    if not (args.data / "pairs.csv").is_file():
        raise SystemExit(f"{args.data} has no pairs.csv; pass the Harvard pairs folder with --data")
    torch.set_num_threads(args.threads)
    model = load_model("cpu", args.weights)
    records = read_records(args.data)
    for pair, (modality, table) in TABLES.items():
        every = [r for r in records if r.pair == pair]
        palette = estimate_palette([read_rgb(source_paths(args.data, r)[1]) for r in every])
        val = [r for r in split_records(records, "val") if r.pair == pair]
        sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for record in val:
            mri, _ = read_pair(args.data, record)
            rgb = read_rgb(source_paths(args.data, record)[1])
            uptake = uptake_from_rgb(rgb, palette)
            a = fit_normalisation(mri).apply(mri)
            for way, colour in (("as given", rgb / np.float32(255)),
                                ("through the table",
                                 apply_table(fit_normalisation(uptake).apply(uptake), COLOUR_TABLES[table]))):
                partner = luma(colour)
                b = fit_normalisation(partner).apply(partner)
                fused = model.fuse_clean(mri, partner)
                shown = luma(compose(fused, a, partner, chroma(colour)))
                for name, image in ((f"{way}: fused", fused), (f"{way}: colour", shown),
                                    (f"{way}: max", np.maximum(a, b))):
                    for metric, value in fusion_metrics(image, a, b).items():
                        sums[name][metric].append(value)
        means = {n: {k: float(np.nanmean(v)) for k, v in d.items()} for n, d in sums.items()}
        print(f"\n{pair}: {len(val)} validation slices; palette of {len(palette)} colours; table {table!r}")
        print(f"{'row':<30}" + "".join(f"{k:>7}" for k in TABLE_METRICS) + "  >max  MI/VIF/SSIM ratio")
        for way in ("as given", "through the table"):
            maximum = means[f"{way}: max"]
            for name in (f"{way}: fused", f"{way}: colour", f"{way}: max"):
                tail = ""
                if name != f"{way}: max":
                    above = sum(means[name][k] > maximum[k] for k in TABLE_METRICS)
                    tail = f"  {above}/8   " + "/".join(f"{means[name][k] / maximum[k]:.3f}" for k in FIDELITY)
                print(f"{name:<30}" + "".join(f"{means[name][k]:7.2f}" for k in TABLE_METRICS) + tail)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
