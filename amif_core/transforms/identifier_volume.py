"""The text-plate lattice: the 3D identifier of key format 6, which those keys' unlock rebuilds; and the text
drawing and volume planes that the identifier of :mod:`amif_core.transforms.identifier_tile`, which replaced it,
shares.

A volume's voxel array (z, y, x) is cut into a lattice of cells (the key records how many): along each
axis as many as fit the longest extent a cell's text needs there (its width
or its height, plus a margin), sharing that side evenly. Each cell carries
the identifier as a text plate parallel to the plane across one numpy axis:
the text, upright as a viewer shows that plane, repeated to fill the cell's
face, and extruded through the cell's thickness. Cell (i, j, k) starts with
axis ``(i + j + k) % 3``, then layers of cells that lack a plate of their own
plane take one from a neighbour that can spare it, so every slice of every
plane cuts at least one plate face-on (legible text) and the others edge-on,
as bars one cell long. (A format-6 key of a volume too small for a lattice holds the 2D identifier.)

The planes are those of the voxel grid: each plane's text is upright in the
standard view nearest to it (:func:`amif_core.io.geometry.display_orientation`),
so in an oblique volume it is tilted by the obliquity in a view that
reformats along the patient's axes, and upright in a view along the grid.

The © is drawn as a ring around a "c" arc with the letters' stroke width,
as the font's own glyph fills in at small sizes. 2D slices keep the tiled
2D identifier of :mod:`amif_core.transforms.identifier`. Design and figures:
docs/identifier.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from amif_core.transforms.identifier import font, stroke_width

COPYRIGHT = "\u00a9"
LINE_GAP = 0.35  # blank between text lines and around a block, as a fraction of the font size
CELL_MARGIN = 0.25  # the least blank a cell keeps around its text, as a fraction of the font size
WORD_GAP = 0.6  # blank between repeats of the text on a line, as a fraction of the font size

Orientation = tuple[bool, bool, bool]  # transpose, flip_rows, flip_cols: IdentifierStyle's fields for one plane
UPRIGHT: tuple[Orientation, Orientation, Orientation] = ((False, False, False),) * 3


@dataclass(frozen=True)
class VolumePlanes:
    """How a volume's planes show on screen: ``orientations``, per numpy axis of its (z, y, x) voxel array, the
    (transpose, flip_rows, flip_cols) that make text on the slices across that axis read upright (as in
    :class:`~amif_core.transforms.identifier.IdentifierStyle`); ``axis``: the numpy axis the volume is sliced along.
    A plain (D, H, W) array is its own (z, y, x) grid: every plane upright as stored, sliced along axis 0."""

    orientations: tuple[Orientation, Orientation, Orientation] = UPRIGHT
    axis: int = 0


@dataclass(frozen=True)
class Lattice:
    """What rebuilds a volume's 3D identifier mask (stored in the key as :meth:`to_dict`).

    ``font_px``: the text's font size in voxels; ``cells``: how many cells
    the volume holds along numpy axes (z, y, x) of its voxel array (they
    share each side evenly); ``planes`` and ``axis`` as in
    :class:`VolumePlanes` (the slicing axis comes first in the mask of
    :func:`lattice_mask`).
    """

    font_px: int
    cells: tuple[int, int, int]
    planes: tuple[Orientation, Orientation, Orientation] = UPRIGHT
    axis: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: {"font_px", "cells", "planes", "axis"}."""
        return {"font_px": self.font_px, "cells": list(self.cells), "planes": [list(p) for p in self.planes],
                "axis": self.axis}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Lattice":
        """The inverse of :meth:`to_dict`."""
        return cls(font_px=int(data["font_px"]), cells=tuple(int(c) for c in data["cells"]),
                   planes=tuple(tuple(bool(f) for f in p) for p in data["planes"]), axis=int(data["axis"]))


def _text_parts(text: str) -> list[str]:
    """``text`` split around each ©, the © kept as its own part."""
    parts, current = [], ""
    for char in text:
        if char == COPYRIGHT:
            parts += [current, char] if current else [char]
            current = ""
        else:
            current += char
    return parts + ([current] if current else [])


def line_size(text: str, font_px: int) -> tuple[int, int]:
    """(width, height) in pixels of one line of ``text`` as :func:`draw_line` draws it."""
    face, stroke = font(font_px), stroke_width(font_px)
    width = 0.0
    for part in _text_parts(text):
        width += _copyright_side(font_px) + 1 if part == COPYRIGHT else face.getlength(part) + 2 * stroke
    return math.ceil(width), _line_height(font_px)


def _line_height(font_px: int) -> int:
    return max(_copyright_side(font_px), math.ceil(font_px * 0.75) + 2 * stroke_width(font_px))


def _copyright_side(font_px: int) -> int:
    return round(font_px * 0.9)


def draw_line(draw: ImageDraw.ImageDraw, x: float, y: float, text: str, font_px: int) -> None:
    """Draw one line of ``text`` with its top left at (x, y); capitals fill :func:`_line_height`."""
    face, stroke = font(font_px), stroke_width(font_px)
    cap_top = face.getbbox("M")[1]
    height = _line_height(font_px)
    for part in _text_parts(text):
        if part == COPYRIGHT:
            side = _copyright_side(font_px)
            top = y + (height - side) / 2
            width = 1 + stroke
            draw.ellipse((x, top, x + side - 1, top + side - 1), outline=255, width=width)
            inner = side * 0.24
            draw.arc((x + inner, top + inner, x + side - 1 - inner, top + side - 1 - inner), 40, 320, fill=255,
                     width=width)
            x += side + 1
        else:
            draw.text((x + stroke, y + stroke - cap_top), part, font=face, fill=255, stroke_width=stroke,
                      stroke_fill=255)
            x += face.getlength(part) + 2 * stroke


def _screen_tile(text: str, font_px: int, rows: int, cols: int) -> np.ndarray:
    """A (rows, cols) {0, 1} uint8 face of a cell, text upright: as many lines and repeats as fit, centred."""
    width, height = line_size(text, font_px)
    margin = LINE_GAP * font_px
    pitch_y, pitch_x = height + margin, width + WORD_GAP * font_px
    lines = max(1, int((rows - margin) // pitch_y))
    repeats = max(1, int((cols - margin + WORD_GAP * font_px) // pitch_x))
    layer = Image.new("L", (cols, rows))
    draw = ImageDraw.Draw(layer)
    top = (rows - (lines * pitch_y - margin)) / 2
    left = (cols - (repeats * pitch_x - WORD_GAP * font_px)) / 2
    for line in range(lines):
        for repeat in range(repeats):
            draw_line(draw, round(left + repeat * pitch_x), round(top + line * pitch_y), text, font_px)
    return (np.asarray(layer) >= 128).astype(np.uint8)


def _face(text: str, lattice: Lattice, sides: tuple[int, int, int], axis: int) -> np.ndarray:
    """The face of the cells across numpy ``axis``, ``sides`` (z, y, x) long, in the array's own (rows, cols)."""
    rows, cols = (sides[a] for a in range(3) if a != axis)
    transpose, flip_rows, flip_cols = lattice.planes[axis]
    tile = _screen_tile(text, lattice.font_px, *((cols, rows) if transpose else (rows, cols)))
    if transpose:
        tile = tile.T
    return tile[:: -1 if flip_rows else 1, :: -1 if flip_cols else 1]


def in_plane_extents(text: str, font_px: int, orientation: Orientation) -> tuple[int, int]:
    """What a face needs along its array rows and columns: (rows, cols) pixels, one line of text plus margins."""
    width, height = line_size(text, font_px)
    margin = max(2, round(CELL_MARGIN * font_px))
    screen = (height + margin, width + margin)
    return screen[::-1] if orientation[0] else screen


def zyx_shape(shape: tuple[int, int, int], axis: int) -> tuple[int, int, int]:
    """The (z, y, x) shape of a volume whose (D, H, W) ``shape`` has numpy axis ``axis`` first."""
    return tuple(np.moveaxis(np.empty(shape, dtype=np.bool_), 0, axis).shape)


@lru_cache(maxsize=16)
def _orientations(cells: tuple[int, int, int]) -> np.ndarray:
    """The normal axis of each cell's face, (cells) int64 in {0, 1, 2}: ``(i + j + k) % 3``, repaired so that each
    layer of cells across an axis holds a face across that axis wherever another layer can spare one."""
    grid = np.indices(cells).sum(axis=0) % 3
    for _ in range(sum(cells)):
        changed = False
        for axis in range(3):
            for layer in range(cells[axis]):
                cut = np.take(grid, layer, axis=axis)
                if (cut == axis).any():
                    continue
                for place in zip(*np.nonzero(cut >= 0)):
                    cell = list(place)
                    cell.insert(axis, layer)
                    other = int(grid[tuple(cell)])
                    if int((np.take(grid, cell[other], axis=other) == other).sum()) > 1:
                        grid[tuple(cell)] = axis
                        changed = True
                        break
        if not changed:
            break
    return grid


@lru_cache(maxsize=1)  # one volume's mask (uint8, the volume's size): protect, then its key's unlock, reuse it
def _volume_mask(text: str, shape: tuple[int, int, int], lattice: Lattice) -> np.ndarray:
    index = [np.arange(n) * count // n for n, count in zip(shape, lattice.cells)]
    starts = [-(-np.arange(count) * n // count) for n, count in zip(shape, lattice.cells)]
    within = [np.arange(n) - start[i] for n, start, i in zip(shape, starts, index)]
    sides = tuple(-(-n // count) for n, count in zip(shape, lattice.cells))
    orientation = _orientations(lattice.cells)[index[0][:, None, None], index[1][None, :, None],
                                               index[2][None, None, :]]
    mask = np.zeros(shape, dtype=np.uint8)
    for normal in range(3):
        face = _face(text, lattice, sides, normal)
        rows, cols = (within[a] for a in range(3) if a != normal)
        plane = face[rows[:, None], cols[None, :]]
        mask = np.where(orientation == normal, np.expand_dims(plane, normal), mask)
    mask.setflags(write=False)
    return mask


def lattice_mask(text: str, shape: tuple[int, int, int], lattice: Lattice) -> np.ndarray:
    """The 3D identifier mask, read-only uint8 {0, 1} of ``shape``: the volume's (D, H, W), ``lattice.axis`` first.

    The lattice lies on the (z, y, x) voxel array, so slice d of the result
    is the cross-section of the 3D mask in the plane the image is cut in.
    Cached.
    """
    return np.moveaxis(_volume_mask(text, zyx_shape(shape, lattice.axis), lattice), lattice.axis, 0)
