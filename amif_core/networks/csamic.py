"""C-SAMIC: the wavelet-domain invertible coupling that turns (f, w) into (protected image, key).

Both branches live in the one-level Haar domain (4 channels at half
resolution). The image branch is fixed, not learned::

    y1 = DWT(f) + DWT(w)          # = DWT((1 - m) f + m ink), Haar being linear

so the protected image IDWT(y1) is exactly the composite. All the learning is
on the key branch, an invertible conditional flow T::

    y2 = T(DWT(w) | y1, S)        # key
    DWT(w) = T^-1(y2 | y1, S)     # unlock, then f = IDWT(y1) - w

Nothing computed from the key branch is ever added to the image branch, so
the released image carries nothing of what the identifier covers.

T is a stack of affine coupling blocks over a channel split of the 4 key
bands. Block k keeps bands ``a`` and maps bands ``b``::

    y_b = S * (x_b * exp(c * tanh(rho(x_a, y1, S) / 2)) + eta(x_a, S))

The scale ``rho`` sees the image branch (so the flow can whiten the key by
the local content), the shift ``eta`` does not: T^-1 at a blank or guessed key
is then no image-dependent prediction, i.e. the public flow is no inpainter.
``S`` is the key support, the 2x2 blocks that touch the identifier; outside
it DWT(w) is exactly 0 and so is y2, so only the support is stored. Training
maximises the likelihood of y2 under a standard normal on the support
(:meth:`CSAMIC.forward` returns the log-determinant for that).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

BANDS = 4
SPLITS = ((0,), (1, 2, 3))  # LL against the three detail bands, alternating per block


@dataclass(frozen=True)
class CouplingConfig:
    """Hyper-parameters of :class:`CSAMIC`."""

    blocks: int = 4
    hidden: int = 16
    clamp: float = 2.0


def key_support(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) mask in {0, 1} -> (B, 1, H/2, W/2) float {0, 1}: the 2x2 blocks it touches."""
    return F.max_pool2d(mask, 2)


def _subnet(cin: int, cout: int, hidden: int) -> nn.Sequential:
    """Three 3x3 convs, cin -> hidden -> hidden -> cout; the last one starts at zero."""
    net = nn.Sequential(
        nn.Conv2d(cin, hidden, 3, padding=1),
        nn.LeakyReLU(0.1),
        nn.Conv2d(hidden, hidden, 3, padding=1),
        nn.LeakyReLU(0.1),
        nn.Conv2d(hidden, cout, 3, padding=1),
    )
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


class ConditionalCouplingBlock(nn.Module):
    """One invertible block on (B, 4, h, w) key bands, conditioned on y1 (B, 4, h, w) and S (B, 1, h, w)."""

    def __init__(self, kept: tuple[int, ...], mapped: tuple[int, ...], hidden: int, clamp: float) -> None:
        super().__init__()
        self.kept, self.mapped, self.clamp = list(kept), list(mapped), clamp
        self.rho = _subnet(len(kept) + BANDS + 1, len(mapped), hidden)
        self.eta = _subnet(len(kept) + 1, len(mapped), hidden)

    def _affine(self, x_a: torch.Tensor, y1: torch.Tensor, support: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_scale = self.clamp * torch.tanh(self.rho(torch.cat([x_a, y1, support], dim=1)) / 2)
        return log_scale, self.eta(torch.cat([x_a, support], dim=1))

    def _join(self, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        out = torch.empty(x_a.shape[0], BANDS, *x_a.shape[2:], dtype=x_a.dtype, device=x_a.device)
        out[:, self.kept], out[:, self.mapped] = x_a, x_b
        return out

    def forward(self, x: torch.Tensor, y1: torch.Tensor, support: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y1, S) -> (y, log|det| per item (B,)), counted on the support only."""
        x_a = x[:, self.kept]
        log_scale, shift = self._affine(x_a, y1, support)
        y_b = support * (x[:, self.mapped] * torch.exp(log_scale) + shift)
        return self._join(x_a, y_b), (support * log_scale).sum(dim=(1, 2, 3))

    def inverse(self, y: torch.Tensor, y1: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        y_a = y[:, self.kept]
        log_scale, shift = self._affine(y_a, y1, support)
        return self._join(y_a, support * (y[:, self.mapped] - shift) * torch.exp(-log_scale))


class CSAMIC(nn.Module):
    """The fixed image branch and the learned key-branch flow, with an exact inverse.

    Tensors are float32: DWT bands (B, 4, h, w), support S (B, 1, h, w) in {0, 1}.
    """

    def __init__(self, config: CouplingConfig = CouplingConfig()) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ConditionalCouplingBlock(*(SPLITS if k % 2 == 0 else SPLITS[::-1]), config.hidden, config.clamp)
            for k in range(config.blocks)
        )

    def forward(self, y1: torch.Tensor, x2: torch.Tensor, support: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(y1, DWT(w), S) -> (y2, log|det| of T per item (B,)).

        ``y1`` is the fixed image branch, DWT of the composite; the caller
        computes it from the composite itself rather than as DWT(f) + DWT(w),
        so that not even float rounding of f under the strokes reaches it.
        """
        log_det = torch.zeros(x2.shape[0], dtype=x2.dtype, device=x2.device)
        for block in self.blocks:
            x2, block_log_det = block(x2, y1, support)
            log_det = log_det + block_log_det
        return x2, log_det

    def inverse(self, y1: torch.Tensor, y2: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        """(y1, y2, S) -> DWT(w)."""
        for block in reversed(self.blocks):
            y2 = block.inverse(y2, y1, support)
        return y2
