"""Small synthetic 3D scans for the volume, key file and command line tests.

Volumes are filled from functions of physical (LPS, mm) position, so two
volumes on different grids show the same anatomy, as registered scans do.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from amif_core.inference.model import AMIFModel

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def rotation(about_x: float = 0.0, about_y: float = 0.0, about_z: float = 0.0) -> tuple[float, ...]:
    """Row-major 3x3 rotation (degrees about x, then y, then z) as a SimpleITK direction."""
    cx, cy, cz = (np.cos(np.radians(a)) for a in (about_x, about_y, about_z))
    sx, sy, sz = (np.sin(np.radians(a)) for a in (about_x, about_y, about_z))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return tuple(float(v) for v in (rz @ ry @ rx).ravel())


def grid(size: tuple[int, int, int], spacing: tuple[float, float, float], direction: tuple[float, ...] = IDENTITY,
         centre: tuple[float, float, float] = (0.0, 0.0, 0.0), pixel_type: int = sitk.sitkFloat32) -> sitk.Image:
    """An empty volume of ``size`` (x, y, z) voxels whose centre lies at physical point ``centre``."""
    image = sitk.Image([int(s) for s in size], pixel_type)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection(direction)
    matrix = np.asarray(direction).reshape(3, 3)
    half = (np.asarray(size) - 1) / 2 * np.asarray(spacing)
    image.SetOrigin([float(v) for v in np.asarray(centre) - matrix @ half])
    return image


def physical_points(image: sitk.Image) -> np.ndarray:
    """(z, y, x, 3) physical coordinates of every voxel centre."""
    size = image.GetSize()
    k, j, i = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in size[::-1]], indexing="ij")
    index = np.stack([i, j, k], axis=-1) * np.asarray(image.GetSpacing())
    matrix = np.asarray(image.GetDirection()).reshape(3, 3)
    return index @ matrix.T + np.asarray(image.GetOrigin())


def _mri_values(p: np.ndarray) -> np.ndarray:
    r = np.linalg.norm(p, axis=-1)
    return 80 + 600 * (r < 18) + 300 * np.exp(-np.sum((p - [6, -4, 3]) ** 2, axis=-1) / 60) \
        + 40 * np.sin(p[..., 0] / 3) * np.cos(p[..., 1] / 4)


def _pet_values(p: np.ndarray) -> np.ndarray:
    return 0.5 + 8 * np.exp(-np.sum((p - [-5, 5, -2]) ** 2, axis=-1) / 40) + 2 * (np.linalg.norm(p, axis=-1) < 15)


def filled(image: sitk.Image, kind: str = "mri", seed: int = 0) -> sitk.Image:
    """``image``'s grid filled with the "mri" or "pet" phantom (plus a little noise), in its pixel type."""
    values = (_mri_values if kind == "mri" else _pet_values)(physical_points(image))
    values = values + np.random.default_rng(seed).normal(0, 0.02 * values.std(), values.shape)
    dtype = sitk.GetArrayViewFromImage(image).dtype
    if dtype.kind in "iu":
        values = np.round(values)
    out = sitk.GetImageFromArray(values.astype(dtype))
    out.CopyInformation(image)
    return out


def scan(size, spacing, direction=IDENTITY, centre=(0.0, 0.0, 0.0), kind="mri", pixel_type=sitk.sitkFloat32,
         seed=0) -> sitk.Image:
    """Shorthand for ``filled(grid(...), kind, seed)``."""
    return filled(grid(size, spacing, direction, centre, pixel_type), kind, seed)


def sha256(path: Path) -> str:
    """SHA-256 hex of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """{relative path: SHA-256} of every file under ``folder`` (hidden files included)."""
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def oblique_mri() -> sitk.Image:
    """Odd sizes, anisotropic voxels, oblique direction, int16 like most MRIs."""
    return scan((23, 19, 9), (0.9, 1.3, 3.1), rotation(about_x=20, about_z=10), pixel_type=sitk.sitkInt16)


def coarse_pet() -> sitk.Image:
    """Another grid: coarser, rotated differently, shifted, wider."""
    return scan((15, 13, 11), (1.7, 2.2, 3.0), rotation(about_y=-15), centre=(1.0, -1.0, 0.5), kind="pet")


def geometry_close(a: sitk.Image, b: sitk.Image, tolerance: float = 1e-6) -> bool:
    """Same size, and spacing, origin and direction equal within ``tolerance``."""
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=0, atol=tolerance)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), rtol=0, atol=tolerance)
            and np.allclose(a.GetDirection(), b.GetDirection(), rtol=0, atol=tolerance))


def reference_fusion(model: AMIFModel, mri: sitk.Image, other: sitk.Image, axis: int,
                     colour_table: str | None = None) -> np.ndarray:
    """model.fuse_clean of the (resampled) inputs, back in (z, y, x) order (RGB last for a colour fusion)."""
    from amif_core.evaluation.archive import clean_fusion

    return clean_fusion(model, mri, other, axis, colour_table)