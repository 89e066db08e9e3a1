#!/usr/bin/env python3
"""Lesion conspicuity of the clean colour fusion against Slicer's default PET-on-MRI overlay.

A radiologist reads PET and SPECT in colour and looks for hot spots and cold
defects, so the fusion must show a lesion at least as clearly as the overlay
a Slicer user gets by default (the MRI in grey as background, the scan
through the same colour table as foreground at 50 % opacity), and keep at
least as much of the MRI's anatomy. For each case this prints, on the axial
slice through the lesion centre:

* the colour difference CIEDE2000 between the lesion core (in-plane distance
  <= r/2) and a ring around it (1.5 r to 2.5 r), in the fusion and in the
  overlay (bar: fusion >= overlay);
* SSIM of the fusion's luma and of the overlay's luma against the MRI
  (bar: fusion >= overlay: the fusion keeps more MRI structure).

Cases: the bundled demo pair (its right frontal lesion, 9 mm, 2.5x grey
matter), and the phantom family of ``benchmarks/phantoms.py`` on the demo
MRI: five uptake patterns (FDG-like, diffuse, high-background low-contrast,
noisy low-count, SPECT perfusion), each with hot and cold lesions at three
sizes and three contrasts, in three kinds of place picked from the MRI (deep
white matter, grey matter, and cortex within 8 mm of the brain's edge, near
the skull): 271 cases per colour table.

Usage::

    python benchmarks/lesion_conspicuity.py                     # shipped weights, colour table "pet"
    python benchmarks/lesion_conspicuity.py --table spect
    python benchmarks/lesion_conspicuity.py --patterns fdg,diffuse --kinds cold
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/phantoms.py

from amif_core import load_model  # noqa: E402
from amif_core.demo import DEMO_MRI, DEMO_PET  # noqa: E402
from amif_core.atomic import check_outputs, json_output, write_atomically  # noqa: E402
from amif_core.io.geometry import resample_to_reference  # noqa: E402
from amif_core.tracing.secret import DEMO_SECRET, OwnerSecret  # noqa: E402
from amif_core.transforms.colour import COLOUR_TABLES, apply_table, luma  # noqa: E402
from amif_core.transforms.intensity import fit_normalisation  # noqa: E402
from phantoms import COLD_CONTRASTS, HOT_CONTRASTS, PATTERNS, Lesion, scan, tissues  # noqa: E402

DEMO_LESION_RAS_MM = (32.0, 24.0, 30.0)  # scripts/make_demo_data.py: LESION_CENTRE_RAS_MM
DEMO_LESION_RADIUS_MM = 9.0
RADII_MM = (4.0, 7.0, 10.0)
OVERLAY_OPACITY = 0.5


@dataclass(frozen=True)
class Case:
    """A lesion to judge: its name, the volume holding it (z, y, x) on the MRI grid, where it is (voxel index
    (z, y, x)) and its radius (mm)."""

    name: str
    pattern: str
    kind: str
    scan: np.ndarray
    centre: tuple[int, int, int]
    radius_mm: float


def place_candidates(mri: np.ndarray, spacing_zyx: np.ndarray, rng: np.random.Generator) -> dict[str, tuple]:
    """One voxel per kind of place, in the left hemisphere (away from the demo lesion), at mid-brain height.

    The brain is the MRI above 25 % of its robust range (filled); white matter
    is its brightest quarter more than 15 mm inside the brain's edge, grey
    matter its 35-60th percentile band more than 10 mm inside, and "near
    skull" the grey-matter band within 8 mm of the edge.
    """
    norm = fit_normalisation(mri).apply(mri)
    brain = ndimage.binary_fill_holes(norm > 0.25)
    depth = ndimage.distance_transform_edt(brain, sampling=spacing_zyx)
    values = norm[brain]
    q35, q60, q75 = np.percentile(values, [35, 60, 75])
    z = np.arange(mri.shape[0])[:, None, None]
    x = np.arange(mri.shape[2])[None, None, :]
    band = (np.abs(z - mri.shape[0] * 0.6) < mri.shape[0] * 0.1) & (x > mri.shape[2] * 0.6)
    wanted = {
        "white matter": brain & band & (norm >= q75) & (depth > 15),
        "grey matter": brain & band & (norm >= q35) & (norm <= q60) & (depth > 10),
        "near skull": brain & band & (norm >= q35) & (norm <= q60) & (depth > 3) & (depth <= 8),
    }
    out = {}
    for place, where in wanted.items():
        points = np.argwhere(where)
        if not len(points):
            raise SystemExit(f"No {place} voxel found in the demo MRI; the place rules need adjusting.")
        out[place] = tuple(int(v) for v in points[rng.integers(len(points))])
    return out


def delta_e(rgb: np.ndarray, core: np.ndarray, ring: np.ndarray) -> float:
    """CIEDE2000 between the mean CIELAB colours of ``core`` and ``ring`` of an (H, W, 3) [0, 1] RGB slice."""
    lab = rgb2lab(np.clip(rgb, 0, 1))
    return float(deltaE_ciede2000(lab[core].mean(axis=0), lab[ring].mean(axis=0)))


@dataclass(frozen=True)
class Judged:
    """What a case's fusion is judged against on the axial slice through its centre: the normalised MRI slice
    (H, W) float32, Slicer's overlay (H, W, 3) RGB in [0, 1], and the lesion core and the ring round it (H, W)
    bool."""

    grey: np.ndarray
    overlay: np.ndarray
    core: np.ndarray
    ring: np.ndarray


def judged(grey_volume: np.ndarray, case: Case, spacing_zyx: np.ndarray, table: str) -> Judged:
    """The MRI slice, the overlay and the lesion's core and ring of ``case``, with the scan through ``table``;
    ``grey_volume``: the normalised MRI (z, y, x), normalised once for every case."""
    grey = grey_volume[case.centre[0]]
    uptake = fit_normalisation(case.scan).apply(case.scan)[case.centre[0]]
    overlay = (1 - OVERLAY_OPACITY) * grey[..., None] + OVERLAY_OPACITY * apply_table(uptake, COLOUR_TABLES[table])
    rows, cols = np.ogrid[: grey.shape[0], : grey.shape[1]]
    distance = np.hypot((rows - case.centre[1]) * spacing_zyx[1], (cols - case.centre[2]) * spacing_zyx[2])
    core = distance <= max(case.radius_mm / 2, spacing_zyx[1])
    ring = (distance >= 1.5 * case.radius_mm) & (distance <= 2.5 * case.radius_mm)
    return Judged(grey, overlay, core, ring)


def measure(model, mri: np.ndarray, grey_volume: np.ndarray, case: Case, spacing_zyx: np.ndarray, table: str,
            owner: OwnerSecret | None = DEMO_SECRET) -> dict:
    """The four figures of one case on the axial slice through its centre (``grey_volume``: the normalised MRI;
    ``owner``: the trace mark's secret, None for the unmarked fusion)."""
    fusion = model.fuse_clean(mri, case.scan, colour_table=table, owner=owner)[case.centre[0]]
    against = judged(grey_volume, case, spacing_zyx, table)
    return {
        "dE fusion": delta_e(fusion, against.core, against.ring),
        "dE overlay": delta_e(against.overlay, against.core, against.ring),
        "SSIM fusion": float(structural_similarity(luma(fusion), against.grey, data_range=1.0)),
        "SSIM overlay": float(structural_similarity(luma(against.overlay), against.grey, data_range=1.0)),
    }


def demo_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int]]:
    """The bundled demo pair on the MRI grid: MRI and PET (z, y, x) float32, the voxel spacing (z, y, x) in mm,
    and the demo lesion's centre (voxel index (z, y, x))."""
    mri_image = sitk.ReadImage(str(DEMO_MRI))
    mri = sitk.GetArrayFromImage(mri_image).astype(np.float32)
    pet = sitk.GetArrayFromImage(resample_to_reference(sitk.ReadImage(str(DEMO_PET)), mri_image)[0])
    ras = DEMO_LESION_RAS_MM
    centre = tuple(int(v) for v in mri_image.TransformPhysicalPointToIndex((-ras[0], -ras[1], ras[2]))[::-1])
    return mri, pet, np.asarray(mri_image.GetSpacing()[::-1]), centre


def cases(mri: np.ndarray, pet: np.ndarray, demo_centre: tuple[int, int, int], spacing_zyx: np.ndarray,
          patterns: list[str], kinds: list[str], seed: int) -> Iterator[Case]:
    """The demo lesion (when ``patterns`` holds "demo"), then each phantom pattern x place x radius x contrast of
    the wanted ``kinds`` ("hot", "cold"), one at a time (each holds a whole volume)."""
    if "demo" in patterns:
        yield Case("demo lesion", "demo", "hot", pet, demo_centre, DEMO_LESION_RADIUS_MM)
    shares = tissues(mri)
    places = place_candidates(mri, spacing_zyx, np.random.default_rng(seed))
    contrasts = [c for kind in kinds for c in (HOT_CONTRASTS if kind == "hot" else COLD_CONTRASTS)]
    for index, pattern in enumerate(PATTERNS):  # the index seeds the noise, whichever patterns are run
        if pattern.name not in patterns:
            continue
        for place, centre in places.items():
            for radius in RADII_MM:
                for contrast in contrasts:
                    lesion = Lesion(centre, radius, contrast)
                    yield Case(f"{place}, r {radius:g} mm, {contrast:g}x", pattern.name, lesion.kind,
                               scan(pattern, shares, spacing_zyx, lesion, seed=index), centre, radius)


def main() -> None:
    names = ["demo"] + [p.name for p in PATTERNS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default="pet", choices=sorted(COLOUR_TABLES), help="colour table (default pet)")
    parser.add_argument("--patterns", default=",".join(names),
                        help=f"comma-separated uptake patterns among {', '.join(names)} (default: all)")
    parser.add_argument("--kinds", default="hot,cold", help="lesion kinds: hot, cold or both (default hot,cold)")
    parser.add_argument("--weights", type=Path, help="weights file (default: the shipped weights)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the lesion places (default 0)")
    parser.add_argument("--unmarked", action="store_true",
                        help="measure the network's unmarked fusion instead of the released one (which carries the "
                             "demo trace mark)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON (never overwrites)")
    args = parser.parse_args()
    patterns, kinds = args.patterns.split(","), args.kinds.split(",")
    if unknown := sorted(set(patterns) - set(names)) + sorted(set(kinds) - {"hot", "cold"}):
        parser.error(f"unknown pattern or kind: {', '.join(unknown)}")
    if args.json is not None:
        check_outputs([args.json], False, inputs=[])
    torch.set_num_threads(args.threads)
    model = load_model("cpu", args.weights)
    mri, pet, spacing, demo_centre = demo_inputs()
    grey = fit_normalisation(mri).apply(mri)
    print(f"Colour table {args.table!r}, model {model.model_id[:12]}, {'unmarked' if args.unmarked else 'released'} "
          f"fusion; overlay: MRI grey + scan at {OVERLAY_OPACITY:.0%} opacity")
    print(f"{'pattern':<16}{'kind':<5}{'case':<30}{'dE fusion':>10}{'dE overlay':>11}{'':>3}"
          f"{'SSIM fusion':>12}{'SSIM overlay':>13}{'':>3}")
    rows = []
    for case in cases(mri, pet, demo_centre, spacing, patterns, kinds, args.seed):
        row = measure(model, mri, grey, case, spacing, args.table, None if args.unmarked else DEMO_SECRET)
        row["colour ok"] = row["dE fusion"] >= row["dE overlay"]
        row["structure ok"] = row["SSIM fusion"] >= row["SSIM overlay"]
        rows.append({"case": case.name, "pattern": case.pattern, "kind": case.kind, **row})
        print(f"{case.pattern:<16}{case.kind:<5}{case.name:<30}{row['dE fusion']:10.2f}{row['dE overlay']:11.2f}"
              f"{'ok' if row['colour ok'] else 'NO':>3}{row['SSIM fusion']:12.3f}{row['SSIM overlay']:13.3f}"
              f"{'ok' if row['structure ok'] else 'NO':>3}")
        sys.stdout.flush()
    print()
    for pattern in patterns:
        for kind in ("hot", "cold"):
            group = [r for r in rows if r["pattern"] == pattern and r["kind"] == kind]
            if group:
                both = sum(r["colour ok"] and r["structure ok"] for r in group)
                print(f"{pattern:<16}{kind:<5}{both:3d}/{len(group)} meet both bars "
                      f"(colour {sum(r['colour ok'] for r in group)}, structure {sum(r['structure ok'] for r in group)})")
    passed = sum(r["colour ok"] and r["structure ok"] for r in rows)
    print(f"\n{passed}/{len(rows)} cases meet both bars")
    if args.json is not None:
        result = {"table": args.table, "model_id": model.model_id, "fusion": "unmarked" if args.unmarked else "released",
                  "overlay_opacity": OVERLAY_OPACITY, "cases": rows, "passed": passed}
        write_atomically([json_output(args.json, result)], False)


if __name__ == "__main__":
    main()
