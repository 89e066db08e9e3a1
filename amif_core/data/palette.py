"""The pseudo-colour palettes of the Harvard PET and SPECT images, and the scalar uptake they encode.

The Harvard Whole Brain Atlas renders PET and SPECT through discrete colour
palettes (128 and about 150 colours) whose luma is not monotone in uptake
(a jet-like PET table peaks in luma at yellow). Ordering a palette's colours
from black by nearest neighbour, each step changing the colour little,
recovers the table's order, so a pixel's position in it is its uptake. That
lets a colour fusion be scored as a user gives it: a scalar PET/SPECT
through one of :data:`~amif_core.transforms.colour.COLOUR_TABLES`.
"""
from __future__ import annotations

import numpy as np

MAX_STEP = 60  # the largest colour change (sum of |dR| + |dG| + |dB|) between neighbouring palette entries


def estimate_palette(images: list[np.ndarray]) -> np.ndarray:
    """The ordered palette of pseudo-colour images: (n, 3) uint8, from black (no uptake) up.

    ``images``: (H, W, 3) uint8 RGB slices drawn through one palette. The
    colours are chained from the darkest by nearest neighbour (L1 in RGB);
    the chain stops at the first jump above :data:`MAX_STEP`, so stray
    colours (annotations) are left out.
    """
    colours = np.unique(np.concatenate([np.asarray(i, np.uint8).reshape(-1, 3) for i in images]), axis=0)
    colours = colours.astype(np.int64)
    order = [int(np.argmin(colours.sum(axis=1)))]
    left = [i for i in range(len(colours)) if i != order[0]]
    while left:
        distance = np.abs(colours[left] - colours[order[-1]]).sum(axis=1)
        nearest = int(np.argmin(distance))
        if distance[nearest] > MAX_STEP:
            break
        order.append(left.pop(nearest))
    return colours[order].astype(np.uint8)


def uptake_from_rgb(image: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """The scalar uptake of a pseudo-colour image: (H, W) float32 in [0, 1], its nearest palette entry's position.

    ``image``: (H, W, 3) uint8 RGB; ``palette``: (n, 3) from :func:`estimate_palette`.
    """
    colours, inverse = np.unique(np.asarray(image, np.uint8).reshape(-1, 3), axis=0, return_inverse=True)
    nearest = np.abs(colours.astype(np.int64)[:, None] - palette.astype(np.int64)[None]).sum(axis=2).argmin(axis=1)
    uptake = (nearest / max(len(palette) - 1, 1)).astype(np.float32)
    return uptake[inverse.reshape(-1)].reshape(np.shape(image)[:2])
