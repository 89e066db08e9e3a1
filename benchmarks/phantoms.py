"""A family of synthetic PET and SPECT scans on the demo MRI's grid, with hot and cold lesions.

The lesion benchmark (``lesion_conspicuity.py``) judges the colour fusion on
these. Each phantom is built the way a scanner sees a brain: an activity
map from the MRI's tissues (grey matter, white matter, CSF, the soft tissue
outside the brain), smoothed to the scanner's resolution, with Poisson noise
at a count level. Five uptake patterns cover what a reader meets:

* ``fdg``: FDG-like, grey matter four times white matter (the demo PET's kind);
* ``diffuse``: nearly uniform brain uptake, grey matter 1.1 x white matter;
* ``high-background``: a low-contrast tracer with uptake in the scalp too
  (amyloid-like: white matter a little above grey matter);
* ``low-count``: FDG-like at a tenth of the counts, about 20 % noise in grey matter;
* ``spect-perfusion``: grey matter 1.6 x white matter at SPECT's 12 mm resolution.

A lesion is a sphere whose activity is a multiple of the activity the
pattern puts at its centre: hot lesions 1.5, 2.5 and 4 x, cold (defects)
0.7, 0.45 and 0.2 x. Tissue shares come from the MRI's intensity alone
(piecewise-linear memberships between the CSF, grey- and white-matter
levels of the brain's histogram), which is what an FDG or perfusion map
follows closely enough for a display test. Nothing here is a real scan.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from amif_core.transforms.intensity import fit_normalisation


@dataclass(frozen=True)
class Pattern:
    """An uptake pattern: activity per tissue (arbitrary units), resolution (FWHM, mm) and counts per unit."""

    name: str
    grey: float
    white: float
    csf: float
    outside: float  # soft tissue of the head outside the brain
    fwhm_mm: float
    counts: float  # Poisson counts per unit of activity: sets the noise


PATTERNS: tuple[Pattern, ...] = (
    Pattern("fdg", grey=7.0, white=1.75, csf=0.4, outside=0.6, fwhm_mm=7.0, counts=50.0),
    Pattern("diffuse", grey=5.5, white=5.0, csf=2.0, outside=0.5, fwhm_mm=7.0, counts=50.0),
    Pattern("high-background", grey=4.5, white=5.0, csf=1.5, outside=3.5, fwhm_mm=7.0, counts=50.0),
    Pattern("low-count", grey=7.0, white=1.75, csf=0.4, outside=0.6, fwhm_mm=7.0, counts=3.0),
    Pattern("spect-perfusion", grey=1.6, white=1.0, csf=0.15, outside=0.2, fwhm_mm=12.0, counts=60.0),
)
HOT_CONTRASTS = (1.5, 2.5, 4.0)
COLD_CONTRASTS = (0.7, 0.45, 0.2)


@dataclass(frozen=True)
class Tissues:
    """Soft tissue shares on the MRI grid, each (z, y, x) float32 in [0, 1]; grey + white + csf = 1 in the brain."""

    grey: np.ndarray
    white: np.ndarray
    csf: np.ndarray
    outside: np.ndarray  # head outside the brain
    brain: np.ndarray  # bool


def tissues(mri: np.ndarray) -> Tissues:
    """Tissue shares from a T1 MRI (z, y, x), any real dtype.

    The brain is the normalised MRI above 0.25, holes filled; the head, above
    0.05. Inside the brain the CSF, grey- and white-matter levels are the
    5th, 40th and 85th percentiles, and each voxel is shared linearly
    between the two levels it lies between.
    """
    norm = fit_normalisation(mri).apply(mri)
    brain = ndimage.binary_fill_holes(norm > 0.25)
    head = ndimage.binary_fill_holes(norm > 0.05)
    csf_level, grey_level, white_level = np.percentile(norm[brain], [5, 40, 85])
    white = np.clip((norm - grey_level) / (white_level - grey_level), 0, 1)
    csf = np.clip((grey_level - norm) / (grey_level - csf_level), 0, 1)
    grey = 1 - white - csf
    inside = brain.astype(np.float32)
    return Tissues(grey=(grey * inside).astype(np.float32), white=(white * inside).astype(np.float32),
                   csf=(csf * inside).astype(np.float32), outside=(head & ~brain).astype(np.float32), brain=brain)


def activity(pattern: Pattern, shares: Tissues) -> np.ndarray:
    """The pattern's noise-free, unsmoothed activity map (z, y, x) float32."""
    return (pattern.grey * shares.grey + pattern.white * shares.white + pattern.csf * shares.csf
            + pattern.outside * shares.outside).astype(np.float32)


@dataclass(frozen=True)
class Lesion:
    """A sphere at ``centre`` (voxel index (z, y, x)), ``radius_mm``, its activity ``contrast`` x the local one."""

    centre: tuple[int, int, int]
    radius_mm: float
    contrast: float

    @property
    def kind(self) -> str:
        return "hot" if self.contrast > 1 else "cold"


def scan(pattern: Pattern, shares: Tissues, spacing_zyx: np.ndarray, lesion: Lesion | None, seed: int) -> np.ndarray:
    """One phantom scan (z, y, x) float32 >= 0: activity (with ``lesion``), smoothed to the pattern's FWHM, then
    Poisson noise at its count level from ``numpy.random.default_rng(seed)``."""
    base = activity(pattern, shares)
    if lesion is not None:
        grids = np.ogrid[tuple(slice(0, n) for n in base.shape)]
        distance = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, lesion.centre, spacing_zyx)))
        sphere = distance <= lesion.radius_mm
        local = float(ndimage.gaussian_filter(base, 4.0 / spacing_zyx)[lesion.centre])
        base = np.where(sphere, lesion.contrast * local, base).astype(np.float32)
    sigma = pattern.fwhm_mm / (2 * math.sqrt(2 * math.log(2))) / spacing_zyx
    mean = np.maximum(ndimage.gaussian_filter(base, sigma), 0.0)
    counts = np.random.default_rng(seed).poisson(mean * pattern.counts)
    return (counts / pattern.counts).astype(np.float32)
