#!/usr/bin/env python3
"""How well C-SAMIC's key flow whitens the key, on Harvard validation slices.

For every ``--every``-th validation slice, the shipped model fuses the pair,
draws the default identifier at a slice-dependent offset, and computes the
watermark's Haar bands DWT(w) and the key y2 = T(DWT(w) | y1) on the key
support. Prints, per band (LL, LH, HL, HH), the mean and standard deviation
of both, and the correlation matrix of the key's four bands: a whitened key
has means near 0, standard deviations near 1 and no cross-band correlation.

Usage::

    python benchmarks/key_whitening.py --data ../shared/data/harvard [--every 25]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, installed or not

import amif_core  # noqa: E402
from amif_core.constants import DEFAULT_IDENTIFIER  # noqa: E402
from amif_core.data.harvard import read_pair, read_records, split_records  # noqa: E402
from amif_core.networks.csamic import key_support  # noqa: E402
from amif_core.networks.wavelet import haar_dwt  # noqa: E402
from amif_core.transforms.identifier import crop_mask, render_identifier_canvas  # noqa: E402

BANDS = ("LL", "LH", "HL", "HH")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the Harvard pairs folder")
    parser.add_argument("--every", type=int, default=25, help="take every N-th validation slice (default 25)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = amif_core.load_model("cpu")
    watermark_bands, key_bands = [], []
    for index, record in enumerate(split_records(read_records(args.data), "val")[:: args.every]):
        mri, other = read_pair(args.data, record)
        fused = torch.from_numpy(model.fuse_clean(mri, other))[None, None]
        h, w = fused.shape[-2:]
        canvas = render_identifier_canvas(DEFAULT_IDENTIFIER, h, w)
        mask = torch.from_numpy(crop_mask(canvas, (index * 13 % h, index * 29 % w), h, w).astype(np.float32))[None, None]
        with torch.inference_mode():
            watermark, ink = model.net.ccwm(fused, mask)
            key, _ = model.net.key_flow(torch.where(mask > 0, ink, fused), watermark, mask)
        support = key_support(mask)[0, 0] > 0
        watermark_bands.append(haar_dwt(watermark)[0][:, support].numpy())
        key_bands.append(key[0][:, support].numpy())
    x, y = np.concatenate(watermark_bands, axis=1), np.concatenate(key_bands, axis=1)
    print(f"{len(watermark_bands)} validation slices, {y.shape[1]} support positions per band")
    print("band  DWT(w) mean  DWT(w) std  key mean  key std")
    for band, name in enumerate(BANDS):
        print(f"{name:4s}  {x[band].mean():11.3f}  {x[band].std():10.3f}  {y[band].mean():8.3f}  {y[band].std():7.3f}")
    print("key cross-band correlation:")
    print(np.array2string(np.corrcoef(y), precision=2, suppress_small=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
