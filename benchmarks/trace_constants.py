"""Print the trace mark's fixed constants as measured on the Harvard training patients.

BAND_SCALE: the standard deviation of each band-passed input in brain tissue
(pixels where either input exceeds 0.05); the response's spread for random
directions with those scales, which GAIN is set against.

    python benchmarks/trace_constants.py --data ../shared/data/harvard
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from amif_core.data.harvard import load_pairs
from amif_core.tracing import mark as trace_mark
from amif_core.tracing.mark import TraceMark
from amif_core.tracing.secret import new_secret

TISSUE = 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--slices", type=int, default=120, help="training slices sampled (default 120)")
    args = parser.parse_args()
    pairs = load_pairs(args.data, "train")
    chosen = np.random.default_rng(0).choice(len(pairs.records), size=min(args.slices, len(pairs.records)),
                                             replace=False)
    spread = {i: [] for i in range(4)}
    responses = []
    marks = [TraceMark.from_secret(new_secret()) for _ in range(8)]
    for i in chosen:
        a, b = pairs.mri[i], pairs.other[i]
        tissue = np.maximum(a, b) > TISSUE
        for j, band in enumerate(trace_mark.bands(a, b)):
            spread[j].append(band[tissue] * trace_mark.BAND_SCALE[j // 2][j % 2])
        responses.append(np.concatenate([m.response(a, b)[tissue] for m in marks]))
    names = ["mri fine", "mri coarse", "other fine", "other coarse"]
    for j, name in enumerate(names):
        print(f"band std {name:13s} {np.concatenate(spread[j]).std():.4f}")
    print(f"response std (current BAND_SCALE, 8 random directions) {np.concatenate(responses).std():.3f}")


if __name__ == "__main__":
    main()
