"""The fusion backbone: a shared Restormer encoder, modality-private encoders and a decoder.

The design follows CDDFuse (Zhao et al., CVPR 2023) but runs every transformer
block at half resolution: each input is pixel-unshuffled from (1, H, W) to
(4, H/2, W/2) first, which cuts the cost by about 4x at no loss of information.
Slot 1 is the anatomical MRI, slot 2 the functional/structural partner (CT, PET
or SPECT luma).

Two output heads (``FusionConfig.head``):

* ``"residual"`` (amif_v1/v2): like CDDFuse's decoder, which adds an input
  image back before its output, a full-resolution head predicts a free
  residual on top of the pixel-wise maximum of the two inputs; its last layer
  starts at zero, so an untrained backbone outputs exactly the maximum.
* ``"select"`` (the default since amif_v3): the network predicts no grey levels at all, only two smooth
  gain maps at half resolution, and the output is built from the sources::

      f = max(a, b) + alpha * min(a, b) + beta * (d - hp(max(a, b)))

  ``alpha`` in [0, alpha_max] keeps the weaker source where it carries signal,
  ``d`` is the source high-pass (``x - blur(x)``) of larger magnitude at each
  pixel and ``beta`` in [0, beta_max] transfers it where the maximum dropped
  that edge (beta_max 0: no edge transfer). Every output grey level is a source intensity, a fraction of one, or a
  source edge, so the fusion keeps the maximum's fidelity (MI, VIF, SSIM)
  while adding real edges and local contrast, never new texture.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from amif_core.networks.restormer import RestormerBlock


@dataclass(frozen=True)
class FusionConfig:
    """Hyper-parameters of :class:`FusionBackbone`."""

    dim: int = 24
    heads: int = 4
    shared_blocks: int = 2
    decoder_blocks: int = 2
    head_channels: int = 8
    head: str = "select"
    alpha_max: float = 0.05
    beta_max: float = 0.0

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"FusionConfig.head must be one of {HEADS}, got {self.head!r}")

    @classmethod
    def from_dict(cls, data: dict) -> "FusionConfig":
        """The configuration stored in a weights file; files written before the head
        choice existed (amif_v1, amif_v2) hold the residual head."""
        return cls(**{"head": "residual", **data})


HEADS = ("residual", "select")
BETA_BIAS = -4.0  # the detail gain starts near 0 (sigmoid(-4) = 0.018 of beta_max)
DETAIL_WINDOW = 5  # box blur of the high-pass, pixels


def _conv_stack(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1),
        nn.LeakyReLU(0.1),
        nn.Conv2d(out_ch, out_ch, 3, padding=1),
    )


class FusionBackbone(nn.Module):
    """Fuses an MRI slice with a CT/PET/SPECT slice into one clean image ``f``.

    Inputs and output are float tensors of shape (B, 1, H, W) with values in
    [0, 1]; H and W must be even (callers pad).
    """

    def __init__(self, config: FusionConfig = FusionConfig()) -> None:
        super().__init__()
        dim = config.dim
        self.embed = nn.Conv2d(4, dim, 3, padding=1)
        self.shared_encoder = nn.Sequential(
            *[RestormerBlock(dim, config.heads) for _ in range(config.shared_blocks)]
        )
        self.private_mri = _conv_stack(4, dim)
        self.private_other = _conv_stack(4, dim)
        self.fuse = nn.Conv2d(4 * dim, dim, 1)
        self.decoder = nn.Sequential(
            *[RestormerBlock(dim, config.heads) for _ in range(config.decoder_blocks)]
        )
        self.head_kind = config.head
        if config.head == "residual":
            self.to_full_res = nn.Conv2d(dim, 4 * config.head_channels, 1)
            self.head = nn.Sequential(
                nn.Conv2d(config.head_channels + 2, config.head_channels, 3, padding=1),
                nn.LeakyReLU(0.1),
                nn.Conv2d(config.head_channels, 1, 3, padding=1),
            )
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)
        else:
            self.alpha_max, self.beta_max = config.alpha_max, config.beta_max
            self.gains = nn.Conv2d(dim, 2, 1)
            nn.init.zeros_(self.gains.weight)
            with torch.no_grad():
                self.gains.bias.copy_(torch.tensor([0.0, BETA_BIAS]))

    def forward(self, mri: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        a = F.pixel_unshuffle(mri, 2)
        b = F.pixel_unshuffle(other, 2)
        shared = self.shared_encoder(self.embed(torch.cat([a, b], dim=0)))
        shared_a, shared_b = shared.chunk(2, dim=0)
        fused = self.fuse(
            torch.cat([shared_a, shared_b, self.private_mri(a), self.private_other(b)], dim=1)
        )
        decoded = self.decoder(fused)
        if self.head_kind == "select":
            logits = F.interpolate(pointwise(self.gains, decoded), scale_factor=2, mode="bilinear",
                                   align_corners=False)
            return select_fusion(mri, other, logits, self.alpha_max, self.beta_max)
        features = F.pixel_shuffle(self.to_full_res(decoded), 2)
        residual = self.head(torch.cat([features, mri, other], dim=1))
        return (torch.maximum(mri, other) + residual).clamp(0.0, 1.0)


def pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """The 1x1 convolution ``conv`` of ``x`` (B, C, H, W), computed as a matrix product over the channels.

    oneDNN's CPU kernel for a 1x1 convolution with few output channels sums in
    an order that depends on the thread count, which moved the gains by up to
    1.5e-5 between 1 and 2 threads and so the key's codes by one step; the
    matrix product sums each output in one thread. Returns (B, O, H, W).
    """
    return torch.einsum("bchw,oc->bohw", x, conv.weight[:, :, 0, 0]) + conv.bias[:, None, None]


def high_pass(x: torch.Tensor) -> torch.Tensor:
    """``x`` minus its DETAIL_WINDOW box blur (replicate padding); (B, 1, H, W)."""
    pad = DETAIL_WINDOW // 2
    return x - F.avg_pool2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), DETAIL_WINDOW, stride=1)


def select_fusion(mri: torch.Tensor, other: torch.Tensor, logits: torch.Tensor, alpha_max: float,
                  beta_max: float) -> torch.Tensor:
    """The ``"select"`` head's output from the sources and the gain logits.

    ``mri``, ``other``: (B, 1, H, W) in [0, 1]; ``logits``: (B, 2, H, W), the
    pre-sigmoid alpha and beta, scaled to [0, alpha_max] and [0, beta_max].
    Returns (B, 1, H, W) in [0, 1].
    """
    base = torch.maximum(mri, other)
    fused = base + alpha_max * torch.sigmoid(logits[:, 0:1]) * torch.minimum(mri, other)
    if beta_max > 0:
        hp_a, hp_b = high_pass(mri), high_pass(other)
        detail = torch.where(hp_a.abs() >= hp_b.abs(), hp_a, hp_b) - high_pass(base)
        fused = fused + beta_max * torch.sigmoid(logits[:, 1:2]) * detail
    return fused.clamp(0.0, 1.0)
