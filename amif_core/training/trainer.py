"""Training of AMIF on the Harvard pairs, in two resumable stages.

Stage ``fusion``: the backbone learns the clean fusion with the CDDFuse losses.
Stage ``protect``: with the backbone frozen and its fusions cached, CCWM
learns ink that contrasts with the content under the strokes, and C-SAMIC's
key-branch flow learns to whiten the key (maximum likelihood of y2 under a
standard normal on the key support), with randomised identifier text, size,
angle and offset. The protected image itself is fixed by construction (the
composite), so no loss shapes it. ``backbone_from`` starts from the backbone
of a released weights file and skips stage ``fusion``.

Both stages draw from one seeded numpy generator and save a checkpoint (model,
optimiser, step, generator states) every ``checkpoint_every`` steps; running
the same command again resumes where it stopped.
"""
from __future__ import annotations

import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from amif_core.data.harvard import PairSet, load_pairs
from amif_core.runtime.devices import resolve_device
from amif_core.inference.weights import load_backbone_state
from amif_core.atomic import Output, write_atomically
from amif_core.networks.amif import AMIFConfig, AMIFNet
from amif_core.networks.csamic import key_support
from amif_core.training.losses import (
    fusion_loss,
    ink_contrast_loss,
    key_likelihood_loss,
)
from amif_core.training.sampling import CropSampler
from amif_core.transforms.identifier import IdentifierStyle, render_identifier_canvas


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

    ink: float = 1.0
    likelihood: float = 0.1


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in the weights file."""

    data: str
    out: str = "runs/amif"
    backbone_from: str | None = None
    seed: int = 0
    device: str = "auto"
    threads: int = 2
    crop: int = 128
    batch: int = 8
    fusion_steps: int = 2000
    fusion_lr: float = 1e-3
    gamma_augment: float = 0.25
    protect_steps: int = 3000
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
    write_atomically([Output(path, lambda temp: torch.save(state, temp))], force=True)


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


def _fusion_step(net: AMIFNet, sampler: CropSampler, rng: np.random.Generator, config: TrainConfig,
                 device: torch.device) -> dict[str, torch.Tensor]:
    batch = _to_tensor(sampler.batch(rng, config.batch), device)
    mri, other = batch[:, 0:1], batch[:, 1:2]
    w = config.fusion_weights
    return fusion_loss(net.fuse(mri, other), mri, other, w.intensity, w.gradient, w.ssim, w.scd)


def protect_losses(net: AMIFNet, fused: torch.Tensor, mask: torch.Tensor, weights: ProtectLossWeights
                   ) -> dict[str, torch.Tensor]:
    """Stage-2 loss terms for a batch of clean fusions (B, 1, H, W) in [0, 1] and masks in {0, 1}.

    The ink contrast trains CCWM; the key likelihood trains the flow only (the
    ink is detached there, so whitening the key never pulls the ink towards
    the content it must contrast with).
    """
    watermark, ink = net.ccwm(fused, mask)
    ink_loss = ink_contrast_loss(ink, fused, mask)
    ink = ink.detach()
    key, log_det = net.key_flow(torch.where(mask > 0, ink, fused), mask * (ink - fused), mask)
    likelihood = key_likelihood_loss(key, log_det, key_support(mask))
    total = weights.ink * ink_loss + weights.likelihood * likelihood
    return {"total": total, "ink": ink_loss, "likelihood": likelihood}


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
    the result into a weights file (see :mod:`amif_core.inference.weights`).
    """
    torch.manual_seed(config.seed)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    rng = np.random.default_rng(config.seed)
    net = AMIFNet(config.model).to(device)
    pairs = load_pairs(Path(config.data), "train")

    if config.backbone_from is not None:
        state, fusion_config = load_backbone_state(Path(config.backbone_from))
        if fusion_config != config.model.fusion:
            raise ValueError(f"{config.backbone_from} has backbone {fusion_config}, not {config.model.fusion}.")
        net.backbone.load_state_dict(state)
    fusion = _Stage("fusion", config, net, list(net.backbone.parameters()), config.fusion_steps, config.fusion_lr, rng)
    if config.backbone_from is None and not fusion.resume():
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
        net.ccwm.train()
        net.csamic.train()

        def step() -> dict[str, torch.Tensor]:
            fused = _to_tensor(sampler.batch(rng, config.batch)[:, 2:3], device)
            mask = _to_tensor(sample_masks(pool, rng, config.batch, config.crop), device)
            return protect_losses(net, fused, mask, config.weights)

        protect.run(step, quiet)
    return net.cpu().eval()
