"""The 3D identifier of a volume: one periodic tile of words, read along the voxel diagonal.

Every voxel (z, y, x) of the mask reads one 2D tile F at (u, v) = (y - z,
x - z). Each plane then sees the tile through an integer map of determinant
+-1: slice z0 across axis 0 sees F(y - z0, x - z0), slice y0 across axis 1
sees F(y0 - z, x - z), slice x0 across axis 2 sees F(y - z, x0 - z). So every
slice of every plane is a window onto the same periodic pattern and covers
the same share of itself, up to the words its edges cut: the coverage is
even by construction, in every plane and on every grid (the text plates of
format-6 keys, extruded through whole cells, cover 4 to 57 % of a slice).

The tile holds the identifier three times per period, once for each plane,
each word drawn through the inverse of its plane's map so that it reads
upright there (with the plane's transpose and flips, as
:class:`~amif_core.transforms.identifier_volume.VolumePlanes` gives them). In
the two other planes that word shows sheared, as slanted strokes. The period
is a lattice of (u, v) with basis (0, Pv) and (Pu, s); its size is chosen so
that the words cover :data:`COVERAGE` of the tile, and the period, shear and
the words' places are searched (seeded, so the same volume gets the same
layout) for the most even coverage of the volume's own slices. The key stores
the result (:meth:`DiagonalTile.to_dict`), so unlock rebuilds the mask
without searching. Design and figures: docs/identifier.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from amif_core.transforms.identifier import MIN_FONT_PX, IdentifierStyle
from amif_core.transforms.identifier_volume import (
    UPRIGHT,
    Orientation,
    VolumePlanes,
    draw_line,
    in_plane_extents,
    line_size,
    zyx_shape,
)

KIND = "diagonal"  # the "kind" of a key's identifier_lattice that holds a DiagonalTile
COVERAGE = 0.18  # share of the tile, and so of every slice, the words cover: OCR reads more words than at 0.14,
# and thin volumes (60 slices) still stay under 25 % in every plane
# Candidate layouts tried: on the demo grid, the best of 100 held a whole upright word in 57 % of one plane's slices,
# the best of 300 in 66 % of every plane's.
SEARCH_TRIES = 300
SEARCH_SEED = 0
LAYOUT_GRID_PX = 16  # the layout is searched at about this font size and scaled up: a 51 px font costs what 17 px does
MAX_ASPECT = 1.6  # the period's sides differ at most this much, so every slice spans periods both ways
MAX_SPREAD = 0.05  # a layout whose slices' coverage strays further from COVERAGE is taken only when none is closer


@dataclass(frozen=True)
class DiagonalTile:
    """What rebuilds a volume's 3D identifier mask (stored in the key as :meth:`to_dict`).

    ``font_px``: the words' font size in voxels; ``period``: (Pu, Pv, s), the
    tile's period lattice with basis (0, Pv) and (Pu, s) on (u, v);
    ``anchors``: where the word of each plane (numpy axes 0, 1, 2 of the
    (z, y, x) array) starts on the tile, three (u, v) pairs; ``planes`` and
    ``axis`` as in :class:`~amif_core.transforms.identifier_volume.VolumePlanes`.
    """

    font_px: int
    period: tuple[int, int, int]
    anchors: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    planes: tuple[Orientation, Orientation, Orientation] = UPRIGHT
    axis: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: {"kind": "diagonal", "font_px", "period", "anchors", "planes", "axis"}."""
        return {"kind": KIND, "font_px": self.font_px, "period": list(self.period),
                "anchors": [list(a) for a in self.anchors], "planes": [list(p) for p in self.planes],
                "axis": self.axis}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DiagonalTile":
        """The inverse of :meth:`to_dict`."""
        return cls(font_px=int(data["font_px"]), period=tuple(int(p) for p in data["period"]),
                   anchors=tuple(tuple(int(c) for c in a) for a in data["anchors"]),
                   planes=tuple(tuple(bool(f) for f in p) for p in data["planes"]), axis=int(data["axis"]))


def word_bitmap(text: str, font_px: int, orientation: Orientation) -> np.ndarray:
    """One line of ``text``, (rows, cols) {0, 1} uint8, turned as ``orientation`` says for its plane's array.

    Each letter is drawn on its own, so the stroke that thickens the glyphs
    pads every letter rather than the whole line: neighbours keep twice the
    stroke width apart instead of touching (RapidOCR read the touching "M" of
    "AMIF" as "LI").
    """
    widths = [line_size(char, font_px)[0] for char in text]
    layer = Image.new("L", (sum(widths), line_size(text, font_px)[1]))
    draw, x = ImageDraw.Draw(layer), 0
    for char, width in zip(text, widths):
        draw_line(draw, x, 0, char, font_px)
        x += width
    word = (np.asarray(layer) >= 128).astype(np.uint8)
    transpose, flip_rows, flip_cols = orientation
    if transpose:
        word = word.T
    return word[:: -1 if flip_rows else 1, :: -1 if flip_cols else 1]


def _on_tile(rows: np.ndarray, cols: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Where pixel (row, col) of a slice across numpy ``axis`` (rows and cols its in-plane axes in order) lies on
    the tile, relative to the slice's own origin: the inverse of the plane's view of (y - z, x - z)."""
    if axis == 0:
        return rows, cols
    if axis == 1:
        return -rows, cols - rows
    return cols - rows, -rows


def _wrap(u: np.ndarray, v: np.ndarray, period: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) reduced into the tile's fundamental domain [0, Pu) x [0, Pv)."""
    pu, pv, shear = period
    turns = np.floor_divide(u, pu)
    return u - turns * pu, np.mod(v - turns * shear, pv)


def _box(rows: int, cols: int, margin: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """A word's rectangle of ``rows`` x ``cols`` grown by ``margin``, as tile points (u, v) from its anchor."""
    r, c = np.mgrid[-margin : rows + margin, -margin : cols + margin]
    return _on_tile(r.ravel(), c.ravel(), axis)


def _overlaps(boxes: list[tuple[np.ndarray, np.ndarray]], anchors: list[tuple[int, int]],
              period: tuple[int, int, int]) -> bool:
    """True when the boxes, placed at ``anchors`` and repeated by the period, overlap themselves or each other."""
    taken = np.zeros(period[:2], dtype=np.int32)
    for (u, v), (a, b) in zip(boxes, anchors):
        wu, wv = _wrap(u + a, v + b, period)
        np.add.at(taken, (wu, wv), 1)
    return bool(taken.max() > 1)


def _rows(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A box's points as runs along v: (u, first v, length) per row u. Every row of a box is one run: the box is
    a rectangle, or its image under a shear that keeps rows of v whole."""
    rows = np.unique(u)
    first = np.array([v[u == row].min() for row in rows])
    length = np.array([v[u == row].max() for row in rows]) - first + 1
    return rows, first, length


def _free_shifts(runs: tuple[np.ndarray, np.ndarray, np.ndarray], a: int, period: tuple[int, int, int],
                 counts: np.ndarray) -> np.ndarray:
    """Which shifts b along v leave the box's points (as :func:`_rows` runs) at (u + a, v + b) clear of the taken
    cells, (Pv,) bool; ``counts``: per tile row, the running count of taken cells over the row repeated three times."""
    pu, pv, shear = period
    rows, first, length = runs
    turns = np.floor_divide(rows + a, pu)
    starts = np.mod(first - turns * shear, pv)[:, None] + np.arange(pv)[None, :]  # (runs, Pv), each < 2 Pv
    ends = starts + np.minimum(length, pv)[:, None]  # < 3 Pv: within the row repeated three times
    hit = np.take_along_axis(counts[rows + a - turns * pu], ends, axis=1) - np.take_along_axis(
        counts[rows + a - turns * pu], starts, axis=1)
    return ~((hit > 0) | (length[:, None] > pv)).any(axis=0)


def _place(boxes: list[tuple[np.ndarray, np.ndarray]], period: tuple[int, int, int],
           rng: np.random.Generator) -> list[tuple[int, int]] | None:
    """Anchors for ``boxes`` in turn, each at a random free place of the periodic tile; None when one does not fit."""
    pu, pv, _ = period
    taken = np.zeros((pu, pv), dtype=bool)
    anchors = []
    for u, v in boxes:
        if _overlaps([(u, v)], [(0, 0)], period):
            return None  # the word meets its own repeat
        runs = _rows(u, v)
        counts = np.concatenate([np.zeros((pu, 1), np.int64), np.cumsum(np.tile(taken, 3), axis=1)], axis=1)
        first, found = int(rng.integers(0, pu)), None
        for step in range(pu):
            a = (first + step) % pu
            free = np.flatnonzero(_free_shifts(runs, a, period, counts))
            if free.size:
                found = (a, int(free[rng.integers(0, free.size)]))
                break
        if found is None:
            return None
        wu, wv = _wrap(u + found[0], v + found[1], period)
        taken[wu, wv] = True
        anchors.append(found)
    return anchors


def _pattern(words: list[np.ndarray], period: tuple[int, int, int],
             anchors: tuple[tuple[int, int], ...]) -> np.ndarray:
    """The tile's fundamental domain, (Pu, Pv) {0, 1} uint8: each plane's word (numpy axes 0, 1, 2;
    :func:`word_bitmap`) at its anchor."""
    pattern = np.zeros(period[:2], dtype=np.uint8)
    for axis, word in enumerate(words):
        u, v = _on_tile(*np.nonzero(word), axis)
        wu, wv = _wrap(u + anchors[axis][0], v + anchors[axis][1], period)
        pattern[wu, wv] = 1
    return pattern


def _words(text: str, tile: DiagonalTile) -> list[np.ndarray]:
    """The tile's three words, as :func:`word_bitmap` draws them for numpy axes 0, 1, 2."""
    return [word_bitmap(text, tile.font_px, tile.planes[axis]) for axis in range(3)]


def _read(pattern: np.ndarray, shear: int, z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The tile at (y - z, x - z) for broadcastable voxel indices."""
    wu, wv = _wrap(y - z, x - z, (*pattern.shape, shear))
    return pattern[wu, wv]


def _spread(pattern: np.ndarray, shear: int, zyx: tuple[int, int, int]) -> float:
    """How far the coverage of a slice of the volume strays from the tile's: max |slice - tile| over the three
    planes, from every ``stride``-th voxel (the slices hold whole periods, so a sample of them is enough)."""
    stride = max(1, min(zyx) // 64)
    z, y, x = np.ogrid[: zyx[0] : stride, : zyx[1] : stride, : zyx[2] : stride]
    mask = _read(pattern, shear, z, y, x)
    density = float(pattern.mean())
    return max(float(np.abs(mask.mean(axis=tuple(b for b in range(3) if b != a)) - density).max())
               for a in range(3))


def whole_word_shares(tile: DiagonalTile, word_shapes: list[tuple[int, int]],
                      zyx: tuple[int, int, int]) -> list[float]:
    """Per plane (numpy axes 0, 1, 2 of ``zyx``), the share in [0, 1] of its slices that hold at least one whole
    upright copy of its word: a copy starts where the slice reads the tile at that word's anchor.

    ``word_shapes``: the (rows, cols) of each plane's word. A plane D
    slices deep is sampled every D // 48-th slice.
    """
    shares = []
    for axis, (height, width) in enumerate(word_shapes):
        rows, cols = (zyx[a] for a in range(3) if a != axis)
        if height > rows or width > cols:
            shares.append(0.0)
            continue
        r, c = np.ogrid[: rows - height + 1, : cols - width + 1]
        u, v = _on_tile(r, c, axis)  # slice 0 of the plane; slice i reads the tile i * shift further on
        shift = ((-1, -1), (1, 0), (0, 1))[axis]
        held = []
        for index in range(0, zyx[axis], max(1, zyx[axis] // 48)):
            wu, wv = _wrap(u + shift[0] * index - tile.anchors[axis][0], v + shift[1] * index - tile.anchors[axis][1],
                           tile.period)
            held.append(bool(((wu == 0) & (wv == 0)).any()))
        shares.append(float(np.mean(held)))
    return shares


@lru_cache(maxsize=16)
def _search(text: str, font_px: int, planes: tuple[Orientation, Orientation, Orientation],
            zyx: tuple[int, int, int]) -> DiagonalTile | None:
    words = [word_bitmap(text, font_px, planes[axis]) for axis in range(3)]
    margin = max(2, round(font_px / 8))  # the least blank around each word's box
    boxes = [_box(*word.shape, margin, axis) for axis, word in enumerate(words)]
    coarse = max(1, round(font_px / LAYOUT_GRID_PX))
    # The coarse grid is fast but rounds the words' boxes up; the full grid, then a sparser tile, catch what it misses.
    for scale, sparser in ((coarse, 1.0), (1, 1.0), (1, 1.25)):
        tile = _search_at(font_px, planes, zyx, words, boxes, margin, scale, sparser)
        if tile is not None:
            return tile
    return None


def _search_at(font_px: int, planes: tuple[Orientation, Orientation, Orientation],
               zyx: tuple[int, int, int], words: list[np.ndarray], boxes: list[tuple[np.ndarray, np.ndarray]],
               margin: int, scale: int, sparser: float) -> DiagonalTile | None:
    """The best of :data:`SEARCH_TRIES` seeded layouts searched on a grid ``scale`` voxels coarse, the tile
    ``sparser`` times the area :data:`COVERAGE` asks; None when none fits."""
    # One voxel more blank than the least in the search, so that words do not crowd: the least is checked at full size.
    small = [_box(-(-word.shape[0] // scale), -(-word.shape[1] // scale), -(-(margin + 1) // scale), axis)
             for axis, word in enumerate(words)]
    area = sparser * sum(int(word.sum()) for word in words) / COVERAGE / scale**2
    side = math.sqrt(area)
    rng = np.random.default_rng(SEARCH_SEED)
    best: tuple[tuple[bool, float, float], DiagonalTile] | None = None
    for _ in range(SEARCH_TRIES):
        pv = int(rng.integers(int(side / MAX_ASPECT), int(side * MAX_ASPECT) + 1))
        pu = round(area / pv)
        if not side / MAX_ASPECT <= pu <= side * MAX_ASPECT:
            continue
        period = (pu, pv, int(rng.integers(0, pv)))
        order = (2, 1, 0)  # the tallest footprint first: it is the hardest to fit
        placed = _place([small[axis] for axis in order], period, rng)
        if placed is None:
            continue
        anchors = [(0, 0)] * 3
        for axis, (a, b) in zip(order, placed):
            anchors[axis] = (a * scale, b * scale)
        full = tuple(p * scale for p in period)
        if scale > 1 and _overlaps(boxes, anchors, full):
            continue
        candidate = DiagonalTile(font_px=font_px, period=full, anchors=tuple(anchors), planes=planes)
        spread = _spread(_pattern(words, full, candidate.anchors), full[2], zyx)
        held = min(whole_word_shares(candidate, [word.shape for word in words], zyx))
        score = (spread <= MAX_SPREAD, held, -spread)
        if best is None or score > best[0]:
            best = (score, candidate)
        if best[0][:2] == (True, 1.0):
            break  # every slice holds a whole word, at an even coverage: nothing better to find
    return best[1] if best is not None else None


def volume_tile(text: str, shape: tuple[int, int, int], style: IdentifierStyle = IdentifierStyle(),
                planes: VolumePlanes = VolumePlanes()) -> DiagonalTile | None:
    """The layout of a volume's 3D identifier, or None when the volume is too thin for one.

    ``shape``: the volume's (D, H, W), slicing axis ``planes.axis`` first.
    ``style.font_fraction`` sizes the font, of min(H, W), at least
    :data:`~amif_core.transforms.identifier.MIN_FONT_PX`. None when some
    plane cannot hold one upright line of the text and its margins (a stack
    of a few slices), or, never seen, when no layout of the search fits; such
    a volume keeps the 2D identifier. Deterministic; cached.
    """
    zyx = zyx_shape(shape, planes.axis)
    font_px = max(MIN_FONT_PX, round(style.font_fraction * min(shape[1:])))
    for normal in range(3):
        in_plane = [a for a in range(3) if a != normal]
        for a, extent in zip(in_plane, in_plane_extents(text, font_px, planes.orientations[normal])):
            if extent > zyx[a]:
                return None
    tile = _search(text, font_px, planes.orientations, zyx)
    return None if tile is None else replace(tile, axis=planes.axis)


@lru_cache(maxsize=1)  # one volume's mask (uint8, the volume's size): protect, then its key's unlock, reuse it
def _volume_mask(text: str, zyx: tuple[int, int, int], tile: DiagonalTile) -> np.ndarray:
    depth, rows, cols = zyx
    # Slice z is the tile at (y - z, x - z): one window of the tile laid over (y', x') in [-depth, rows) x
    # [-depth, cols), shifted diagonally by z, so no index array of the volume's size is built.
    y, x = np.ogrid[-depth:rows, -depth:cols]
    plane = _read(_pattern(_words(text, tile), tile.period, tile.anchors), tile.period[2], 0, y, x)
    mask = np.empty(zyx, dtype=np.uint8)
    for z in range(depth):
        mask[z] = plane[depth - z : depth - z + rows, depth - z : depth - z + cols]
    mask.setflags(write=False)
    return mask


def tile_mask(text: str, shape: tuple[int, int, int], tile: DiagonalTile) -> np.ndarray:
    """The 3D identifier mask, read-only uint8 {0, 1} of ``shape``: the volume's (D, H, W), ``tile.axis`` first.

    Slice d of the result is the cross-section of the 3D mask in the plane
    the image is cut in. Cached.
    """
    return np.moveaxis(_volume_mask(text, zyx_shape(shape, tile.axis), tile), tile.axis, 0)
