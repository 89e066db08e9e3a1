"""A learned identifier remover: a small U-Net trained on leaked (protected, clean) pairs.

The attacker is assumed to have obtained some protected images together with
their clean fusions (for example from a collaborator who holds the keys) and
trains an image-to-image network to map one to the other, then applies it to
new protected images.

Network: a 3-level U-Net (16-32-64 channels by default; two 3x3 conv +
LeakyReLU(0.1) per level, max-pool down, bilinear up) predicting a residual
added to its input. Its last layer starts near zero (weights
N(0, :data:`HEAD_INIT_STD`), no bias), so training starts close to the
identity: an exactly zero start often idles on the identity for dozens of
steps, a default start adds a random offset that must first be unlearnt.

Training: random :attr:`RemoverConfig.crop` square crops with random
horizontal and vertical flips, Adam with a cosine-decayed learning rate, the
same number of steps whatever the number of pairs, everything seeded. The
loss is the Huber (smooth L1) loss with :data:`HUBER_BETA`: L1 for errors
above 0.1, quadratic below. Plain L1 stalls at the identity: the identifier
covers only about 14% of the pixels, and the median-seeking L1 gradient of all
the other, already correct pixels pins the residual at zero before the
network has learnt where the strokes are.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LEVELS_DOWN = 2  # two poolings: three resolution levels
HUBER_BETA = 0.1
HEAD_INIT_STD = 0.01


@dataclass(frozen=True)
class RemoverConfig:
    """Training hyper-parameters of the U-Net remover."""

    steps: int = 800
    batch: int = 8
    crop: int = 128
    lr: float = 1e-3
    widths: tuple[int, int, int] = (16, 32, 64)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))


class UNet(nn.Module):
    """(B, C, H, W) images -> (B, 1, H, W): their pixel-wise maximum plus a learned residual (unclamped).

    With one channel (a protected image) that is the identity plus a residual:
    the remover. With two (an MRI and its partner) it is a fusion student
    (:mod:`~amif_core.evaluation.attacks.distill`). H and W must be multiples
    of 4; :func:`remove` pads any size.
    """

    def __init__(self, widths: tuple[int, int, int] = RemoverConfig.widths, channels: int = 1) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.enc1, self.enc2, self.middle = _block(channels, w1), _block(w1, w2), _block(w2, w3)
        self.up2, self.up1 = nn.Conv2d(w3, w2, 1), nn.Conv2d(w2, w1, 1)
        self.dec2, self.dec1 = _block(2 * w2, w2), _block(2 * w1, w1)
        self.head = nn.Conv2d(w1, 1, 1)
        nn.init.normal_(self.head.weight, std=HEAD_INIT_STD)  # starts close to the identity
        nn.init.zeros_(self.head.bias)

    @staticmethod
    def _upsample(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        middle = self.middle(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(self._upsample(middle)), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(self._upsample(d2)), e1], dim=1))
        return x.amax(dim=1, keepdim=True) + self.head(d1)


def sample_crops(protected: np.ndarray, clean: np.ndarray, rng: np.random.Generator, batch: int, crop: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of aligned random crops with random flips.

    ``protected``, ``clean``: (N, H, W) float32 in [0, 1] with H, W >= ``crop``.
    Returns two (batch, 1, crop, crop) float32 tensors (protected, clean).
    """
    n, h, w = protected.shape
    pairs = []
    for _ in range(batch):
        i, y, x = rng.integers(n), rng.integers(h - crop + 1), rng.integers(w - crop + 1)
        pair = np.stack([protected[i, y : y + crop, x : x + crop], clean[i, y : y + crop, x : x + crop]])
        if rng.random() < 0.5:
            pair = pair[:, :, ::-1]
        if rng.random() < 0.5:
            pair = pair[:, ::-1, :]
        pairs.append(pair)
    stack = torch.from_numpy(np.ascontiguousarray(np.stack(pairs), dtype=np.float32))
    return stack[:, :1], stack[:, 1:]


def loss_fn(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """The training loss: mean Huber loss (beta :data:`HUBER_BETA`) of two (B, 1, h, w) tensors."""
    return F.smooth_l1_loss(estimate, clean, beta=HUBER_BETA)


def fit(net: UNet, protected: np.ndarray, clean: np.ndarray, config: RemoverConfig, rng: np.random.Generator
        ) -> list[float]:
    """Train ``net`` in place for ``config.steps`` steps; returns the training loss of every step.

    ``protected``, ``clean``: (N, H, W) float32 in [0, 1], the leaked pairs;
    crops are ``config.crop`` square, or as large as the slices allow (a
    multiple of 4) where they are smaller.
    """
    device = next(net.parameters()).device
    multiple = 2**LEVELS_DOWN
    crop = min(config.crop, *protected.shape[1:]) // multiple * multiple
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, config.steps))
    net.train()
    losses = []
    for _ in range(config.steps):
        x, y = sample_crops(protected, clean, rng, config.batch, crop)
        loss = loss_fn(net(x.to(device)), y.to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
    net.eval()
    return losses


def train_remover(protected: np.ndarray, clean: np.ndarray, config: RemoverConfig, seed: int,
                  device: torch.device | str = "cpu") -> UNet:
    """A fresh U-Net (initialised from ``seed``) trained on the leaked pairs; in eval mode.

    ``protected``, ``clean``: (N, H, W) float32 in [0, 1].
    """
    torch.manual_seed(seed)
    net = UNet(config.widths).to(device)
    fit(net, protected, clean, config, np.random.default_rng(seed))
    return net


def remove(net: UNet, image: np.ndarray) -> np.ndarray:
    """Apply the remover to one (H, W) float [0, 1] image; returns float32 (H, W) in [0, 1].

    The image is padded (edge replication) to a multiple of 4 and cropped back.
    """
    h, w = image.shape
    multiple = 2**LEVELS_DOWN
    device = next(net.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(device)
    x = F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")
    with torch.inference_mode():
        out = net(x)[0, 0, :h, :w].clamp(0.0, 1.0)
    return out.cpu().numpy()
