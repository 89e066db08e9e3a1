"""Robust per-volume intensity normalisation to [0, 1].

The same mapping is used in training (each Harvard slice is its own volume)
and in :meth:`amif_core.AMIFModel.protect`; its parameters are recorded in the
key so the owner can map the unlocked fusion back to scanner units.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amif_core.errors import InputError

LOWER_PERCENTILE = 0.5
UPPER_PERCENTILE = 99.9
_MAX_SAMPLES = 4_000_000


@dataclass(frozen=True)
class Normalisation:
    """Linear map ``(x - low) / (high - low)`` clipped to [0, 1]."""

    low: float
    high: float

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Any-shape real array -> float32 array of the same shape in [0, 1]."""
        scale = 1.0 / (self.high - self.low) if self.high > self.low else 0.0
        out = (np.asarray(x, dtype=np.float32) - np.float32(self.low)) * np.float32(scale)
        return np.clip(out, 0.0, 1.0, out=out)

    def to_dict(self) -> dict[str, float]:
        return {"low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> "Normalisation":
        return cls(low=float(data["low"]), high=float(data["high"]))


def fit_normalisation(volume: np.ndarray) -> Normalisation:
    """Fit the robust percentile window of a whole volume, any shape and real dtype.

    Uses the 0.5th and 99.9th percentiles; on volumes over 4 million voxels a
    fixed, evenly strided subsample is used, so the fit is deterministic and
    needs no full-size copy. A constant volume maps to all zeros.
    """
    flat = np.asarray(volume).reshape(-1)
    if flat.size == 0:
        raise InputError("Cannot normalise an empty volume.")
    if flat.size > _MAX_SAMPLES:
        flat = flat[:: int(np.ceil(flat.size / _MAX_SAMPLES))]
    if not np.isfinite(flat).all():
        raise InputError("The volume contains NaN or infinite voxels; replace them (for example with 0) first.")
    low, high = np.percentile(flat.astype(np.float64), [LOWER_PERCENTILE, UPPER_PERCENTILE])
    return Normalisation(low=float(low), high=float(high))
