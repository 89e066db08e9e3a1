"""AMIFNet: the fusion backbone, CCWM and C-SAMIC wired together.

Tensor-level only: shapes are (B, 1, H, W) for images and (B, 4, H/2, W/2) for
key bands, with H and W multiples of 8 (the inference engine pads). Values of
images are in [0, 1], except the raw protected image, which the coupling may
push slightly outside (the engine clips it and keeps the difference in the key).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from amif_core.networks.ccwm import CCWM, CCWMConfig
from amif_core.networks.csamic import CSAMIC, CouplingConfig
from amif_core.networks.fusion import FusionBackbone, FusionConfig
from amif_core.transforms.wavelet import haar_dwt, haar_idwt

PAD_MULTIPLE = 8


@dataclass(frozen=True)
class AMIFConfig:
    """Architecture of the whole model; stored in the weights file."""

    fusion: FusionConfig = field(default_factory=FusionConfig)
    ccwm: CCWMConfig = field(default_factory=CCWMConfig)
    coupling: CouplingConfig = field(default_factory=CouplingConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AMIFConfig":
        return cls(
            fusion=FusionConfig(**data["fusion"]),
            ccwm=CCWMConfig(**data["ccwm"]),
            coupling=CouplingConfig(**data["coupling"]),
        )


class AMIFNet(nn.Module):
    """The authorizable fusion model."""

    def __init__(self, config: AMIFConfig = AMIFConfig()) -> None:
        super().__init__()
        self.config = config
        self.backbone = FusionBackbone(config.fusion)
        self.ccwm = CCWM(config.ccwm)
        self.csamic = CSAMIC(config.coupling)

    def fuse(self, mri: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """Clean fusion f, (B, 1, H, W) in [0, 1]."""
        return self.backbone(mri, other)

    def protect(self, fused: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(f, m) -> (raw protected image, key bands, ink).

        The protected image is IDWT(y1) and the key is y2 of the coupling run
        on (DWT(f), DWT(w)) with w from CCWM.
        """
        watermark, ink = self.ccwm(fused, mask)
        y1, y2 = self.csamic(haar_dwt(fused), haar_dwt(watermark))
        return haar_idwt(y1), y2, ink

    def unlock(self, protected: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """Exact inverse of :meth:`protect` for the image: (raw protected, key) -> f (unclipped)."""
        x1, _ = self.csamic.inverse(haar_dwt(protected), key)
        return haar_idwt(x1)
