#!/usr/bin/env python3
"""How far the colour fusion's luma falls from the grey fusion's, on the validation PET and SPECT slices.

The colour fusion puts the functional scan's chroma (Cb, Cr) on the fused
luma and clips the result to the RGB gamut. Clipping a bright luma under a
strong chroma lowers the luma, so the colour fusion's luma is not the grey
fusion's there. For every ``--every``-th validation slice of each pair this
prints the mean absolute luma difference and the fraction of pixels that
come out darker or brighter by more than one 8-bit level.

Usage::

    python benchmarks/colour_luma.py --data ../shared/data/harvard
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, installed or not

from amif_core import load_model  # noqa: E402
from amif_core.data.harvard import read_pair, read_records, read_rgb, source_paths, split_records  # noqa: E402
from amif_core.inference.model import AMIFModel  # noqa: E402
from amif_core.transforms.colour import luma  # noqa: E402

LEVEL = 1 / 255  # one 8-bit grey level


def luma_shift(model: AMIFModel, data: Path, pair: str, every: int) -> dict[str, float]:
    """Mean over slices of |luma(colour fusion) - grey fusion| and of the fractions of pixels darker and brighter
    by more than :data:`LEVEL` (both images (H, W) float32 in [0, 1]); ``slices`` is how many were scored."""
    records = [r for r in split_records(read_records(data), "val") if r.pair == pair][::every]
    shift, darker, brighter = [], [], []
    for record in records:
        mri, other = read_pair(data, record)
        grey = model.fuse_clean(mri, other)
        colour = luma(model.fuse_clean(mri, read_rgb(source_paths(data, record)[1])))
        difference = colour - grey
        shift.append(float(np.abs(difference).mean()))
        darker.append(float((difference < -LEVEL).mean()))
        brighter.append(float((difference > LEVEL).mean()))
    return {"slices": len(records), "mean_abs": float(np.mean(shift)), "darker": float(np.mean(darker)),
            "brighter": float(np.mean(brighter))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the Harvard pairs folder (with pairs.csv)")
    parser.add_argument("--weights", type=Path, help="weights file (default: the shipped weights)")
    parser.add_argument("--every", type=int, default=5, help="take every N-th validation slice (default 5)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_model("cpu", weights=args.weights)
    print(f"model {model.model_id[:12]}; luma of the colour fusion against the grey fusion")
    for pair in ("PET-MRI", "SPECT-MRI"):
        figures = luma_shift(model, args.data, pair, args.every)
        print(f"{pair}: {figures['slices']} slices, mean |difference| {figures['mean_abs']:.4f}, "
              f"pixels darker by > 1/255 {figures['darker']:.3f}, brighter {figures['brighter']:.3f}")


if __name__ == "__main__":
    main()
