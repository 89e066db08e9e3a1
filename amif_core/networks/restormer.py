"""Restormer building blocks (Zamir et al., CVPR 2022), as used by CDDFuse.

A block is channel LayerNorm -> multi-Dconv head *transposed* attention (MDTA:
attention over channels, so its cost is linear in the number of pixels) ->
channel LayerNorm -> gated depthwise-conv feed-forward network (GDFN), each with
a residual connection. All modules take and return float tensors of shape
(B, C, H, W).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) tensor, per pixel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class TransposedAttention(nn.Module):
    """MDTA: multi-head attention whose attention map is (C/heads x C/heads).

    Queries, keys and values come from a 1x1 conv followed by a 3x3 depthwise
    conv; queries and keys are L2-normalised along the pixel axis and scaled by
    a learned per-head temperature.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dw = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=False)
        self.proj = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv_dw(self.qkv(x))
        # Pixels-first view (b, h*w, 3, heads, c/heads): free for the channels_last
        # tensors of inference, which a (b, heads, c/heads, h*w) view would copy.
        q, k, v = qkv.permute(0, 2, 3, 1).reshape(b, h * w, 3, self.heads, c // self.heads).unbind(dim=2)
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        attn = (torch.einsum("bnhd,bnhe->bhde", q, k) * self.temperature).softmax(dim=-1)
        out = torch.einsum("bhde,bnhe->bnhd", attn, v).reshape(b, h, w, c)
        return self.proj(out.permute(0, 3, 1, 2))


class GatedFeedForward(nn.Module):
    """GDFN: 1x1 expansion, 3x3 depthwise conv, GELU gate, 1x1 projection."""

    def __init__(self, dim: int, expansion: float = 2.0) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class RestormerBlock(nn.Module):
    """Pre-norm transformer block: x + MDTA(LN(x)), then x + GDFN(LN(x))."""

    def __init__(self, dim: int, heads: int, ffn_expansion: float = 2.0) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim)
        self.attn = TransposedAttention(dim, heads)
        self.norm2 = ChannelLayerNorm(dim)
        self.ffn = GatedFeedForward(dim, ffn_expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))
