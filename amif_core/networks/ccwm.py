"""CCWM: the content-aware watermark module.

Given the clean fusion ``f`` and the identifier mask ``m`` it predicts an ink
level for every stroke that contrasts with the strokes' surroundings (bright
ink on dark background, dark ink on bright tissue), and returns the watermark

    w = m * (ink - f)

i.e. what must be added to ``f`` so that the strokes show the ink.

The ink sees only the pixels *outside* the strokes: its input is a normalised
convolution (a masked average) of ``f * (1 - m)`` at a quarter of the
resolution, together with the fraction of uncovered pixels. Because ``m`` is
exactly 0 or 1, the pixels under the strokes are multiplied by 0 before any
learned layer sees them, so the ink, and with it the released image, does not
depend on them at all (not even through a coarse average).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

POOL = 4
EPSILON = 1e-3


@dataclass(frozen=True)
class CCWMConfig:
    """Hyper-parameters of :class:`CCWM`; ink is kept in [ink_floor, 1 - ink_floor]."""

    hidden: int = 16
    ink_floor: float = 0.04


def surroundings(f: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Masked local average of the uncovered pixels and the uncovered fraction.

    ``f``: (B, 1, H, W) float in [0, 1]; ``m``: (B, 1, H, W) in {0, 1}; H and W
    multiples of 4. Returns (B, 2, H/4, W/4): channel 0 the mean of ``f`` over
    the uncovered pixels of each 12x12 neighbourhood (0 where none is
    uncovered), channel 1 the uncovered fraction of each 4x4 cell. Neither
    channel depends on the values of ``f`` where ``m`` is 1.
    """
    open_ = 1 - m
    total = F.avg_pool2d(f * open_, POOL)
    weight = F.avg_pool2d(open_, POOL)
    wide_total = F.avg_pool2d(total, 3, stride=1, padding=1, count_include_pad=False)
    wide_weight = F.avg_pool2d(weight, 3, stride=1, padding=1, count_include_pad=False)
    return torch.cat([wide_total / (wide_weight + EPSILON), weight], dim=1)


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
        """Ink level per pixel, (B, 1, H, W) in [ink_floor, 1 - ink_floor]; a function of ``f * (1 - m)`` and ``m``."""
        logits = F.interpolate(self.body(surroundings(f, m)), scale_factor=POOL, mode="bilinear", align_corners=False)
        return self.ink_floor + (1 - 2 * self.ink_floor) * torch.sigmoid(logits)

    def forward(self, f: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ink = self.ink(f, m)
        return m * (ink - f), ink
