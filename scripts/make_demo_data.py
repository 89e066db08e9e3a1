#!/usr/bin/env python3
"""Build the MRI/PET demo pair bundled with ``amif demo``.

Both volumes derive from the ICBM 2009a nonlinear symmetric MNI152 template
(T1, grey- and white-matter probability maps) that ships inside the nilearn
wheel, so no download is needed:

* ``mri.nrrd``: the T1 template cropped to the brain bounding box plus a
  margin and resampled to 1.5 mm isotropic voxels (uint8, template units).
* ``pet.nrrd``: a synthetic FDG-like PET in SUV-like units (float32) on a
  coarser 3 mm grid with a wider field of view, so the two volumes never share
  a voxel grid. Uptake is GM + 0.25 * WM plus a spherical hypermetabolic
  lesion, Gaussian-smoothed to PET resolution with mild Poisson noise drawn
  from a fixed seed.
* ``LICENSE-MNI152.txt``: the template's copyright and permission notice and
  a note on how the files were derived.

Every step is deterministic: two runs give byte-identical files.

Usage::

    python scripts/make_demo_data.py [--out DIR] [--force]
"""

from __future__ import annotations

import argparse
import importlib.resources
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "amif_core" / "data" / "demo"
TEMPLATE = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"

MRI_SPACING_MM = 1.5
MRI_MARGIN_MM = 6.0
PET_SPACING_MM = 3.0
PET_MARGIN_MM = 15.0
PET_FWHM_MM = 7.0
WM_UPTAKE = 0.25  # relative to grey matter
GM_SUV = 7.0  # SUV of pure grey matter
LESION_CENTRE_RAS_MM = (32.0, 24.0, 30.0)  # right frontal, subcortical/juxtacortical
LESION_RADIUS_MM = 9.0
LESION_UPTAKE = 2.5  # relative to grey matter
COUNTS_PER_SUV = 50.0  # sets the noise level: about 5 % in grey matter
NOISE_SEED = 20090

NOTICE = """\
AMIF demo data: mri.nrrd and pet.nrrd
=====================================

Both files are derived from the MNI ICBM152 2009a nonlinear symmetric
template (Fonov et al., NeuroImage 47 S102, 2009; Fonov et al., NeuroImage 54
313-327, 2011), as redistributed in the nilearn package
(nilearn/datasets/data/mni_icbm152_{{t1,gm,wm}}_tal_nlin_sym_09a_converted.nii.gz).
The template carries this notice:

    Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre,
    Montreal Neurological Institute, McGill University. Permission to use,
    copy, modify, and distribute this software and its documentation for any
    purpose and without fee is hereby granted, provided that the above
    copyright notice appear in all copies. The authors and McGill University
    make no representations about the suitability of this software for any
    purpose. It is provided "as is" without express or implied warranty. The
    authors are not responsible for any data loss, equipment damage, property
    loss, or injury to subjects or patients resulting from the use or misuse
    of this software package.

How the files were made
-----------------------

mri.nrrd  The skull-stripped T1 template (uint8, values as in the template),
          cropped to the brain bounding box plus {mri_margin:g} mm and resampled
          (linear) to {mri_spacing:g} mm isotropic voxels.

pet.nrrd  A synthetic FDG-like PET, not a real scan (float32, SUV-like).
          Uptake = GM + {wm:g} * WM from the template's probability maps, plus
          a {radius:g} mm radius sphere at {lesion:g} x grey-matter uptake centred
          at RAS {ras} mm, i.e. LPS {lps} mm in the
          files' physical frame. Smoothed with a {fwhm:g} mm FWHM Gaussian,
          resampled (linear) to {pet_spacing:g} mm voxels over the brain bounding
          box plus {pet_margin:g} mm, scaled to SUV {gm_suv:g} for pure grey matter,
          with Poisson noise at {counts:g} counts per SUV unit (numpy seed {seed}).

Both volumes are in MNI space and overlap physically but on different voxel
grids. They are for demonstrating the software only, not for any clinical or
research use. Regenerate them from the repository root (byte for byte with
the same numpy, SimpleITK and nilearn versions) with:

    python scripts/make_demo_data.py --force
"""


def template_dir() -> Path:
    """Return the folder of MNI152 templates shipped inside the nilearn package."""
    return Path(str(importlib.resources.files("nilearn") / "datasets" / "data"))


def read_template(kind: str) -> sitk.Image:
    """Read one ICBM 2009a symmetric template volume (``t1``, ``gm`` or ``wm``) as float32."""
    return sitk.Cast(sitk.ReadImage(str(template_dir() / TEMPLATE.format(kind))), sitk.sitkFloat32)


def ras_to_lps(point: tuple[float, float, float]) -> tuple[float, float, float]:
    """Convert an RAS point (mm) to the LPS frame SimpleITK uses for physical space."""
    return (-point[0], -point[1], point[2])


def sphere_mask(
    like: sitk.Image, centre_lps: tuple[float, float, float], radius_mm: float
) -> np.ndarray:
    """Return a boolean (z, y, x) array of the voxels of ``like`` within a sphere.

    Distances are measured in index space scaled by the spacing, which equals
    physical distance because image directions are orthonormal.
    """
    centre = like.TransformPhysicalPointToContinuousIndex(centre_lps)
    axes = np.ogrid[tuple(slice(0, n) for n in reversed(like.GetSize()))]
    offsets = zip(axes, reversed(centre), reversed(like.GetSpacing()))
    return sum(((axis - c) * s) ** 2 for axis, c, s in offsets) <= radius_mm**2


def grid_around(mask: sitk.Image, margin_mm: float, spacing_mm: float) -> sitk.Image:
    """Return an empty isotropic grid covering the mask's bounding box plus a margin.

    The grid keeps the mask's direction; its extent runs from the outer voxel
    faces of the bounding box, widened by ``margin_mm`` on every side.
    """
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    box = stats.GetBoundingBox(1)
    first, count = np.array(box[:3]), np.array(box[3:])
    spacing = np.array(mask.GetSpacing())
    low_face = (first - 0.5) * spacing - margin_mm  # in index-axis millimetres
    extent = count * spacing + 2 * margin_mm
    size = [math.ceil(e / spacing_mm) for e in extent]
    direction = np.array(mask.GetDirection()).reshape(3, 3)
    origin = np.array(mask.GetOrigin()) + direction @ (low_face + 0.5 * spacing_mm)
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing([spacing_mm] * 3)
    grid.SetOrigin(origin.tolist())
    grid.SetDirection(mask.GetDirection())
    return grid


def resample(image: sitk.Image, grid: sitk.Image) -> sitk.Image:
    """Linearly resample ``image`` onto ``grid``; points outside the image become 0."""
    return sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def with_array(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    """Wrap ``array`` as an image with the geometry of ``like``."""
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    return image


def make_mri(t1: sitk.Image, brain: sitk.Image) -> sitk.Image:
    """Crop the T1 template around the brain and resample it to MRI_SPACING_MM, as uint8."""
    grid = grid_around(brain, MRI_MARGIN_MM, MRI_SPACING_MM)
    values = sitk.GetArrayFromImage(resample(t1, grid))
    return with_array(np.clip(np.rint(values), 0, 255).astype(np.uint8), grid)


def make_pet(gm: sitk.Image, wm: sitk.Image, brain: sitk.Image) -> sitk.Image:
    """Simulate an FDG-like PET (float32 SUV) with a hot lesion on a PET_SPACING_MM grid."""
    uptake = (sitk.GetArrayFromImage(gm) + WM_UPTAKE * sitk.GetArrayFromImage(wm)) / 255.0
    uptake[sphere_mask(gm, ras_to_lps(LESION_CENTRE_RAS_MM), LESION_RADIUS_MM)] = LESION_UPTAKE
    sigma_mm = PET_FWHM_MM / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    smooth = sitk.SmoothingRecursiveGaussian(with_array(uptake.astype(np.float32), gm), sigma_mm)
    grid = grid_around(brain, PET_MARGIN_MM, PET_SPACING_MM)
    mean_suv = np.maximum(sitk.GetArrayFromImage(resample(smooth, grid)), 0.0) * GM_SUV
    counts = np.random.default_rng(NOISE_SEED).poisson(mean_suv * COUNTS_PER_SUV)
    return with_array((counts / COUNTS_PER_SUV).astype(np.float32), grid)


def notice_text() -> str:
    """Return the licence notice and derivation note for LICENSE-MNI152.txt."""
    return NOTICE.format(
        mri_margin=MRI_MARGIN_MM, mri_spacing=MRI_SPACING_MM, wm=WM_UPTAKE,
        radius=LESION_RADIUS_MM, lesion=LESION_UPTAKE, ras=LESION_CENTRE_RAS_MM,
        lps=ras_to_lps(LESION_CENTRE_RAS_MM), fwhm=PET_FWHM_MM, pet_spacing=PET_SPACING_MM,
        pet_margin=PET_MARGIN_MM, gm_suv=GM_SUV, counts=COUNTS_PER_SUV, seed=NOISE_SEED,
    )


def write_atomically(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write`` on a temporary file beside ``path`` and move it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; data files must be world-readable
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_image(image: sitk.Image, path: Path) -> None:
    """Write ``image`` to ``path`` as a compressed NRRD, atomically."""
    write_atomically(path, lambda tmp: sitk.WriteImage(image, tmp, useCompression=True))


def write_text(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` as UTF-8 with LF line ends, atomically."""
    write_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline="\n"))


def describe(image: sitk.Image) -> str:
    """Summarise an image's grid in one line."""
    return (
        f"size={image.GetSize()} spacing={image.GetSpacing()} "
        f"origin={tuple(round(v, 3) for v in image.GetOrigin())} "
        f"direction={image.GetDirection()} type={image.GetPixelIDTypeAsString()}"
    )


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default: {DEFAULT_OUT.relative_to(REPO_ROOT)})")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    return parser.parse_args()


def main() -> int:
    """Build the demo pair and its notice in the output folder."""
    args = parse_args()
    paths = {name: args.out / name for name in ("mri.nrrd", "pet.nrrd", "LICENSE-MNI152.txt")}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not args.force:
        raise SystemExit(f"refusing to overwrite {', '.join(existing)} (use --force)")
    args.out.mkdir(parents=True, exist_ok=True)

    t1, gm, wm = (read_template(kind) for kind in ("t1", "gm", "wm"))
    brain = sitk.BinaryThreshold(t1, 0.5, 1e9, 1, 0)  # the template is skull-stripped
    mri, pet = make_mri(t1, brain), make_pet(gm, wm, brain)

    write_image(mri, paths["mri.nrrd"])
    write_image(pet, paths["pet.nrrd"])
    write_text(notice_text(), paths["LICENSE-MNI152.txt"])
    for name, path in paths.items():
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    print(f"mri: {describe(mri)}")
    print(f"pet: {describe(pet)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
