"""Wrong-key attacks: unlock the protected image with a key that is not its own.

The fingerprint check would refuse every such key, so it is skipped
(``model.unlock(..., verify=False)``) to measure what the network itself gives
away. This module is the one home of the wrong keys (:func:`wrong_key`), for the
attacks and for the fusion/protection evaluation alike:

* random: uniformly random stored codes;
* zero: all-zero stored codes;
* shuffled: the true stored codes, permuted;
* other_slice: the whole key of another slice of the same patient;
* other_volume: the whole key of a slice of another patient (another volume
  of the same shape).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from amif_core.inference.model import AMIFModel
from amif_core.key.core import Key

LABELS = {"random": "random", "zero": "zero", "shuffled": "shuffled", "other_slice": "another slice's",
          "other_volume": "another volume's"}  # kind -> how a report names it
KINDS = tuple(LABELS)
SAME_SHAPE_KINDS = tuple(kind for kind in KINDS if kind != "other_volume")  # need no second volume


def wrong_key(key: Key, kind: str, other: Key | None, rng: np.random.Generator) -> Key:
    """A wrong key of ``kind`` (one of :data:`KINDS`) for forced-unlock evaluation.

    Each is what an attacker could hand in as a key file for this image:
    random: uniformly random stored codes; zero: all-zero stored codes;
    shuffled: the true stored codes in a random order (each for the chroma
    codes of a colour key too); other_slice: ``other``,
    the whole key of another slice of the same size; other_volume: ``other``,
    the whole key of a different volume (another patient) of the same shape.
    The fingerprint is the true one, as if the fingerprint check were skipped.
    """
    if kind in ("other_slice", "other_volume"):
        if other is None:
            raise ValueError(f"the {kind!r} wrong key needs another key of the same shape")
        return dataclasses.replace(other, fingerprint=key.fingerprint)
    forged = []
    for stored in (key.codes, key.chroma_codes):  # a colour key's chroma codes are forged alike
        if kind == "random":
            forged.append(rng.integers(-32768, 32768, size=stored.size).astype(np.int16))
        elif kind == "zero":
            forged.append(np.zeros_like(stored))
        elif kind == "shuffled":
            forged.append(rng.permutation(stored))
        else:
            raise ValueError(f"unknown wrong-key kind {kind!r}")
    return dataclasses.replace(key, codes=forged[0], chroma_codes=forged[1])




def forced_unlock(model: AMIFModel, protected: np.ndarray, key: Key, kind: str, other: Key | None,
                  rng: np.random.Generator) -> np.ndarray:
    """Unlock ``protected`` with the wrong key of ``kind`` (one of :data:`KINDS`) made from ``key``.

    ``protected``: (H, W) float32 in [0, 1], as returned by ``model.protect``;
    ``other``: the other slice's or other volume's key (same shape) for those
    kinds, else unused. Returns float32 (H, W) in [0, 1].
    """
    return model.unlock(protected, wrong_key(key, kind, other, rng), verify=False)
