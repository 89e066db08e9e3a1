#!/usr/bin/env python3
"""Stage-1-only fusion pilots: train a fusion backbone design briefly, score it on validation patients.

The fusion backbone is trained before, and independently of, the protection
stage, so fusion designs are searched with this loop and only the design
that ships is trained in full (``amif train``) and attacked. Each pilot
trains the backbone alone with the committed stage-1 losses (or the weights
given here) on 128x128 crops, then scores the fusion of every ``--every``-th
validation slice against the pixel-wise maximum of the same normalised
sources: the count of the 8 table metrics above the maximum, and the
fidelity ratios MI, VIF and SSIM over the maximum's (bars: >= 4/8, MI >=
0.85x, VIF >= 0.95x, SSIM >= 0.98x).

Usage::

    python benchmarks/fusion_pilot.py --data ../shared/data/harvard --head select --alpha-max 0.15 --beta-max 0
    python benchmarks/fusion_pilot.py --data ../shared/data/harvard --head residual --steps 600
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # score this checkout, installed or not

from amif_core.data.harvard import PAIRS, load_pairs  # noqa: E402
from amif_core.evaluation.fusion import TABLE_METRICS  # noqa: E402
from amif_core.evaluation.metrics import fusion_metrics  # noqa: E402
from amif_core.networks.amif import AMIFConfig, AMIFNet  # noqa: E402
from amif_core.networks.fusion import FusionConfig  # noqa: E402
from amif_core.training.trainer import FusionLossWeights, TrainConfig, _cosine_lr, _fusion_step  # noqa: E402
from amif_core.training.sampling import CropSampler  # noqa: E402

FIDELITY_BARS = {"MI": 0.85, "VIF": 0.95, "SSIM": 0.98}


def train_backbone(config: TrainConfig) -> AMIFNet:
    """Stage 1 of :func:`amif_core.training.trainer.train`, without checkpoints; returns the network."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = AMIFNet(config.model)
    pairs = load_pairs(Path(config.data), "train")
    sampler = CropSampler(pairs, np.stack([pairs.mri, pairs.other], axis=1), config.crop, config.gamma_augment)
    params = list(net.backbone.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.fusion_lr, weight_decay=1e-4)
    net.train()
    for step in range(config.fusion_steps):
        for group in optimizer.param_groups:
            group["lr"] = _cosine_lr(step, config.fusion_steps, config.fusion_lr)
        losses = _fusion_step(net, sampler, rng, config, torch.device("cpu"))
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
    return net.eval()


@torch.inference_mode()
def score(net: AMIFNet, data: Path, every: int) -> dict[str, dict[str, dict[str, float]]]:
    """Mean table metrics of the fusion and of the maximum per pair, over every ``every``-th validation slice."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for pair in PAIRS:
        pairs = load_pairs(data, "val", (pair,))
        sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for index in range(0, len(pairs.records), every):
            a, b = pairs.mri[index], pairs.other[index]
            fused = net.fuse(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])[0, 0].numpy()
            for name, image in (("fusion", fused), ("max", np.maximum(a, b))):
                for metric, value in fusion_metrics(image, a, b).items():
                    sums[name][metric].append(value)
        out[pair] = {n: {k: float(np.nanmean(v)) for k, v in d.items()} for n, d in sums.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the Harvard pairs folder (with pairs.csv)")
    parser.add_argument("--head", default=FusionConfig.head, choices=("residual", "select"))
    parser.add_argument("--alpha-max", type=float, default=FusionConfig.alpha_max, help="select head: alpha bound")
    parser.add_argument("--beta-max", type=float, default=FusionConfig.beta_max, help="select head: beta bound")
    parser.add_argument("--steps", type=int, default=600, help="stage-1 steps (default 600)")
    parser.add_argument("--every", type=int, default=3, help="score every N-th validation slice (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    for name, value in vars(FusionLossWeights()).items():
        parser.add_argument(f"--w-{name}", type=float, default=value, help=f"stage-1 loss weight (default {value})")
    args = parser.parse_args()
    if not (args.data / "pairs.csv").is_file():
        raise SystemExit(f"{args.data} has no pairs.csv; pass the Harvard pairs folder with --data")
    torch.set_num_threads(args.threads)
    weights = FusionLossWeights(**{name: getattr(args, f"w_{name}") for name in vars(FusionLossWeights())})
    config = TrainConfig(data=str(args.data), fusion_steps=args.steps, fusion_weights=weights,
                         model=AMIFConfig(fusion=FusionConfig(head=args.head, alpha_max=args.alpha_max,
                                                              beta_max=args.beta_max)))
    start = time.perf_counter()
    net = train_backbone(config)
    trained = time.perf_counter() - start
    print(f"{config.model.fusion}, {args.steps} steps, weights {vars(weights)}: trained in {trained / 60:.1f} min")
    for pair, rows in score(net, args.data, args.every).items():
        fusion, maximum = rows["fusion"], rows["max"]
        above = [k for k in TABLE_METRICS if fusion[k] > maximum[k]]
        ratios = {k: fusion[k] / maximum[k] for k in FIDELITY_BARS}
        met = len(above) >= 4 and all(ratios[k] >= bar for k, bar in FIDELITY_BARS.items())
        print(f"\n{pair}: beats max on {len(above)}/8 ({', '.join(above)}); "
              + ", ".join(f"{k} {v:.3f}x" for k, v in ratios.items()) + f"; bar {'met' if met else 'NOT met'}")
        print(f"{'row':<8}" + "".join(f"{k:>7}" for k in TABLE_METRICS))
        for name, row in rows.items():
            print(f"{name:<8}" + "".join(f"{row[k]:7.2f}" for k in TABLE_METRICS))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
