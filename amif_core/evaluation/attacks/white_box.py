"""White-box attacks: the attacker holds the released image ``p`` and the public code and weights, no key.

1. **Exact mask recovery.** Estimate the strokes from ``p``
   (:func:`~amif_core.evaluation.attacks.mask_estimation.estimate_mask`), then find the
   crop offset of the public identifier canvas that best matches the estimate
   by FFT cross-correlation (:func:`locate_offset`). With the default
   identifier this recovers the exact mask.
2. **Forward-map solve.** Solve ``net.protect(f', m) == p`` for ``f'`` with
   L-BFGS through the public weights, from Telea inpainting under the dilated
   mask (:func:`solve_forward`). Whatever of the covered content ``p`` still
   depends on, the solver can pull back out.
3. **Flow mean.** Compute the key's one-time pad from ``p`` (anyone holding
   ``p`` can) and unlock with the codes of y2 = 0, the flow's most likely key:
   the public flow used as an inpainter (:func:`flow_mean_unlock`).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from amif_core.constants import PAD_MULTIPLE, padded
from amif_core.evaluation.attacks import inpainting, mask_estimation, require
from amif_core.inference.model import AMIFModel
from amif_core.key.codec import CODE_MAX, apply_pad, pad_seed, support_masks
from amif_core.key.core import Key
from amif_core.networks.amif import AMIFNet
from amif_core.transforms.identifier import (
    IdentifierStyle,
    crop_mask,
    render_identifier_canvas,
)

signal = require("scipy.signal")

EVALUATIONS = 1200


def locate_offset(estimated: np.ndarray, canvas: np.ndarray) -> tuple[int, int]:
    """The (row, col) crop offset of ``canvas`` (2H, 2W) {0, 1} that best matches ``estimated`` (H, W) {0, 1}.

    Scores every valid offset at once: the cross-correlation of the
    zero-mean canvas with the estimate, so a dense part of the canvas does
    not win by density alone.
    """
    centred = canvas.astype(np.float64) - canvas.mean()
    scores = signal.fftconvolve(centred, np.asarray(estimated, np.float64)[::-1, ::-1], mode="valid")
    row, col = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(row), int(col)


def recover_mask(protected: np.ndarray, identifier: str, style: IdentifierStyle = IdentifierStyle()
                 ) -> np.ndarray:
    """The identifier mask of a protected (H, W) image from the image alone: uint8 {0, 1} (H, W).

    ``identifier`` and ``style``: the public identifier (it is written on the image).
    """
    h, w = protected.shape
    canvas = render_identifier_canvas(identifier, h, w, style)
    offset = locate_offset(mask_estimation.estimate_mask(protected), canvas)
    return np.ascontiguousarray(crop_mask(canvas, offset, h, w))


def _padded(image: np.ndarray) -> tuple[torch.Tensor, int, int]:
    h, w = image.shape
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return F.pad(tensor, (0, -w % PAD_MULTIPLE, 0, -h % PAD_MULTIPLE), mode="replicate"), h, w


def solve_forward(net: AMIFNet, protected: np.ndarray, mask: np.ndarray, evaluations: int = EVALUATIONS
                  ) -> tuple[np.ndarray, int]:
    """Solve ``net.protect(f', mask) == protected`` for ``f'`` by L-BFGS; returns (f' (H, W) float32 in [0, 1], evaluations).

    ``protected``: (H, W) float [0, 1]; ``mask``: (H, W) {0, 1}. Starts from
    Telea inpainting under the dilated mask and runs until at least
    ``evaluations`` forward-backward passes have been made.
    """
    covered = inpainting.dilate(mask) > 0
    start, h, w = _padded(np.where(covered, inpainting.inpaint_telea(protected, mask), protected))
    target = torch.from_numpy(np.ascontiguousarray(protected, dtype=np.float32))
    mask_t, _, _ = _padded(np.asarray(mask, np.float32))
    x = start.clone().requires_grad_(True)
    optimiser = torch.optim.LBFGS([x], lr=1.0, max_iter=evaluations, max_eval=evaluations, history_size=20,
                                  tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    count = 0

    def closure() -> torch.Tensor:
        nonlocal count
        count += 1
        optimiser.zero_grad()
        image = net.protect(x.clamp(0.0, 1.0), mask_t)[0][0, 0, :h, :w]
        loss = ((image - target) ** 2).sum()
        loss.backward()
        return loss

    net.requires_grad_(False)
    while count < evaluations:
        optimiser.step(closure)
    return x.detach()[0, 0, :h, :w].clamp(0.0, 1.0).numpy(), count


def flow_mean_unlock(model: AMIFModel, protected: np.ndarray, key: Key) -> np.ndarray:
    """Unlock ``protected`` (H, W) with the codes of y2 = 0, padded as the true key's would be.

    Uses only what the attacker has: the image (for the pad), the key's
    public header (mask placement; the scale of the codes is taken from the
    true key, unpadded with the image, the most favourable choice for the attacker). Returns (H, W) float32 in [0, 1].
    """
    h, w = protected.shape
    hp, wp = padded(h), padded(w)
    support = support_masks(model.identifier_mask(key).reshape(1, h, w), (hp, wp))[0]
    count = int(support.sum())
    seed = pad_seed(protected)
    origin, step = key.scales(seed)
    plain = np.concatenate([
        np.full(count, np.clip(np.rint(-origin[0, band] / step[0, band]) if step[0, band] > 0 else 0,
                               -CODE_MAX, CODE_MAX), dtype=np.int16)
        for band in range(4)])
    forged = dataclasses.replace(key, codes=apply_pad(plain, seed, 0, +1))
    return model.unlock(protected, forged)
