"""What the trace mark costs the fusion metrics, per amplitude, on validation slices.

    python benchmarks/trace_cost.py --data ../shared/data/harvard --per-pair 6

For each amplitude (grey levels of 255) the mark of the demo secret is added
to the network's unmarked fusion of each slice, as the release does, and the
8 fusion metrics of the marked fusion are compared with the unmarked one's:
the mean relative change per metric over the slices, and the lowest PSNR.

``--within-8bit`` measures the alternative studied for the trace mark: the mark
clipped, pixel by pixel, to the 8-bit rounding cell of the unmarked fusion, so
that the fusion rounded to 8 bits (what the metrics score) does not change at
all, and the mark lives only in the 16-bit grey release.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import amif_core
from amif_core.data.harvard import PAIRS, read_pair, read_records, split_records
from amif_core.evaluation.fusion import TABLE_METRICS
from amif_core.evaluation.metrics import fusion_metrics
from amif_core.evaluation.psnr import psnr
from amif_core.tracing import mark as trace_mark
from amif_core.transforms.intensity import fit_normalisation


def within_8bit(marked: np.ndarray, plain: np.ndarray) -> np.ndarray:
    """``marked`` moved back, pixel by pixel, into the 8-bit rounding cell of ``plain``, so that both round to
    the same 8-bit image: same shape, float32 in [0, 1].

    ``marked``, ``plain``: float arrays of one shape in [0, 1]; a margin of 0.001 grey levels keeps the
    rounding unchanged after the 15-bit storage of a grey release."""
    levels = np.asarray(plain, np.float64) * 255
    low, high = np.round(levels) - 0.5 + 1e-3, np.round(levels) + 0.5 - 1e-3
    return np.clip(np.clip(np.asarray(marked, np.float64) * 255, low, high) / 255, 0, 1).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--per-pair", type=int, default=6, help="validation slices per pair (default 6)")
    parser.add_argument("--amplitudes", default="0.25,0.35,0.5,0.75,1.25", help="grey levels of 255, comma-separated")
    parser.add_argument("--within-8bit", action="store_true", help="clip the mark to the 8-bit rounding cell")
    args = parser.parse_args()
    model = amif_core.load_model("cpu")
    records = split_records(read_records(args.data), "val")
    rng = np.random.default_rng(0)
    chosen = [records[i] for pair in PAIRS
              for i in rng.choice([k for k, r in enumerate(records) if r.pair == pair], size=args.per_pair,
                                  replace=False)]
    slices = []
    for record in chosen:
        mri, other = read_pair(args.data, record)
        a, b = fit_normalisation(mri).apply(mri), fit_normalisation(other).apply(other)
        plain = model.fuse_clean(mri, other, owner=None)
        slices.append((a, b, plain, fusion_metrics(plain, a, b)))
    print(f"{len(chosen)} validation slices ({args.per_pair} per pair); mean relative change of each metric, %")
    print(f"{'amplitude':>10} {'min PSNR':>9} " + " ".join(f"{m:>6}" for m in TABLE_METRICS))
    shipped = trace_mark.AMPLITUDE
    for amplitude in (float(x) / 255 for x in args.amplitudes.split(",")):
        trace_mark.AMPLITUDE = amplitude
        changes = {m: [] for m in TABLE_METRICS}
        worst = np.inf
        for a, b, plain, base in slices:
            marked = trace_mark.DEMO_MARK.apply(plain[None], a[None], b[None])[0]
            if args.within_8bit:
                marked = within_8bit(marked, plain)
            worst = min(worst, psnr(marked, plain))
            values = fusion_metrics(marked, a, b)
            for m in TABLE_METRICS:
                changes[m].append(100 * (values[m] - base[m]) / base[m])
        print(f"{amplitude * 255:10.2f} {worst:9.1f} " + " ".join(f"{np.mean(changes[m]):+6.2f}" for m in TABLE_METRICS))
    trace_mark.AMPLITUDE = shipped


if __name__ == "__main__":
    main()
