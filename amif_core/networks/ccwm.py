"""CCWM: the content-aware watermark module.

Given the clean fusion ``f`` and the identifier mask ``m`` it predicts, at a
quarter of the resolution, an ink level for every stroke that contrasts with
the local content (bright ink on dark background, dark ink on bright tissue),
and returns the watermark

    w = m * (ink - f)

i.e. what must be added to ``f`` so that the strokes show the ink. ``w``
carries the content under the identifier, which is why it ends up in the key
and the released image does not contain it. Working at quarter resolution makes
the ink follow local brightness, not pixel detail, so the released strokes say
almost nothing about the pixels they cover.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class CCWMConfig:
    """Hyper-parameters of :class:`CCWM`; ink is kept in [ink_floor, 1 - ink_floor]."""

    hidden: int = 16
    ink_floor: float = 0.04


class CCWM(nn.Module):
    """Content-aware watermark: (f, m) -> (w, ink), all (B, 1, H, W) float32.

    ``f`` is in [0, 1], ``m`` in {0, 1}; ``ink`` is in [ink_floor, 1 - ink_floor]
    and ``w`` = m * (ink - f) is in [-1, 1]. H and W must be multiples of 4.
    """

    def __init__(self, config: CCWMConfig = CCWMConfig()) -> None:
        super().__init__()
        self.ink_floor = config.ink_floor
        h = config.hidden
        self.body = nn.Sequential(
            nn.Conv2d(2, h, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(h, h, 3, padding=2, dilation=2),
            nn.LeakyReLU(0.1),
            nn.Conv2d(h, 1, 3, padding=1),
        )

    def ink(self, f: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Ink level per pixel, (B, 1, H, W) in [ink_floor, 1 - ink_floor]."""
        context = F.avg_pool2d(torch.cat([f, m], dim=1), 4)
        logits = F.interpolate(self.body(context), scale_factor=4, mode="bilinear", align_corners=False)
        return self.ink_floor + (1 - 2 * self.ink_floor) * torch.sigmoid(logits)

    def forward(self, f: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ink = self.ink(f, m)
        return m * (ink - f), ink
