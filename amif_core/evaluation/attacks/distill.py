"""The distillation attack: train a student on AMIF's released images, then trace it.

The attacker queries the model on their own pairs (the training patients'
slices), keeps the protected images (never a key), recovers the identifier's
strokes from each image (:func:`~amif_core.evaluation.attacks.white_box.recover_mask`)
and leaves them out of the loss. :data:`SETTINGS` lists the students; each
trains with :func:`train_student` and is scored on validation probes:

* its PSNR against the released fusion (what unlock returns) and its fusion
  metrics, which say how much of the model it took;
* the trace statistic of :mod:`amif_core.tracing.detect` against the owner's
  secret, which says whether the owner can prove it.

The independent suspects (pixel-wise max and mean, the unmarked network,
AMIF under another owner secret, a student of another secret's outputs) and
every student against random wrong secrets measure the false positives.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from amif_core.evaluation.attacks import filters
from amif_core.evaluation.attacks.remover import LEVELS_DOWN, UNet
from amif_core.networks.fusion import FusionBackbone, FusionConfig

STROKE_MARGIN = {"none": 1, "blur": 2, "jpeg": 4}  # pixels around the strokes left out of the loss


@dataclass(frozen=True)
class StudentConfig:
    """One student recipe: ``network`` ("unet" or "backbone"), ``loss`` ("l1", "l2" or "ssim"), ``target``
    ("protected", or "unlocked" for a licensee's unlocked images), ``degrade`` ("none", "blur": Gaussian
    sigma 0.7 px, "jpeg": quality 90), ``slices`` (None: all), and the optimiser's schedule."""

    network: str = "unet"
    loss: str = "l1"
    target: str = "protected"
    degrade: str = "none"
    slices: int | None = None
    steps: int = 1500
    batch: int = 8
    crop: int = 128
    lr: float = 2e-3


SETTINGS: dict[str, StudentConfig] = {
    "a_unet_l1": StudentConfig(),
    "b_backbone_l2": StudentConfig(network="backbone", loss="l2"),
    "c_unet_50_slices": StudentConfig(slices=50),
    "d_blurred_targets": StudentConfig(degrade="blur"),
    "e_jpeg90_targets": StudentConfig(degrade="jpeg"),
    "f_unlocked_targets": StudentConfig(target="unlocked"),
    "g_ssim_loss": StudentConfig(loss="ssim"),
}


def degrade(image: np.ndarray, how: str) -> np.ndarray:
    """The attacker's robust target: (H, W) float32 in [0, 1], blurred (sigma 0.7 px), JPEG 90, or as is."""
    if how == "blur":
        return ndimage.gaussian_filter(np.asarray(image, np.float32), 0.7, mode="nearest")
    if how == "jpeg":
        return filters.jpeg(image, 90)
    return np.asarray(image, np.float32)


def loss_weights(strokes: np.ndarray, how: str) -> np.ndarray:
    """1 where the loss counts, 0 on the strokes grown by :data:`STROKE_MARGIN` pixels: (N, H, W) float32."""
    grown = ndimage.binary_dilation(strokes > 0, structure=np.ones((1, 3, 3), bool), iterations=STROKE_MARGIN[how])
    return (~grown).astype(np.float32)


class BackboneStudent(nn.Module):
    """AMIF's own fusion backbone with the free residual head, trained from scratch: (B, 2, H, W) -> (B, 1, H, W)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = FusionBackbone(FusionConfig(head="residual"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x[:, :1], x[:, 1:])


def make_student(network: str) -> nn.Module:
    """A fresh student network of kind ``network`` ("unet" or "backbone")."""
    return UNet(channels=2) if network == "unet" else BackboneStudent()


def _ssim_loss(estimate: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """1 - the weighted mean SSIM map (7x7 box windows) of two (B, 1, h, w) tensors in [0, 1]."""
    pool = lambda x: F.avg_pool2d(x, 7, stride=1, padding=3, count_include_pad=False)  # noqa: E731
    mx, my = pool(estimate), pool(target)
    vx, vy = pool(estimate * estimate) - mx * mx, pool(target * target) - my * my
    cov = pool(estimate * target) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return 1 - (ssim * weight).sum() / weight.sum().clamp_min(1.0)


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": lambda e, t, w: ((e - t).abs() * w).sum() / w.sum().clamp_min(1.0),
    "l2": lambda e, t, w: ((e - t) ** 2 * w).sum() / w.sum().clamp_min(1.0),
    "ssim": _ssim_loss,
}


def _crops(stack: np.ndarray, rng: np.random.Generator, batch: int, crop: int) -> torch.Tensor:
    """``batch`` aligned random crops with random flips of ``stack`` (N, C, H, W): (batch, C, crop, crop)."""
    n, _, h, w = stack.shape
    out = []
    for _ in range(batch):
        i, y, x = rng.integers(n), rng.integers(h - crop + 1), rng.integers(w - crop + 1)
        part = stack[i, :, y : y + crop, x : x + crop]
        if rng.random() < 0.5:
            part = part[:, :, ::-1]
        if rng.random() < 0.5:
            part = part[:, ::-1, :]
        out.append(part)
    return torch.from_numpy(np.ascontiguousarray(np.stack(out), dtype=np.float32))


def train_student(inputs: np.ndarray, targets: np.ndarray, weights: np.ndarray, config: StudentConfig, seed: int
                  ) -> nn.Module:
    """A student trained on ``inputs`` (N, 2, H, W) normalised MRI and partner, ``targets`` (N, H, W) and
    ``weights`` (N, H, W) {0, 1}, all float32, with Adam and a cosine-decayed rate; returned in eval mode."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = make_student(config.network)
    stack = np.concatenate([inputs, targets[:, None], weights[:, None]], axis=1)
    crop = min(config.crop, *inputs.shape[2:]) // 2**LEVELS_DOWN * 2**LEVELS_DOWN
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, config.steps))
    loss_fn = LOSSES[config.loss]
    net.train()
    for _ in range(config.steps):
        batch = _crops(stack, rng, config.batch, crop)
        loss = loss_fn(net(batch[:, :2]), batch[:, 2:3], batch[:, 3:4])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    return net.eval()


def student_fusion(net: nn.Module, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A student's output for one normalised pair (H, W): float32 (H, W) in [0, 1] (padded to a multiple of 8)."""
    h, w = a.shape
    x = torch.from_numpy(np.stack([a, b]).astype(np.float32))[None]
    x = F.pad(x, (0, -w % 8, 0, -h % 8), mode="replicate")
    with torch.inference_mode():
        return net(x)[0, 0, :h, :w].clamp(0.0, 1.0).numpy()


def with_steps(settings: dict[str, StudentConfig], steps: int | None) -> dict[str, StudentConfig]:
    """``settings`` with every student's ``steps`` replaced (None keeps them)."""
    return settings if steps is None else {name: replace(c, steps=steps) for name, c in settings.items()}


def describe(config: StudentConfig) -> dict:
    """A JSON-ready dict of a student recipe."""
    return asdict(config)
