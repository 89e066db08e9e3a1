"""Does a suspect's output carry an owner's trace mark? A statistic with an exact p-value.

For each probe slice the owner has the inputs ``a``, ``b`` (normalised as
protect normalises them), the unmarked fusion ``f`` of the owner's own
network (the reference), and the suspect's output ``y`` for the same inputs.

1. **Residual.** ``y`` is first matched to ``f`` by the least-squares
   gain and offset over the content pixels (an output stored on another
   scale, 8 bits or a min-max stretch, is traced all the same), then
   ``r = y - f`` on the pixels that carry content (any of
   ``a``, ``b``, ``f`` above 1/255), leaving out pixels where the suspect
   differs from the reference by more than :data:`OUTLIER` (a burnt-in
   identifier, annotations): the mark is never that large.
2. **Projection.** :data:`NUISANCE` maps of the reference and inputs (a
   constant, ``f``, ``a``, ``b``, ``max(a, b)`` and ``f`` minus blurred
   ``f`` at six widths) are projected out of ``r`` and of the K mark
   features ``phi_k`` (:func:`amif_core.tracing.mark.features`), slice by
   slice. The nuisance absorbs what a suspect does differently without the
   mark: another gain or offset, a blur, a sharper or softer fusion rule.
   The residual's moments on the features, summed over every probe pixel,
   are ``beta_k = sum_p phi_k(p) r(p)``, in R^K. (Least-squares
   coefficients, the moments whitened by the features' Gram matrix, lean on
   the few directions where the features are nearly collinear; on a
   distilled student they gave cosines of 0.39 to 0.50 on different sets of
   40 probes where the moments gave 0.49 on each: docs/tracing.md.)
3. **Statistic.** ``c``, the cosine between ``beta`` and the secret's
   direction ``u``, and ``T = c sqrt(K - 1) / sqrt(1 - c^2)``.

**Calibration, by construction.** If the suspect is independent of the
secret (another model, another owner's AMIF, a student of another owner's
outputs, a rule such as the pixel-wise maximum), then ``beta`` is a function
of the probes and the suspect alone, and ``u`` is uniform on the unit sphere
and independent of it. The cosine between a fixed vector and a uniform unit
vector of R^K has a known law: ``T`` follows Student's t with K - 1 degrees
of freedom, exactly. So the one-sided p-value ``P(t_{K-1} >= T)`` is exact
under that null, whatever the suspect is, with no simulation. (It rests on
the secret being random and unknown to whoever built the suspect.)

What a small p-value proves: the suspect's outputs co-vary with this
secret's mark far beyond chance, which an independent model does not do.
It does not say how the suspect was made (a copy of the weights, a student
of released outputs or of a licensee's unlocked outputs look alike), and
a suspect that also had the unmarked network's outputs, or the owner
secret, is outside what it can tell.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats
from scipy.ndimage import gaussian_filter

from amif_core.errors import InputError
from amif_core.tracing.mark import FEATURES, TraceMark, features

OUTLIER = 10 / 255
CONTENT = 1 / 255
BLURS = (0.5, 0.7, 1.0, 1.4, 2.0, 4.0)
NUISANCE = 5 + len(BLURS)
TRACED_P = 1e-6
CLEAR_P = 1e-3


def nuisance(a: np.ndarray, b: np.ndarray, reference: np.ndarray) -> list[np.ndarray]:
    """The nuisance maps of one slice, float64 (H, W) each (see the module notes)."""
    f = np.asarray(reference, dtype=np.float64)
    maps = [np.ones_like(f), f, np.asarray(a, np.float64), np.asarray(b, np.float64), np.maximum(a, b).astype(np.float64)]
    return maps + [f - gaussian_filter(f, sigma, mode="nearest") for sigma in BLURS]


def matched(output: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``output`` (H, W) under the least-squares gain and offset that best match ``reference`` on its content
    pixels: float64 (H, W)."""
    output = np.asarray(output, np.float64)
    content = np.asarray(reference) > CONTENT
    if content.sum() < 2 or np.ptp(output[content]) == 0:
        return output
    gain, offset = np.polyfit(output[content], np.asarray(reference, np.float64)[content], 1)
    return output * gain + offset


@dataclass
class TraceResult:
    """What :func:`verdict` reports: ``t`` (the statistic), ``cosine``, ``p_value`` (one-sided, exact under
    the null of an independent suspect), ``z`` (the normal quantile of that p), ``features`` (K),
    ``pixels`` and ``slices`` used, ``verdict`` (traced / not traced / inconclusive) and ``demo_secret``."""

    t: float
    cosine: float
    p_value: float
    z: float
    features: int
    pixels: int
    slices: int
    verdict: str
    demo_secret: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """A JSON-ready dict of every field."""
        return asdict(self)


class TraceAccumulator:
    """The feature moments of the residual over probe slices, nuisance projected out slice by slice;
    :meth:`result` scores any number of secrets against them."""

    def __init__(self) -> None:
        self.moment = np.zeros(FEATURES)
        self.pixels = 0
        self.slices = 0
        self.left_out = 0

    def add(self, a: np.ndarray, b: np.ndarray, reference: np.ndarray, suspect: np.ndarray) -> None:
        """Add one probe slice: ``a``, ``b`` the normalised inputs, ``reference`` the owner's unmarked fusion
        (its luma for colour) and ``suspect`` the suspect's output for the same inputs (its luma), all (H, W)
        in [0, 1].

        The slice's own nuisance maps are projected out of its features and residual (an orthonormal basis of
        their span, from a QR decomposition: the blur differences are nearly collinear), so each slice gets its
        own gain, offset and blur.
        """
        shapes = {np.shape(x) for x in (a, b, reference, suspect)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise InputError("A probe slice and the suspect's output must be 2D and of one shape; got {shapes}. "
                             "Give the suspect's output for exactly the probe's inputs.", shapes=sorted(shapes))
        residual = matched(suspect, reference) - np.asarray(reference, np.float64)
        content = np.maximum(np.maximum(a, b), reference) > CONTENT
        keep = content & (np.abs(residual) <= OUTLIER) & np.isfinite(residual)
        self.left_out += int((content & ~keep).sum())
        if keep.sum() <= 2 * NUISANCE:
            return
        basis = np.linalg.qr(np.stack([m[keep] for m in nuisance(a, b, reference)], axis=1))[0]
        design = features(a, b).reshape(FEATURES, -1)[:, keep.ravel()].T.astype(np.float64)
        design -= basis @ (basis.T @ design)
        target = residual[keep] - basis @ (basis.T @ residual[keep])
        self.moment += design.T @ target
        self.pixels += int(keep.sum())
        self.slices += 1

    def coefficients(self) -> np.ndarray:
        """``beta``: the (K,) moments of the residual on the mark features, float64."""
        if self.pixels < 10 * (FEATURES + NUISANCE):
            raise InputError("Too few probe pixels with content ({pixels}) to trace; give more probe slices.",
                             pixels=self.pixels)
        return self.moment.copy()

    def result(self, mark: TraceMark) -> TraceResult:
        """The statistic, its exact p-value and the verdict for the secret behind ``mark``."""
        beta = self.coefficients()
        norm = float(np.linalg.norm(beta))
        cosine = float(mark.direction @ beta / norm) if norm > 0 else 0.0
        cosine = float(np.clip(cosine, -1 + 1e-15, 1 - 1e-15))
        dof = FEATURES - 1
        t = cosine * np.sqrt(dof) / np.sqrt(1 - cosine**2)
        p = float(stats.t.sf(t, dof))
        verdict = "traced" if p <= TRACED_P else ("not traced" if p > CLEAR_P else "inconclusive")
        notes = [] if not mark.demo else ["The public demo secret: a positive result traces to anyone who runs "
                                          "AMIF without an owner secret, not to one owner."]
        if self.left_out:
            notes.append(f"{self.left_out} content pixels differ from the reference by more than "
                         f"{OUTLIER * 255:.0f} grey levels and were left out.")
        return TraceResult(float(t), cosine, p, float(stats.norm.isf(p)), FEATURES, self.pixels, self.slices,
                           verdict, mark.demo, notes)
