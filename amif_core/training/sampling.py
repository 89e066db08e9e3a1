"""Random training crops from the Harvard pairs, balanced over pair types.

Everything is driven by one ``numpy.random.Generator`` so a run is
reproducible from its seed and resumable from the generator's saved state.
"""
from __future__ import annotations

import numpy as np

from amif_core.data.harvard import PairSet


class CropSampler:
    """Draws (B, C, crop, crop) float32 batches of aligned channels.

    ``stack`` is (N, C, H, W) float32 (for example MRI, other and the clean
    fusion of the same slice). Pair types are drawn uniformly, so the small
    MRI-CT set is not drowned by MRI-SPECT. Crops with under 10% foreground
    (channel 0 or 1 above 0.05) are redrawn up to four times. Each crop gets a
    random flip and 90-degree rotation; with ``gamma`` > 0 channels 0 and 1 get
    independent random gamma in [1 - gamma, 1 + gamma].
    """

    def __init__(self, pairs: PairSet, stack: np.ndarray, crop: int, gamma: float = 0.0) -> None:
        if stack.shape[0] != len(pairs.records):
            raise ValueError("stack and records disagree in length")
        self.stack = stack
        self.crop = crop
        self.gamma = gamma
        groups: dict[str, list[int]] = {}
        for index, record in enumerate(pairs.records):
            groups.setdefault(record.pair, []).append(index)
        self.groups = [np.asarray(v) for _, v in sorted(groups.items())]

    def _one(self, rng: np.random.Generator) -> np.ndarray:
        group = self.groups[rng.integers(len(self.groups))]
        image = self.stack[group[rng.integers(len(group))]]
        _, h, w = image.shape
        for _ in range(5):
            y, x = rng.integers(0, h - self.crop + 1), rng.integers(0, w - self.crop + 1)
            patch = image[:, y : y + self.crop, x : x + self.crop]
            if (patch[:2].max(axis=0) > 0.05).mean() >= 0.1:
                break
        patch = np.rot90(patch, k=int(rng.integers(4)), axes=(1, 2))
        if rng.random() < 0.5:
            patch = patch[:, :, ::-1]
        patch = np.ascontiguousarray(patch)
        if self.gamma > 0:
            exponents = rng.uniform(1 - self.gamma, 1 + self.gamma, size=2).astype(np.float32)
            patch[:2] = patch[:2] ** exponents[:, None, None]
        return patch

    def batch(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """(size, C, crop, crop) float32."""
        return np.stack([self._one(rng) for _ in range(size)])
