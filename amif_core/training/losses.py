"""Training losses of AMIF.

Fusion (stage 1, as in CDDFuse): intensity-max, Sobel gradient-max and SSIM.
Protection (stage 2): CCWM ink contrast and the likelihood that whitens the
key. All tensors are (B, 1, H, W) float in [0, 1]
unless stated otherwise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|grad x| as |Sobel_x| + |Sobel_y| with replicate padding; (B, 1, H, W)."""
    kernel = torch.stack([_SOBEL_X, _SOBEL_X.t()]).unsqueeze(1).to(x)
    grad = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel)
    return grad.abs().sum(dim=1, keepdim=True)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM (11x11 Gaussian window, sigma 1.5, data range 1) per batch item, shape (B,)."""
    window = _gaussian_window().to(x)
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
    sxx = F.conv2d(x * x, window) - mu_x**2
    syy = F.conv2d(y * y, window) - mu_y**2
    sxy = F.conv2d(x * y, window) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return value.mean(dim=(1, 2, 3))


def _correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(dim=(1, 2, 3), keepdim=True)
    y = y - y.mean(dim=(1, 2, 3), keepdim=True)
    return (x * y).sum(dim=(1, 2, 3)) / ((x * x).sum(dim=(1, 2, 3)) * (y * y).sum(dim=(1, 2, 3)) + 1e-8).sqrt()


def difference_correlation(fused: torch.Tensor, mri: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Sum of the correlations of differences, corr(a, f - b) + corr(b, f - a), per batch item (B,).

    It is high when the fusion carries each source's content on top of the
    other, not one source instead of the other.
    """
    return _correlation(mri, fused - other) + _correlation(other, fused - mri)


def fusion_loss(
    fused: torch.Tensor, mri: torch.Tensor, other: torch.Tensor, intensity_weight: float = 1.0,
    grad_weight: float = 10.0, ssim_weight: float = 1.0, scd_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """CDDFuse-style fusion loss plus an optional difference-correlation term; returns the terms and ``total``."""
    intensity = F.l1_loss(fused, torch.maximum(mri, other))
    gradient = F.l1_loss(sobel_magnitude(fused), torch.maximum(sobel_magnitude(mri), sobel_magnitude(other)))
    structure = 1 - 0.5 * (ssim(fused, mri) + ssim(fused, other)).mean()
    correlation = 2 - difference_correlation(fused, mri, other).mean()
    total = intensity_weight * intensity + grad_weight * gradient + ssim_weight * structure + scd_weight * correlation
    return {"total": total, "intensity": intensity, "gradient": gradient, "ssim": structure, "scd": correlation}


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ``mask`` > 0 per batch item, (B,); 0 where the mask is empty."""
    weight = mask.expand_as(x)
    return (x * weight).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3)).clamp_min(1.0)


def ink_contrast_loss(ink: torch.Tensor, fused: torch.Tensor, mask: torch.Tensor, margin: float = 0.45) -> torch.Tensor:
    """Hinge asking every stroke pixel to differ from the content by at least ``margin``."""
    return masked_mean(F.relu(margin - (ink - fused).abs()), mask).mean()


def key_likelihood_loss(key: torch.Tensor, log_det: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the key under a standard normal, per key value on the support.

    ``key``: (B, 4, h, w) flow output, zero off the support; ``log_det``: (B,)
    the flow's log|det| on the support; ``support``: (B, 1, h, w) in {0, 1}.
    Minimising it whitens the key (the constant 0.5 log(2 pi) is left out).
    """
    count = (4 * support.sum(dim=(1, 2, 3))).clamp_min(1.0)
    return ((0.5 * (key**2).sum(dim=(1, 2, 3)) - log_det) / count).mean()
