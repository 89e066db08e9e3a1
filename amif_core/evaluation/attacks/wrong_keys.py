"""Wrong-key attacks: unlock the protected image with a key that is not its own.

The fingerprint check would refuse every such key, so it is skipped
(``model.unlock(..., verify=False)``) to measure what the network itself gives
away. Keys come from :func:`amif_core.evaluation.fusion.wrong_key`:

* random: uniformly random stored codes;
* zero: all-zero stored codes;
* shuffled: the true stored codes, permuted;
* other_slice: the whole key of another slice of the same patient;
* other_volume: the whole key of a slice of another patient (another volume
  of the same shape).
"""
from __future__ import annotations

import numpy as np

from amif_core.evaluation.fusion import wrong_key
from amif_core.inference.model import AMIFModel
from amif_core.key.core import Key

KINDS = ("random", "zero", "shuffled", "other_slice", "other_volume")


def forced_unlock(model: AMIFModel, protected: np.ndarray, key: Key, kind: str, other: Key | None,
                  rng: np.random.Generator) -> np.ndarray:
    """Unlock ``protected`` with the wrong key of ``kind`` (one of :data:`KINDS`) made from ``key``.

    ``protected``: (H, W) float32 in [0, 1], as returned by ``model.protect``;
    ``other``: the other slice's or other volume's key (same shape) for those
    kinds, else unused. Returns float32 (H, W) in [0, 1].
    """
    return model.unlock(protected, wrong_key(key, kind, other, rng), verify=False)
