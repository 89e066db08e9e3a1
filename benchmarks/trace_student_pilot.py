"""A one-student pilot of the distillation attack: is a mark of this amplitude learnt and traced?

    python benchmarks/trace_student_pilot.py --data ../shared/data/harvard --amplitude 1.25 --steps 1500

Faster than ``amif attack-eval --distill``: the training slices are fused once in
batches (the network's unmarked fusion of the loader's normalised slices), the
mark of a fixed secret is added as the release adds it, and one U-Net student
(setting (a): L1, 8 crops of 128 x 128, Adam 2e-3 with cosine decay) learns
the marked fusion of all 534 training slices (no identifier strokes: every
pixel counts). It is then traced on 40 validation probe slices, and checked
against 100 wrong secrets. ``--within-8bit``: the mark clipped to the 8-bit
rounding cell of the unmarked fusion (``trace_cost.within_8bit``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import amif_core
from amif_core.data.harvard import load_pairs
from amif_core.evaluation.attacks.distill import StudentConfig, student_fusion, train_student
from amif_core.evaluation.psnr import psnr
from amif_core.tracing import mark as trace_mark
from amif_core.tracing.detect import CLEAR_P, TraceAccumulator
from amif_core.tracing.mark import TraceMark
from amif_core.tracing.secret import OwnerSecret
from trace_cost import within_8bit

BATCH = 16


def fuse(model: amif_core.AMIFModel, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The network's unmarked fusion of (N, H, W) normalised slices, in batches."""
    out = []
    for start in range(0, len(a), BATCH):
        with torch.inference_mode():
            out.append(model.net.fuse(torch.from_numpy(a[start : start + BATCH, None]),
                                      torch.from_numpy(b[start : start + BATCH, None]))[:, 0].numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--amplitude", type=float, default=trace_mark.AMPLITUDE * 255, help="grey levels of 255")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--within-8bit", action="store_true", help="clip the mark to the 8-bit rounding cell")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    trace_mark.AMPLITUDE = args.amplitude / 255
    model = amif_core.load_model("cpu")
    train, val = load_pairs(args.data, "train"), load_pairs(args.data, "val")
    mark = TraceMark.from_secret(OwnerSecret(bytes(range(32))))
    plain = fuse(model, train.mri, train.other)
    released = mark.apply(plain, train.mri, train.other)
    if args.within_8bit:
        released = within_8bit(released, plain)
    net = train_student(np.stack([train.mri, train.other], 1), released, np.ones_like(released),
                        StudentConfig(steps=args.steps), 0)
    probes = np.random.default_rng(1).permutation(len(val.records))[:40]
    references = fuse(model, val.mri[probes], val.other[probes])
    accumulator, scores = TraceAccumulator(), []
    for index, reference in zip(probes, references):
        a, b = val.mri[index], val.other[index]
        output = student_fusion(net, a, b)
        marked = mark.apply(reference[None], a[None], b[None])[0]
        if args.within_8bit:
            marked = within_8bit(marked, reference)
        scores.append(psnr(output, marked))
        accumulator.add(a, b, reference, output)
    result = accumulator.result(mark)
    wrong = [accumulator.result(TraceMark.from_secret(OwnerSecret(k.to_bytes(32, "little")))).p_value
             for k in range(100)]
    print(f"amplitude {args.amplitude:.2f}/255{' within 8-bit rounding' if args.within_8bit else ''}, {args.steps} steps: student PSNR vs released {np.mean(scores):.2f} dB; "
          f"trace cosine {result.cosine:.3f}, t {result.t:.2f}, p {result.p_value:.3g} ({result.verdict}); "
          f"wrong secrets flagged at {CLEAR_P:g}: {sum(p <= CLEAR_P for p in wrong)}/100")


if __name__ == "__main__":
    main()
