"""AMIFNet: the fusion backbone, CCWM and C-SAMIC wired together.

Tensor-level only: shapes are (B, 1, H, W) for images and masks and
(B, 4, H/2, W/2) for key bands, with H and W multiples of 8 (the inference
engine pads). Images are in [0, 1], masks in {0, 1}.

The protected image is the composite ``where(m, ink, f)``: equal to ``f``
outside the strokes, bit for bit, and equal to the ink on them, which CCWM
computes from the uncovered pixels only. So the protected image does not
change at all when ``f`` changes under the strokes. The key is C-SAMIC's
flow of DWT(w), w = m * (ink - f), conditioned on DWT(protected image).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from amif_core.networks.ccwm import CCWM, CCWMConfig
from amif_core.networks.csamic import CSAMIC, CouplingConfig, key_support
from amif_core.networks.fusion import FusionBackbone, FusionConfig
from amif_core.networks.wavelet import haar_dwt, haar_idwt


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
            fusion=FusionConfig.from_dict(data["fusion"]),
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
        """(f, m) -> (protected image, key bands, ink).

        The protected image is the composite, in [0, 1] when ``f`` is; the key
        bands are zero outside :func:`~amif_core.networks.csamic.key_support`.
        """
        watermark, ink = self.ccwm(fused, mask)
        protected = torch.where(mask > 0, ink, fused)
        key, _ = self.key_flow(protected, watermark, mask)
        return protected, key, ink

    def key_flow(self, protected: torch.Tensor, watermark: torch.Tensor, mask: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """C-SAMIC's key branch: (protected image, w, m) -> (key bands, log|det| per item (B,))."""
        return self.csamic(haar_dwt(protected), haar_dwt(watermark), key_support(mask))

    def unlock(self, protected: torch.Tensor, key: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Exact inverse of :meth:`protect` for the image: (protected, key, m) -> f (unclipped).

        ``protected`` may be the engine's replicate-padded copy of the released
        image: its strokes are re-inked first (a no-op inside the image), which
        rebuilds the padding exactly as :meth:`protect` made it.
        """
        protected = torch.where(mask > 0, self.ccwm.ink(protected, mask), protected)
        watermark = haar_idwt(self.csamic.inverse(haar_dwt(protected), key, key_support(mask)))
        return protected - watermark
