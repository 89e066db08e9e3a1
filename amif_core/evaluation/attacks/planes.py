"""``amif attack-eval --planes``: the attacks on a protected volume, scored in each of its three planes.

A volume carries the 3D identifier, so a radiologist (or an attacker) sees
it in axial, coronal and sagittal cuts alike. The volume (the bundled demo
pair, fused in grey so that the forward solve applies) is protected once,
along its own slicing axis; then, in each plane of its voxel grid, every
``every``-th slice that crosses the head is cut from the protected volume,
the clean fusion, the 3D mask and the sources, and attacked:

- inpainting (Telea, Navier-Stokes, biharmonic) with the true mask of that
  plane, and Telea with the mask estimated from that cut;
- the white-box forward solve (:func:`white_box.solve_forward`) through
  the public weights with the exact mask; the network protected the volume
  slice by slice along its slicing axis, so the solve runs on those slices
  (the first ``white_box_slices`` crossing the head) and is scored there.

The ink's contrast over dark and over bright fusion is measured on each cut
as ``amif evaluate`` measures it on a slice. Each row is scored against the
clean fusion as in the validation run
(:mod:`~amif_core.evaluation.attacks.scoring`), and judged by the same bars
(:func:`~amif_core.evaluation.attacks.scoring.inpainting_bars`).
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from amif_core.evaluation.attacks import inpainting, mask_estimation, scoring, white_box
from amif_core.evaluation.fusion import BRIGHT, DARK
from amif_core.inference.model import AMIFModel
from amif_core.inference.pipeline import protect_volume, protected_voxels
from amif_core.io.geometry import axis_first, resample_to_reference
from amif_core.transforms.intensity import fit_normalisation

PLANE_NAMES = ("slicing axis", "second axis", "third axis")  # numpy axes of the protected (D, H, W) array
HEAD = 0.1  # normalised MRI above this is head
HEAD_FRACTION = 0.10  # a cut crosses the head when this much of it is head
CONTRAST_BAR = 0.25  # amif evaluate's: mean |protected - clean| on the strokes over dark and over bright fusion
MIN_PIXELS = 50  # fewer strokes than this over dark (or bright) fusion: that contrast is not measured on the slice


def _contrast(protected: np.ndarray, clean: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Ink contrast of one cut, as ``amif evaluate`` measures it: (over dark, over bright) mean |p - f|, NaN when
    fewer than :data:`MIN_PIXELS` strokes lie there."""
    gap = np.abs(protected - clean)
    out = []
    for where in ((mask > 0) & (clean < DARK), (mask > 0) & (clean >= BRIGHT)):
        out.append(float(gap[where].mean()) if where.sum() >= MIN_PIXELS else float("nan"))
    return out[0], out[1]


def run_plane_attacks(model: AMIFModel, mri: sitk.Image, other: sitk.Image, every: int = 4,
                      white_box_slices: int = 4, evaluations: int = white_box.EVALUATIONS) -> dict:
    """Protect ``mri`` + ``other`` (grey) and attack the result in each plane of its grid.

    Returns a JSON-ready dict: {"axis": the slicing numpy axis, "planes": [one
    per numpy axis of the protected (D, H, W) array: {"plane", "slices",
    "coverage_min", "coverage_max", "contrast", "summary", "gaps", "bars"}]}; the white-box
    solve is in the slicing plane's rows only.
    """
    on_grid = resample_to_reference(other, mri)[0]
    protected, key = protect_volume(model, mri, on_grid, notice=lambda _: None)
    image = protected_voxels(protected, key)
    a = fit_normalisation(axis_first(mri, key.axis)).apply(axis_first(mri, key.axis))
    b = fit_normalisation(axis_first(on_grid, key.axis)).apply(axis_first(on_grid, key.axis))
    clean = model.fuse_clean(axis_first(mri, key.axis), axis_first(on_grid, key.axis))
    unlocked = model.unlock(image, key, verify=False)
    mask = model.identifier_mask(key)
    planes = []
    for axis, name in enumerate(PLANE_NAMES):
        coverage = mask.mean(axis=tuple(x for x in range(3) if x != axis))
        head = (a > HEAD).mean(axis=tuple(x for x in range(3) if x != axis)) >= HEAD_FRACTION
        indices = [i for i in range(0, image.shape[axis], every) if head[i]]
        solve = set(indices[:white_box_slices]) if axis == 0 else set()
        per_slice, contrasts = [], []
        for i in indices:
            p, c, m, sa, sb, u = (np.ascontiguousarray(np.take(v, i, axis=axis))
                                  for v in (image, clean, mask, a, b, unlocked))
            rows = {"protected": p, "unlocked": u, "telea_true": inpainting.inpaint_telea(p, m),
                    "ns_true": inpainting.inpaint_navier_stokes(p, m),
                    "biharmonic_true": inpainting.inpaint_biharmonic(p, m),
                    "telea_estimated": inpainting.inpaint_telea(p, mask_estimation.estimate_mask(p))}
            if i in solve:
                rows["white_box_solve"] = white_box.solve_forward(model.net, p, m, evaluations)[0]
            per_slice.append({row: scoring.score(out, c, m, sa, sb) for row, out in rows.items()})
            contrasts.append(_contrast(p, c, m))
        planes.append({"plane": name, "slices": len(per_slice), "coverage_min": float(coverage.min()),
                       "coverage_max": float(coverage.max()), "summary": scoring.summarise(per_slice),
                       "contrast": _contrast_summary(np.array(contrasts)), "gaps": scoring.gaps(per_slice),
                       "bars": scoring.inpainting_bars(per_slice)})
    return {"axis": key.axis, "identifier_lattice": key.identifier_lattice, "planes": planes}


def _contrast_summary(contrasts: np.ndarray) -> dict:
    """(slices, 2) dark and bright contrasts -> per side: the lowest, the slices measured and those below the bar."""
    return {side: {"min": float(np.nanmin(values)) if np.isfinite(values).any() else float("nan"),
                   "measured": int(np.isfinite(values).sum()), "below_bar": int((values < CONTRAST_BAR).sum())}
            for side, values in zip(("dark", "bright"), contrasts.T)}


def format_planes(result: dict) -> str:
    """A text table of :func:`run_plane_attacks`: per plane, in-mask PSNR of each row and whether its bar holds."""
    lines = [f"Attacks on the protected volume, per plane of its grid (slicing numpy axis {result['axis']}); "
             "in-mask PSNR against the clean fusion, dB"]
    for plane in result["planes"]:
        lines.append(f"\n{plane['plane']}: {plane['slices']} slices, identifier coverage "
                     f"{plane['coverage_min']:.1%} to {plane['coverage_max']:.1%}")
        for side, figures in plane["contrast"].items():
            lines.append(f"  ink contrast over {side} fusion: lowest {figures['min']:.3f} on {figures['measured']} "
                         f"slices, {figures['below_bar']} below {CONTRAST_BAR}")
        for row, figures in plane["summary"].items():
            bar, gap = plane["bars"]["rows"].get(row), plane["gaps"].get(row)
            verdict = "" if bar is None else f"  limit {bar['limit_db']:.2f} {'meets' if bar['meets'] else 'FAILS'}"
            below = "" if gap is None else (f"  {gap['mean_gap_db']:6.2f} below the unlock "
                                            f"({'meets' if gap['meets_bar'] else 'FAILS'} {scoring.BAR_DB:.0f} dB)")
            lines.append(f"  {row:18s} {figures['psnr_mask']:7.2f}{below}{verdict}")
    return "\n".join(lines)
