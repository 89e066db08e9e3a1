#!/usr/bin/env python3
"""Colour compositions tried on the lesion benchmark's phantom family: how many cases meet both bars.

The network's fused luma of every case of ``lesion_conspicuity.py`` is
computed once (unmarked: the trace mark is added after the composition and
moves these figures by far less than the bars' margins), then each
candidate composition of the colour fusion's luma is applied to it and
scored with the benchmark's own CIEDE2000 and SSIM against the same overlay.
The chroma is always the scan's, fitted to the gamut; the row "shipped" is
:func:`amif_core.transforms.colour.compose` itself.

Notation: ``F`` the fused luma, ``M`` the normalised MRI, ``P`` the scan's
luma through the colour table, ``base`` a Gaussian blur of 3 px and
``detail(x) = x - base(x)``.

Usage::

    python benchmarks/colour_compositions.py                 # table "pet", about 15 minutes on 2 cores
    python benchmarks/colour_compositions.py --table spect
    python benchmarks/colour_compositions.py --patterns demo  # one case, to try it
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the lesion benchmark

from lesion_conspicuity import cases, delta_e, demo_inputs, judged  # noqa: E402
from phantoms import PATTERNS  # noqa: E402

from amif_core import load_model  # noqa: E402
from amif_core.inference.pair import prepare_pair  # noqa: E402
from amif_core.transforms.colour import COLOUR_TABLES, compose, fit_gamut, luma, two_scales  # noqa: E402
from amif_core.transforms.intensity import fit_normalisation  # noqa: E402

Colour = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (F, M, P, CbCr) -> RGB


def rebased(x: np.ndarray, p: np.ndarray, w: float) -> np.ndarray:
    """``x``'s detail on a base leaning ``w`` of the way to ``p``: detail(x) + (1 − w) · base(x) + w · p."""
    base, detail = two_scales(x)
    return detail + (1 - w) * base + w * p


def on_luma(make_luma: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> Colour:
    """A composition given by its luma (F, M, P) -> (H, W): the scan's chroma fitted to the gamut round it."""
    return lambda f, m, p, cbcr: fit_gamut(make_luma(f, m, p), cbcr)


def candidates() -> dict[str, Colour]:
    """The compositions tried, by a name that states them; the first is the shipped one."""
    out: dict[str, Colour] = {"shipped: larger detail(F), detail(M) + 0.4 · base(F) + 0.6 · P (compose)": compose,
                              "F · (1 − β + β · P), β = 0.5 (shipped before)": on_luma(lambda f, m, p: f * (0.5 + 0.5 * p))}
    for a in (0.3, 0.5, 0.7):
        out[f"(1 − a) · M + a · F, a = {a}"] = on_luma(lambda f, m, p, a=a: (1 - a) * m + a * f)
    for beta in (0.3, 0.5, 0.7):
        out[f"(M + F) / 2 · (1 − β + β · P), β = {beta}"] = on_luma(
            lambda f, m, p, b=beta: (m + f) / 2 * (1 - b + b * p))
    for w in (0.3, 0.4, 0.5):
        out[f"(1 − w) · F + w · P, w = {w}"] = on_luma(lambda f, m, p, w=w: (1 - w) * f + w * p)
        out[f"(1 − w) · M + w · P, w = {w}"] = on_luma(lambda f, m, p, w=w: (1 - w) * m + w * p)
    for w in (0.5, 0.6):
        out[f"detail(M) + (1 − w) · base(M) + w · P, w = {w}"] = on_luma(lambda f, m, p, w=w: rebased(m, p, w))
        out[f"detail(F) + (1 − w) · base(F) + w · P, w = {w}"] = on_luma(lambda f, m, p, w=w: rebased(f, p, w))
    for w in (0.5, 0.7):
        out[f"the shipped form, w = {w}"] = lambda f, m, p, cbcr, w=w: compose(f, m, p, cbcr, partner_weight=w)
    for sigma in (1.5, 5.0):
        out[f"the shipped form, base a blur of {sigma:g} px"] = (
            lambda f, m, p, cbcr, s=sigma: compose(f, m, p, cbcr, sigma_px=s))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default="pet", choices=sorted(COLOUR_TABLES), help="colour table (default pet)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    names = ["demo"] + [p.name for p in PATTERNS]
    parser.add_argument("--patterns", default=",".join(names), help="comma-separated patterns (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("cpu")
    mri, pet, spacing, demo_centre = demo_inputs()
    grey = fit_normalisation(mri).apply(mri)
    slices = []
    for case in cases(mri, pet, demo_centre, spacing, args.patterns.split(","), ["hot", "cold"], 0):
        z = case.centre[0]
        pair = prepare_pair(mri, case.scan, args.table)
        fused = model.fuse_clean(mri, pair.other, owner=None)[z].astype(np.float64)
        against = judged(grey, case, spacing, args.table)
        slices.append({"group": (case.pattern, case.kind), "fused": fused, "mri": against.grey.astype(np.float64),
                       "partner": pair.other[z].astype(np.float64), "cbcr": pair.cbcr[z], "against": against,
                       "dE overlay": delta_e(against.overlay, against.core, against.ring),
                       "SSIM overlay": structural_similarity(luma(against.overlay), against.grey, data_range=1.0)})
    groups = list(dict.fromkeys(s["group"] for s in slices))
    print(f"Colour table {args.table!r}, model {model.model_id[:12]}, unmarked fusion; {len(slices)} cases; "
          f"cases meeting both bars, then per pattern and kind (colour bar, structure bar)")
    for name, make_colour in candidates().items():
        counts: dict[tuple[str, str], list[int]] = {g: [0, 0, 0, 0] for g in groups}
        for s in slices:
            rgb = make_colour(s["fused"], s["mri"], s["partner"], s["cbcr"])
            colour_ok = delta_e(rgb, s["against"].core, s["against"].ring) >= s["dE overlay"]
            structure_ok = structural_similarity(luma(rgb), s["against"].grey, data_range=1.0) >= s["SSIM overlay"]
            tally = counts[s["group"]]
            tally[0] += colour_ok and structure_ok
            tally[1] += colour_ok
            tally[2] += structure_ok
            tally[3] += 1
        both = sum(t[0] for t in counts.values())
        detail = "; ".join(f"{g[0]} {g[1]} {t[0]}/{t[3]} ({t[1]}, {t[2]})" for g, t in counts.items())
        print(f"{both:3d}/{len(slices)}  {name}\n          {detail}", flush=True)


if __name__ == "__main__":
    main()
