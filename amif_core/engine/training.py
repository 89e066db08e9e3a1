"""Training of AMIF on the Harvard pairs, in two resumable stages.

Stage ``fusion``: the backbone learns the clean fusion with the CDDFuse losses.
Stage ``protect``: with the backbone frozen and its fusions cached, CCWM and
C-SAMIC learn the protected image (composite target), ink contrast and the
wrong-key hinge, with randomised identifier text, size, angle and offset.

Both stages draw from one seeded numpy generator and save a checkpoint (model,
optimiser, step, generator states) every ``checkpoint_every`` steps; running
the same command again resumes where it stopped.
"""
from __future__ import annotations

import os
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from amif_core.data.harvard import PairSet, load_pairs
from amif_core.engine.devices import resolve_device
from amif_core.engine.sampling import CropSampler
from amif_core.losses import (
    fusion_loss,
    ink_contrast_loss,
    masked_mean,
    out_of_range_loss,
    wrong_key_hinge,
)
from amif_core.networks.amif import AMIFConfig, AMIFNet
from amif_core.transforms.identifier import IdentifierStyle, render_identifier_canvas

WRONG_KEY_KINDS = ("zero", "random", "shuffled", "other_slice")


@dataclass
class FusionLossWeights:
    """Weights of the stage-1 (CDDFuse) loss terms; intensity-max has weight ``intensity``."""

    intensity: float = 1.0
    gradient: float = 10.0
    ssim: float = 1.0
    scd: float = 0.5


@dataclass
class ProtectLossWeights:
    """Weights of the stage-2 loss terms."""

    outside: float = 4.0
    inside: float = 1.0
    unlock: float = 1.0
    wrong_key: float = 0.5
    ink: float = 1.0
    out_of_range: float = 20.0


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in the weights file."""

    data: str
    out: str = "runs/amif"
    seed: int = 0
    device: str = "auto"
    threads: int = 2
    crop: int = 128
    batch: int = 8
    fusion_steps: int = 2000
    fusion_lr: float = 1e-3
    gamma_augment: float = 0.25
    protect_steps: int = 1500
    protect_lr: float = 1e-3
    mask_pool: int = 48
    checkpoint_every: int = 100
    model: AMIFConfig = field(default_factory=AMIFConfig)
    fusion_weights: FusionLossWeights = field(default_factory=FusionLossWeights)
    weights: ProtectLossWeights = field(default_factory=ProtectLossWeights)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["model"] = self.model.to_dict()
        return data


def _to_tensor(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(batch).to(device)


def _save_atomic(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _cosine_lr(step: int, total: int, base: float) -> float:
    warmup = max(1, total // 50)
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, total - warmup)))


class _Stage:
    """A resumable optimisation loop over ``steps`` steps of ``step_fn``."""

    def __init__(self, name: str, config: TrainConfig, net: AMIFNet, params: list[torch.nn.Parameter],
                 steps: int, lr: float, rng: np.random.Generator) -> None:
        self.name, self.config, self.net, self.steps, self.lr, self.rng = name, config, net, steps, lr, rng
        self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
        self.params = params
        self.path = Path(config.out) / f"{name}.ckpt"
        self.step = 0

    def resume(self) -> bool:
        """Load the stage checkpoint if present; True when the stage is already complete."""
        if not self.path.exists():
            return False
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        self.step = state["step"]
        return self.step >= self.steps

    def save(self) -> None:
        _save_atomic(
            {
                "model": self.net.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "numpy_rng": self.rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "step": self.step,
                "config": self.config.to_dict(),
            },
            self.path,
        )

    def run(self, step_fn: Callable[[], dict[str, torch.Tensor]], quiet: bool) -> None:
        bar = tqdm(total=self.steps, initial=self.step, desc=f"train/{self.name}", disable=quiet, dynamic_ncols=True)
        while self.step < self.steps:
            for group in self.optimizer.param_groups:
                group["lr"] = _cosine_lr(self.step, self.steps, self.lr)
            losses = step_fn()
            self.optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            self.optimizer.step()
            self.step += 1
            bar.update(1)
            bar.set_postfix({k: f"{v.item():.4f}" for k, v in losses.items()})
            if self.step % self.config.checkpoint_every == 0 or self.step == self.steps:
                self.save()
        bar.close()


def random_identifier(rng: np.random.Generator) -> tuple[str, IdentifierStyle]:
    """A random owner text and style, as seen in training (3-14 characters)."""
    alphabet = string.ascii_letters + string.digits + " -.:/#&\u00a9"
    text = "".join(rng.choice(list(alphabet), size=int(rng.integers(3, 15)))).strip() or "AMIF"
    style = IdentifierStyle(
        font_fraction=float(rng.uniform(0.06, 0.15)),
        angle_deg=float(rng.uniform(-60, 60)),
        coverage=float(rng.uniform(0.10, 0.22)),
    )
    return text, style


def mask_pool_canvases(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """``count`` random identifier canvases for (size, size) slices: (count, 2*size, 2*size) float32."""
    canvases = []
    for _ in range(count):
        text, style = random_identifier(rng)
        canvases.append(render_identifier_canvas(text, size, size, style))
    return np.stack(canvases).astype(np.float32)


def sample_masks(pool: np.ndarray, rng: np.random.Generator, batch: int, crop: int) -> np.ndarray:
    out = np.empty((batch, 1, crop, crop), dtype=np.float32)
    for i in range(batch):
        canvas = pool[rng.integers(len(pool))]
        y, x = rng.integers(0, canvas.shape[0] - crop + 1), rng.integers(0, canvas.shape[1] - crop + 1)
        out[i, 0] = canvas[y : y + crop, x : x + crop]
    return out


def wrong_keys(key: torch.Tensor, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """A wrong key of the same shape as ``key`` (B, 4, h, w).

    zero: all zeros; random: Gaussian with each item's mean and std;
    shuffled: the key's pixels in a random spatial order; other_slice: the key
    of the next batch item (another slice with another mask offset).
    """
    if kind == "zero":
        return torch.zeros_like(key)
    if kind == "random":
        mean = key.mean(dim=(1, 2, 3), keepdim=True)
        std = key.std(dim=(1, 2, 3), keepdim=True)
        return mean + std * torch.randn(key.shape, generator=generator, device="cpu").to(key)
    if kind == "shuffled":
        b, c, h, w = key.shape
        order = torch.randperm(h * w, generator=generator).to(key.device)
        return key.reshape(b, c, h * w)[:, :, order].reshape(b, c, h, w)
    if kind == "other_slice":
        return key.roll(1, dims=0)
    raise ValueError(f"unknown wrong-key kind {kind!r}; use one of {WRONG_KEY_KINDS}")


def _fusion_step(net: AMIFNet, sampler: CropSampler, rng: np.random.Generator, config: TrainConfig,
                 device: torch.device) -> dict[str, torch.Tensor]:
    batch = _to_tensor(sampler.batch(rng, config.batch), device)
    mri, other = batch[:, 0:1], batch[:, 1:2]
    w = config.fusion_weights
    return fusion_loss(net.fuse(mri, other), mri, other, w.intensity, w.gradient, w.ssim, w.scd)


def protect_losses(net: AMIFNet, fused: torch.Tensor, mask: torch.Tensor, weights: ProtectLossWeights,
                   wrong_kinds: tuple[str, ...], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Stage-2 loss terms for a batch of clean fusions (B, 1, H, W) and masks."""
    protected, key, ink = net.protect(fused, mask)
    target = (1 - mask) * fused + mask * ink.detach()
    error = (protected - target).abs()
    outside = masked_mean(error + 10 * error**2, 1 - mask).mean()
    inside = masked_mean(error, mask).mean()
    quantised_key = key + (key.half().float() - key).detach()
    unlock = F.l1_loss(net.unlock(protected, quantised_key), fused)
    hinge = torch.stack([
        wrong_key_hinge(net.unlock(protected, wrong_keys(key.detach(), kind, generator)).clamp(0, 1),
                        protected.clamp(0, 1), fused, mask)
        for kind in wrong_kinds
    ]).mean()
    ink_loss = ink_contrast_loss(ink, fused, mask)
    in_range = out_of_range_loss(protected)
    total = (weights.outside * outside + weights.inside * inside + weights.unlock * unlock
             + weights.wrong_key * hinge + weights.ink * ink_loss + weights.out_of_range * in_range)
    return {"total": total, "outside": outside, "inside": inside, "unlock": unlock, "wrong_key": hinge,
            "ink": ink_loss, "range": in_range}


@torch.inference_mode()
def _cache_fusions(net: AMIFNet, pairs: PairSet, device: torch.device) -> np.ndarray:
    fused = []
    for start in range(0, len(pairs.records), 8):
        mri = torch.from_numpy(pairs.mri[start : start + 8, None]).to(device)
        other = torch.from_numpy(pairs.other[start : start + 8, None]).to(device)
        fused.append(net.fuse(mri, other).cpu().numpy()[:, 0])
    return np.concatenate(fused)


def train(config: TrainConfig, quiet: bool = False) -> AMIFNet:
    """Run (or resume) both stages; returns the trained network on the CPU.

    Writes ``<out>/fusion.ckpt`` and ``<out>/protect.ckpt``; the caller turns
    the result into a weights file (see :mod:`amif_core.engine.weights`).
    """
    torch.manual_seed(config.seed)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    rng = np.random.default_rng(config.seed)
    net = AMIFNet(config.model).to(device)
    pairs = load_pairs(Path(config.data), "train")

    fusion = _Stage("fusion", config, net, list(net.backbone.parameters()), config.fusion_steps, config.fusion_lr, rng)
    if not fusion.resume():
        sampler = CropSampler(pairs, np.stack([pairs.mri, pairs.other], axis=1), config.crop, config.gamma_augment)
        net.train()
        fusion.run(lambda: _fusion_step(net, sampler, rng, config, device), quiet)

    net.backbone.requires_grad_(False)
    net.backbone.eval()
    protect_params = list(net.ccwm.parameters()) + list(net.csamic.parameters())
    protect = _Stage("protect", config, net, protect_params, config.protect_steps, config.protect_lr, rng)
    if not protect.resume():
        stack = np.stack([pairs.mri, pairs.other, _cache_fusions(net, pairs, device)], axis=1)
        sampler = CropSampler(pairs, stack, config.crop)
        pool = mask_pool_canvases(rng, config.mask_pool, pairs.mri.shape[-1])
        generator = torch.Generator().manual_seed(config.seed)
        net.ccwm.train()
        net.csamic.train()

        def step() -> dict[str, torch.Tensor]:
            fused = _to_tensor(sampler.batch(rng, config.batch)[:, 2:3], device)
            mask = _to_tensor(sample_masks(pool, rng, config.batch, config.crop), device)
            kinds = tuple(rng.choice(WRONG_KEY_KINDS, size=2, replace=False))
            return protect_losses(net, fused, mask, config.weights, kinds, generator)

        protect.run(step, quiet)
    return net.cpu().eval()
