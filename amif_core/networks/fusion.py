"""The fusion backbone: a shared Restormer encoder, modality-private encoders and a decoder.

The design follows CDDFuse (Zhao et al., CVPR 2023) but runs every transformer
block at half resolution: each input is pixel-unshuffled from (1, H, W) to
(4, H/2, W/2) first, which cuts the cost by about 4x at no loss of information.
Slot 1 is the anatomical MRI, slot 2 the functional/structural partner (CT, PET
or SPECT luma).

Like CDDFuse's decoder, which adds an input image back before its output, the
decoder here predicts a residual on top of a base image, the pixel-wise maximum
of the two inputs; its last layer starts at zero, so an untrained backbone
outputs exactly the pixel-wise maximum and training only learns what to change
(edges the maximum drops, local contrast). This keeps the fusion faithful to
both sources, which is what the fidelity metrics (MI, VIF, SSIM) reward.
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
        self.to_full_res = nn.Conv2d(dim, 4 * config.head_channels, 1)
        self.head = nn.Sequential(
            nn.Conv2d(config.head_channels + 2, config.head_channels, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(config.head_channels, 1, 3, padding=1),
        )
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, mri: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        a = F.pixel_unshuffle(mri, 2)
        b = F.pixel_unshuffle(other, 2)
        shared = self.shared_encoder(self.embed(torch.cat([a, b], dim=0)))
        shared_a, shared_b = shared.chunk(2, dim=0)
        fused = self.fuse(
            torch.cat([shared_a, shared_b, self.private_mri(a), self.private_other(b)], dim=1)
        )
        features = F.pixel_shuffle(self.to_full_res(self.decoder(fused)), 2)
        residual = self.head(torch.cat([features, mri, other], dim=1))
        return (torch.maximum(mri, other) + residual).clamp(0.0, 1.0)
