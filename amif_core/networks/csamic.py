"""C-SAMIC: the wavelet-domain invertible coupling that hides the clean fusion behind a key.

Both branches live in the one-level Haar domain (4 channels at half
resolution). Branch 1 starts as DWT(clean fusion f), branch 2 as DWT(watermark
w). Each HiNet-style affine coupling block maps (x1, x2) to

    y1 = x1 + phi(x2)
    y2 = x2 * exp(c * tanh(rho(y1) / 2)) + eta(y1)

which is exactly invertible:

    x2 = (y2 - eta(y1)) * exp(-c * tanh(rho(y1) / 2))
    x1 = y1 - phi(x2)

After the stack, IDWT(y1) is the protected image and y2 is the key.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class CouplingConfig:
    """Hyper-parameters of :class:`CSAMIC`."""

    blocks: int = 6
    hidden: int = 16
    clamp: float = 2.0


class _Subnet(nn.Sequential):
    """Three 3x3 convs, 4 -> hidden -> hidden -> 4; the last one starts at zero."""

    def __init__(self, hidden: int) -> None:
        super().__init__(
            nn.Conv2d(4, hidden, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, 4, 3, padding=1),
        )
        nn.init.zeros_(self[-1].weight)
        nn.init.zeros_(self[-1].bias)


class AffineCouplingBlock(nn.Module):
    """One invertible block on a pair of (B, 4, h, w) float tensors."""

    def __init__(self, hidden: int, clamp: float) -> None:
        super().__init__()
        self.clamp = clamp
        self.phi = _Subnet(hidden)
        self.rho = _Subnet(hidden)
        self.eta = _Subnet(hidden)

    def _log_scale(self, y1: torch.Tensor) -> torch.Tensor:
        return self.clamp * torch.tanh(self.rho(y1) / 2)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y1 = x1 + self.phi(x2)
        y2 = x2 * torch.exp(self._log_scale(y1)) + self.eta(y1)
        return y1, y2

    def inverse(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x2 = (y2 - self.eta(y1)) * torch.exp(-self._log_scale(y1))
        x1 = y1 - self.phi(x2)
        return x1, x2


class CSAMIC(nn.Module):
    """A stack of :class:`AffineCouplingBlock` with an exact inverse.

    ``forward`` maps (DWT(f), DWT(w)) to (y1, y2); ``inverse`` maps (y1, y2)
    back. All tensors are float32 of shape (B, 4, h, w).
    """

    def __init__(self, config: CouplingConfig = CouplingConfig()) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            AffineCouplingBlock(config.hidden, config.clamp) for _ in range(config.blocks)
        )

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for block in self.blocks:
            x1, x2 = block(x1, x2)
        return x1, x2

    def inverse(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for block in reversed(self.blocks):
            y1, y2 = block.inverse(y1, y2)
        return y1, y2
