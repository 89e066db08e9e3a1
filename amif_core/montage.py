"""PNG montages of volumes on one grid: an axial, a coronal and a sagittal slice per column.

Slices are shown in the radiological convention (patient right on the image
left, anterior up in axial views, superior up otherwise), found from each
volume's direction cosines, and drawn at one common physical scale (mm per
pixel), so anisotropic voxels are not squashed.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw, ImageFont

from amif_core.atomic import Output, write_atomically
from amif_core.transforms.colour import COLOUR_TABLES, apply_table
from amif_core.transforms.intensity import fit_normalisation

COLORMAPS = ("grey", "rgb", *COLOUR_TABLES)
GAP = 4
TITLE_PX = 16


@dataclass(frozen=True)
class MontageColumn:
    """One column: ``title`` drawn above it, ``image`` a 3D volume, ``colormap`` one of :data:`COLORMAPS`.

    A scalar volume is shown in "grey" or through a colour table (a key of
    :data:`~amif_core.transforms.colour.COLOUR_TABLES`); an RGB volume (8-bit,
    or float in [0, 1]) as it is, with "rgb". ``window``: (low, high) intensities
    mapped to black and white (to the table's ends); None fits the robust
    percentile window of the volume.
    """

    title: str
    image: sitk.Image
    colormap: str = "grey"
    window: tuple[float, float] | None = None


def _orientation(image: sitk.Image) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """For each oriented axis (superior, posterior, left): the image index axis it runs along, and whether it is
    flipped."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    perm = max(permutations(range(3)), key=lambda p: sum(abs(direction[axis, p[axis]]) for axis in range(3)))
    axes = (perm[2], perm[1], perm[0])
    return axes, tuple(bool(direction[physical, perm[physical]] < 0) for physical in (2, 1, 0))


def oriented(image: sitk.Image) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A view of the voxels with numpy axes (superior, posterior, left) increasing, and their spacings in mm.

    Axes are permuted and flipped to the nearest LPS orientation (no
    resampling); keep ``image`` alive while using the view.
    """
    axes, flips = _orientation(image)
    array = sitk.GetArrayViewFromImage(image)  # numpy axis k is index axis 2 - k; RGB last
    view = np.transpose(array, [2 - axis for axis in axes] + list(range(3, array.ndim)))
    for k, flip in enumerate(flips):
        if flip:
            view = np.flip(view, axis=k)
    spacing = image.GetSpacing()
    return view, (spacing[axes[0]], spacing[axes[1]], spacing[axes[2]])


def oriented_index(image: sitk.Image, point: Sequence[float]) -> tuple[int, int, int]:
    """The voxel of :func:`oriented`'s view nearest to the physical (LPS, mm) ``point``, clamped into the grid:
    (superior, posterior, left) indices."""
    axes, flips = _orientation(image)
    index = image.TransformPhysicalPointToContinuousIndex(tuple(float(x) for x in point))
    size = image.GetSize()
    out = []
    for axis, flip in zip(axes, flips):
        i = min(max(int(round(index[axis])), 0), size[axis] - 1)
        out.append(size[axis] - 1 - i if flip else i)
    return out[0], out[1], out[2]


def hottest_point(image: sitk.Image, sigma_mm: float = 4.0) -> tuple[float, float, float]:
    """The physical point (LPS, mm) of a scalar volume's maximum after Gaussian smoothing by ``sigma_mm``.

    Smoothing makes the maximum that of a hot region (a lesion) rather than
    of one noisy voxel.
    """
    smoothed = sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), sigma_mm)
    values = sitk.GetArrayViewFromImage(smoothed)
    z, y, x = np.unravel_index(int(np.argmax(values)), values.shape)
    return smoothed.TransformIndexToPhysicalPoint((int(x), int(y), int(z)))


PLANES = ("axial", "coronal", "sagittal")


def plane_slice(view: np.ndarray, plane: str, index: int) -> np.ndarray:
    """Slice ``index`` of ``plane`` (one of :data:`PLANES`) of an :func:`oriented` view, as a viewer shows it.

    Rows run top to bottom and columns left to right on screen (radiological
    convention); RGB stays last. Returns a view of ``view``; ``index`` counts
    along the view's superior, posterior or left axis.
    """
    if plane == "axial":
        return view[index]
    if plane == "coronal":
        return view[::-1, index, :]
    return view[::-1, :, index]


PLANE_AXES = {"axial": (1, 2), "coronal": (0, 2), "sagittal": (0, 1)}  # the oriented axes of a plane's rows, cols


def _slices(image: sitk.Image, centre: tuple[int, int, int]) -> list[tuple[np.ndarray, tuple[float, float]]]:
    """The axial, coronal and sagittal slices through ``centre`` (an :func:`oriented` index) as float32 arrays
    (rows top to bottom, RGB last) with their (row, column) spacings."""
    view, spacing = oriented(image)
    return [(np.array(plane_slice(view, plane, centre[axis]), dtype=np.float32),
             (spacing[PLANE_AXES[plane][0]], spacing[PLANE_AXES[plane][1]]))
            for axis, plane in enumerate(PLANES)]


def _on_screen(centre: tuple[int, int, int], shape: tuple[int, int, int], plane: str) -> tuple[float, float]:
    """Where ``centre`` lies in ``plane``'s slice as :func:`plane_slice` shows it: (row, column) as fractions of
    the slice's height and width (voxel centres)."""
    rows, cols = PLANE_AXES[plane]
    row = centre[rows] if plane == "axial" else shape[0] - 1 - centre[0]  # coronal, sagittal: superior up
    return (row + 0.5) / shape[rows], (centre[cols] + 0.5) / shape[cols]


def _colour(values: np.ndarray, colormap: str) -> np.ndarray:
    """(H, W) float in [0, 1] (or (H, W, 3) with "rgb") -> (H, W, 3) uint8."""
    if colormap == "rgb":
        rgb = values
    elif colormap in COLOUR_TABLES:
        rgb = apply_table(values, COLOUR_TABLES[colormap])
    else:
        rgb = np.repeat(values[..., None], 3, axis=-1)
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def _resize(values: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of an (H, W) or (H, W, C) float32 array to (h, w) (or (h, w, C))."""
    planes = values[..., None] if values.ndim == 2 else values
    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(planes[..., c]), mode="F").resize(
        (w, h), Image.Resampling.BILINEAR)) for c in range(planes.shape[-1])], axis=-1)
    return out[..., 0] if values.ndim == 2 else out


def _window(column: MontageColumn) -> tuple[float, float]:
    if column.window is not None:
        return column.window
    if column.colormap == "rgb":  # 8-bit RGB (a stored protected fusion) or float RGB in [0, 1]
        return (0.0, 255.0) if column.image.GetPixelID() == sitk.sitkVectorUInt8 else (0.0, 1.0)
    fitted = fit_normalisation(sitk.GetArrayViewFromImage(column.image))
    return fitted.low, fitted.high


MARK = (0, 255, 255)  # cyan: apart from the grey scale and from the hot-iron and rainbow tables' reds and yellows
MARK_FRACTION = 0.08  # length of each tick, of the tile's longer side


def render_montage(columns: Sequence[MontageColumn], tile_px: int = 256,
                   centre: Sequence[float] | None = None) -> np.ndarray:
    """Render rows (axial, coronal, sagittal) x ``columns`` into an RGB image: (H, W, 3) uint8.

    All column volumes must share one grid. ``tile_px``: the longest
    physical side among the three views is drawn this many pixels long.
    ``centre``: a physical point (LPS, mm) the three planes pass through,
    marked on every tile by ticks at its edges that point at it (they never
    cover it); None: the middle slices, unmarked.
    """
    if not columns:
        raise ValueError("A montage needs at least one column.")
    for column in columns:
        if column.colormap not in COLORMAPS:
            raise ValueError(f"Unknown colormap {column.colormap!r}; use one of {COLORMAPS}.")
        if (column.colormap == "rgb") != (column.image.GetNumberOfComponentsPerPixel() == 3):
            raise ValueError(f"Column {column.title!r}: use colormap 'rgb' for an RGB volume, and only for one.")
        if column.image.GetSize() != columns[0].image.GetSize():
            raise ValueError("All montage volumes must share one grid; resample them first.")
    view_shape = oriented(columns[0].image)[0].shape[:3]
    through = (oriented_index(columns[0].image, centre) if centre is not None
               else (view_shape[0] // 2, view_shape[1] // 2, view_shape[2] // 2))
    views = [_slices(column.image, through) for column in columns]
    extents = [(values.shape[0] * spacing[0], values.shape[1] * spacing[1]) for values, spacing in views[0]]
    mm_per_px = max(max(e) for e in extents) / tile_px
    tiles = [(max(1, round(h / mm_per_px)), max(1, round(w / mm_per_px))) for h, w in extents]
    cell_w = max(w for _, w in tiles)
    height = TITLE_PX + GAP + sum(h + GAP for h, _ in tiles)
    canvas = np.zeros((height, len(columns) * (cell_w + GAP) - GAP, 3), dtype=np.uint8)
    for c, (column, slices) in enumerate(zip(columns, views)):
        low, high = _window(column)
        top = TITLE_PX + GAP
        for (values, _), (h, w) in zip(slices, tiles):
            resized = _resize(values, h, w)
            scaled = np.clip((resized - low) / (high - low), 0, 1) if high > low else np.zeros_like(resized)
            left = c * (cell_w + GAP) + (cell_w - w) // 2
            canvas[top : top + h, left : left + w] = _colour(scaled, column.colormap)
            top += h + GAP
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    if centre is not None:
        for c in range(len(columns)):
            top = TITLE_PX + GAP
            for plane, (h, w) in zip(PLANES, tiles):
                left = c * (cell_w + GAP) + (cell_w - w) // 2
                _draw_ticks(draw, left, top, h, w, _on_screen(through, view_shape, plane))
                top += h + GAP
    font = ImageFont.load_default(size=TITLE_PX - 3)
    for c, column in enumerate(columns):
        width = draw.textlength(column.title, font=font)
        draw.text((c * (cell_w + GAP) + (cell_w - width) / 2, 1), column.title, font=font, fill=(255, 255, 255))
    return np.asarray(picture)


def _draw_ticks(draw: ImageDraw.ImageDraw, left: int, top: int, h: int, w: int,
                at: tuple[float, float]) -> None:
    """Four ticks from the edges of the tile at (left, top), h x w pixels, pointing at ``at`` (row, column
    fractions): a crosshair with its middle left open."""
    y, x = top + at[0] * h, left + at[1] * w
    tick = max(3, round(MARK_FRACTION * max(h, w)))
    draw.line([(x, top), (x, top + tick)], fill=MARK, width=2)
    draw.line([(x, top + h - 1 - tick), (x, top + h - 1)], fill=MARK, width=2)
    draw.line([(left, y), (left + tick, y)], fill=MARK, width=2)
    draw.line([(left + w - 1 - tick, y), (left + w - 1, y)], fill=MARK, width=2)


def png_output(rgb: np.ndarray, path: str | Path) -> Output:
    """An :class:`~amif_core.atomic.Output` writing an (H, W, 3) uint8 array as PNG."""
    return Output(Path(path), lambda temp: Image.fromarray(rgb).save(temp, format="PNG"))


def write_montage(columns: Sequence[MontageColumn], path: str | Path, force: bool = False, tile_px: int = 256) -> None:
    """Render :func:`render_montage` and write it as a PNG, atomically; never overwrites without ``force``."""
    write_atomically([png_output(render_montage(columns, tile_px), path)], force)
