"""Key-only attacks: the attacker holds a key file and the public code and weights, not the image.

The key file's header says where the identifier lies (its text, style and
offsets: the mask is public), and its payload holds the stored codes and
their per-band scales, both under the image's pad. Without the image the
attacker reads the codes at a unit scale (codes / 32767). The attacks:

* **flow inverse from a blank image** (:func:`blank_flow_inverse`): take the
  stored codes as the flow's y2, condition the public flow on the composite
  of a blank (all-zero) image, and invert it;
* **learned, from the key** (:func:`key_view`): a U-Net trained on the keys and
  clean fusions of the training patients, fed the stored codes laid out as an
  image, against the same U-Net fed only the mask
  (:func:`blank_view`): inpainting the mask region from a blank image.

Each attack has a control that is the same attack run on a key whose codes
are fresh uniform random words on the same support (the "random" wrong key of
:func:`amif_core.evaluation.attacks.wrong_keys.wrong_key`): what anyone can make from the
public header. Padded codes are uniform words
too, so the attack on the true key and its control see inputs of the same
distribution, and the control measures what the attack gets from the support
and from optimisation alone. If the key alone says nothing about the image,
the attack on it does no better than its control.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from amif_core.constants import padded
from amif_core.inference.model import AMIFModel
from amif_core.key.codec import CODE_MAX, dequantise, plain_scale, support_masks
from amif_core.key.core import Key
from amif_core.networks.wavelet import haar_idwt


def _stored_bands(model: AMIFModel, key: Key) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The stored codes of a 2D key on its support at a unit scale, as the flow's y2 would be: (1, 4, hp/2, wp/2).

    The true scale is under the pad; a key of format 4 or earlier holds it in the clear, and then it is used."""
    h, w = key.shape[-2:]
    hp, wp = padded(h), padded(w)
    mask = model.identifier_mask(key).reshape(1, h, w)
    support = support_masks(mask, (hp, wp))[0]
    count = int(support.sum())
    bands = np.zeros((1, 4, hp // 2, wp // 2), dtype=np.float32)
    if key.scale_padded:
        origin, step = np.zeros((1, 4), np.float32), np.full((1, 4), 1.0 / CODE_MAX, np.float32)
    else:
        origin, step = plain_scale(key.code_origin, key.code_step, None)
    for band in range(4):
        bands[0, band][support] = dequantise(key.codes[band * count : (band + 1) * count], origin[0, band],
                                             step[0, band])
    return bands, mask[0], h, w


def key_view(model: AMIFModel, key: Key) -> np.ndarray:
    """A 2D key's stored codes as an image: IDWT of the dequantised bands, rescaled to [0, 1]; (H, W) float32."""
    bands, _, h, w = _stored_bands(model, key)
    image = haar_idwt(torch.from_numpy(bands))[0, 0, :h, :w].numpy()
    low, high = float(image.min()), float(image.max())
    return ((image - low) / (high - low) if high > low else np.zeros_like(image)).astype(np.float32)


def blank_view(model: AMIFModel, key: Key) -> np.ndarray:
    """What the header alone shows: the identifier mask of a 2D key, (H, W) float32 {0, 1}."""
    return model.identifier_mask(key).reshape(key.shape[-2:]).astype(np.float32)


def blank_flow_inverse(model: AMIFModel, key: Key) -> np.ndarray:
    """Invert the public flow on the stored codes, conditioned on a blank image's composite; (H, W) float32 in [0, 1]."""
    bands, mask, h, w = _stored_bands(model, key)
    hp, wp = bands.shape[2] * 2, bands.shape[3] * 2
    mask_t = F.pad(torch.from_numpy(mask.astype(np.float32))[None, None], (0, wp - w, 0, hp - h), mode="replicate")
    mask_t = mask_t.to(model.device)
    blank = torch.zeros_like(mask_t)
    with torch.inference_mode():
        composite = torch.where(mask_t > 0, model.net.ccwm.ink(blank, mask_t), blank)
        estimate = model.net.unlock(composite, torch.from_numpy(bands).to(model.device), mask_t)
    return np.clip(estimate[0, 0, :h, :w].cpu().numpy(), 0.0, 1.0)

