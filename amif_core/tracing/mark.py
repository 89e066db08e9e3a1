"""The trace mark: an invisible, keyed function of the two inputs that the released fusion carries.

Any model trained to imitate AMIF's released images learns this function
with the rest of the fusion, so its outputs carry it too, and
:mod:`amif_core.tracing.detect` finds it there.

The mark of one slice, with ``a`` the normalised MRI and ``b`` the
normalised second scan (the network's own inputs, (H, W) in [0, 1]):

* **Features.** Each input is band-passed by differences of Gaussians at
  :data:`SCALES`, scaled by a fixed constant (:data:`BAND_SCALE`, about the
  band's standard deviation in brain tissue), and read at the
  :data:`OFFSETS`, a 5 x 5 grid spaced by :data:`STRIDES`:
  ``phi_k(p) = band(p + offset)``, zero outside the slice. That gives
  ``K = 2 inputs x 2 scales x 25 offsets = 100`` feature maps.
* **The secret's direction.** ``u``, a unit vector in R^K drawn from a
  Gaussian seeded by the owner secret (:meth:`TraceMark.from_secret`), so it
  is uniformly distributed on the sphere and unknown without the secret.
* **The mark.** ``m(p) = AMPLITUDE * tanh(GAIN * sum_k u_k phi_k(p)) * gate(p)``:
  a random linear filter of band-passed inputs, softly limited so that no
  pixel moves by more than :data:`AMPLITUDE` (1.25 of 255 grey levels), and
  faded out where both inputs are near black (:func:`gate`). Hence the
  marked fusion is at least 46.2 dB PSNR from the unmarked one on any slice,
  and black background stays black.

Why this family: it is smooth in the inputs and local (offsets up to 16
pixels),
so a student network learns it like any other part of the fusion, and it
lives in mid frequencies (0.03 to 0.15 cycles per pixel), which a blur of
0.7 pixels or JPEG at quality 90 keeps. What makes a detector calibrated is
the direction's uniform law: see :mod:`amif_core.tracing.detect`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from amif_core.tracing.secret import DEMO_SECRET, OwnerSecret

SCALES: tuple[tuple[float, float], ...] = ((1.5, 3.0), (3.0, 6.0))
# Offsets spaced by 4 (fine band) and 8 pixels (coarse band): closer offsets read nearly the same values, and
# the detector then loses most directions to that collinearity (on 12 validation slices the cosine of a half-learnt
# mark was 0.72-0.84 with 4 and 4, 0.97-0.99 with 4 and 8).
STRIDES: tuple[int, ...] = (4, 8)
OFFSETS: tuple[tuple[tuple[int, int], ...], ...] = tuple(
    tuple((stride * i, stride * j) for i in range(-2, 3) for j in range(-2, 3)) for stride in STRIDES)
# Standard deviation of each band in brain tissue, per input and scale (MRI, second scan), measured on the Harvard
# training patients (benchmarks/trace_constants.py prints them); fixed, so the mark is a fixed function.
BAND_SCALE: tuple[tuple[float, ...], ...] = ((0.058, 0.065), (0.040, 0.058))
FEATURES = 2 * sum(len(offsets) for offsets in OFFSETS)
GATE = (0.04, 0.12)  # the mark fades in between these values of max(a, b): none on black or near-black pixels
AMPLITUDE = 1.25 / 255
GAIN = 2.5
PURPOSE = "amif trace mark v1: direction"


def bands(a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """The scaled band-passed inputs, float64 (H, W) each, in the order (a scale 0, a scale 1, b scale 0, b scale 1).

    ``a``, ``b``: (H, W) real arrays, the normalised inputs in [0, 1].
    """
    out = []
    for source, scales in zip((a, b), BAND_SCALE):
        image = np.asarray(source, dtype=np.float64)
        for (fine, coarse), scale in zip(SCALES, scales):
            out.append((gaussian_filter(image, fine, mode="nearest") - gaussian_filter(image, coarse, mode="nearest"))
                       / scale)
    return out


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``out[y, x] = image[y + dy, x + dx]``, zero where that falls outside: (H, W), ``image``'s dtype."""
    h, w = image.shape
    out = np.zeros_like(image)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
    ysrc, xsrc = slice(max(0, dy), min(h, h + dy)), slice(max(0, dx), min(w, w + dx))
    out[ys, xs] = image[ysrc, xsrc]
    return out


def gate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where the mark may be: 0 where both inputs are below ``GATE[0]``, 1 where either is above ``GATE[1]``,
    linear between: (H, W) float64 in [0, 1]. Black background stays exactly black, so the histogram-based
    fusion metrics (EN, MI) do not count the mark as new content."""
    low, high = GATE
    return np.clip((np.maximum(a, b).astype(np.float64) - low) / (high - low), 0.0, 1.0)


def features(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Every feature map of one slice times the :func:`gate`: (K, H, W) float32, K = :data:`FEATURES`, band-major
    then offset."""
    where = gate(a, b)
    return np.stack([shifted(band, dy, dx) * where for index, band in enumerate(bands(a, b))
                     for dy, dx in OFFSETS[index % len(SCALES)]]).astype(np.float32)


@dataclass(frozen=True)
class TraceMark:
    """The mark chosen by one secret: ``direction``, a (K,) float64 unit vector; ``demo``: the public one."""

    direction: np.ndarray
    demo: bool = False

    @classmethod
    def from_secret(cls, secret: OwnerSecret) -> "TraceMark":
        """The direction drawn from a Gaussian seeded by ``secret`` (uniform on the unit sphere of R^K)."""
        seed = np.frombuffer(secret.derive(PURPOSE), dtype=np.uint32)
        draw = np.random.Generator(np.random.PCG64(seed)).standard_normal(FEATURES)
        return cls(draw / np.linalg.norm(draw), secret.demo)

    def response(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``sum_k u_k phi_k``: (H, W) float64, before the limiter.

        Summed band by band and offset by offset in a fixed order, elementwise,
        so the result is the same whatever the thread count (no BLAS).
        """
        total = np.zeros(np.shape(a), dtype=np.float64)
        weights = iter(self.direction)
        for index, band in enumerate(bands(a, b)):
            for dy, dx in OFFSETS[index % len(SCALES)]:
                total += next(weights) * shifted(band, dy, dx)
        return total

    def mark(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The mark of one slice: (H, W) float32 in [-AMPLITUDE, AMPLITUDE].

        ``a``, ``b``: the normalised MRI and second scan (its luma for a colour
        partner), (H, W) in [0, 1].
        """
        return (AMPLITUDE * np.tanh(GAIN * self.response(a, b)) * gate(a, b)).astype(np.float32)

    def apply(self, fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The released fusion: ``fused`` plus the mark, clipped to [0, 1], float32.

        ``fused``: (B, H, W) grey, or (B, H, W, 3) RGB (the mark is added to every
        channel, so it moves the luma alone); ``a``, ``b``: (B, H, W) normalised inputs.
        """
        marks = np.stack([self.mark(x, y) for x, y in zip(a, b)])
        if fused.ndim == 4:
            marks = marks[..., None]
        return np.clip(fused + marks, 0.0, 1.0).astype(np.float32)


DEMO_MARK = TraceMark.from_secret(DEMO_SECRET)
