"""Rendering of the visible copyright identifier mask (the "m" of CCWM).

The owner's text is tiled diagonally, in a brick pattern, over a canvas twice
the slice size; each slice takes its mask as a crop of that canvas at its own
offset, so no crop of the image escapes the identifier. The tiling gap is
adjusted so the mask covers a target fraction of the slice, whatever the text.
Text is drawn with Pillow's built-in scalable font (no font file needed).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from amif_core.errors import InputError

MIN_FONT_PX = 16  # smaller, the protected strokes merge into blobs (seen on the 105 x 129 demo slices at 10 px)


@dataclass(frozen=True)
class IdentifierStyle:
    """How the identifier is drawn, relative to the slice size.

    ``font_fraction`` is the font size as a fraction of min(H, W), but at
    least :data:`MIN_FONT_PX` pixels;
    ``angle_deg`` the tiling angle (counter-clockwise); ``coverage`` the
    fraction of the canvas the mask should cover.

    The text is drawn upright in *screen* space, then mapped to the array:
    ``transpose`` swaps screen rows and columns, then ``flip_rows`` and
    ``flip_cols`` reverse the array's rows and columns, so the text reads
    correctly where a viewer shows the slice (see
    :func:`amif_core.io.geometry.display_orientation`). Plain 2D arrays keep the
    defaults: text upright with row 0 at the top.
    """

    font_fraction: float = 0.10
    angle_deg: float = 30.0
    coverage: float = 0.14
    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's built-in scalable font at ``size`` pixels (cached)."""
    return ImageFont.load_default(size=size)


def stroke_width(font_px: int) -> int:
    """The outline added around the glyphs at ``font_px``, in pixels: thick enough for the ink not to blur away."""
    return max(1, round(font_px / 18))


def _glyph_bitmap(char: str, size: int) -> bytes:
    image = Image.new("L", (2 * size, 2 * size))
    ImageDraw.Draw(image).text((0, 0), char, font=font(size), fill=255)
    return image.tobytes()


def validate_identifier(text: str) -> str:
    """Return ``text`` stripped, or raise :class:`~amif_core.errors.InputError` (a ValueError) if it cannot be rendered.

    The built-in font covers printable ASCII and a few symbols such as the
    copyright sign; other characters would render as empty boxes.
    """
    stripped = text.strip()
    if not stripped:
        raise InputError("The identifier text is empty; give a short text such as 'AMIF \u00a9'.")
    if len(stripped) > 64:
        raise InputError("The identifier text is {length} characters long; use at most 64.", length=len(stripped))
    missing = _glyph_bitmap("\u4e00", 24)
    bad = sorted({c for c in stripped if c != " " and _glyph_bitmap(c, 24) == missing})
    if bad:
        raise InputError(
            "The identifier text contains characters the built-in font cannot draw: {characters!r}. "
            "Use ASCII letters, digits, punctuation or the \u00a9 sign.", characters="".join(bad)
        )
    return stripped


def _tiled_canvas(text: str, height: int, width: int, font_px: int, angle_deg: float, gap: float) -> np.ndarray:
    face = font(font_px)
    stroke = stroke_width(font_px)
    left, top, right, bottom = face.getbbox(text, stroke_width=stroke)
    step_x = (right - left) * (1.0 + gap)
    step_y = (bottom - top) * (1.0 + 1.6 * gap)
    side = int(math.ceil(math.hypot(height, width))) + 4 * font_px
    layer = Image.new("L", (side, side))
    draw = ImageDraw.Draw(layer)
    for row, y in enumerate(np.arange(-step_y, side + step_y, step_y)):
        shift = (row % 2) * step_x / 2
        for x in np.arange(-step_x + shift, side + step_x, step_x):
            draw.text((x - left, y - top), text, font=face, fill=255, stroke_width=stroke, stroke_fill=255)
    rotated = layer.rotate(angle_deg, resample=Image.Resampling.BILINEAR)
    x0, y0 = (side - width) // 2, (side - height) // 2
    cropped = np.asarray(rotated.crop((x0, y0, x0 + width, y0 + height)))
    return (cropped >= 128).astype(np.uint8)


@lru_cache(maxsize=16)
def render_identifier_canvas(text: str, height: int, width: int, style: IdentifierStyle = IdentifierStyle()) -> np.ndarray:
    """Tile ``text`` over a (2*height, 2*width) canvas; returns read-only uint8 {0, 1}.

    Crop a (height, width) mask from it with :func:`crop_mask`. The gap between
    repeats is tuned (a few fixed-point steps) so the canvas covers about
    ``style.coverage`` of its area. Results are cached per (text, size, style).
    """
    canvas = _screen_canvas(text, *((width, height) if style.transpose else (height, width)), style)
    if style.transpose:
        canvas = canvas.T
    canvas = np.ascontiguousarray(canvas[:: -1 if style.flip_rows else 1, :: -1 if style.flip_cols else 1])
    canvas.setflags(write=False)
    return canvas


def _screen_canvas(text: str, height: int, width: int, style: IdentifierStyle) -> np.ndarray:
    canvas_h, canvas_w = 2 * height, 2 * width
    font_px = max(MIN_FONT_PX, round(style.font_fraction * min(height, width)))
    gap = 0.6
    canvas = _tiled_canvas(text, canvas_h, canvas_w, font_px, style.angle_deg, gap)
    for _ in range(4):
        coverage = float(canvas.mean())
        if abs(coverage - style.coverage) < 0.01 * style.coverage + 0.002:
            break
        area_ratio = coverage / style.coverage
        gap = max(0.05, (1.0 + gap) * math.sqrt(area_ratio) - 1.0)
        canvas = _tiled_canvas(text, canvas_h, canvas_w, font_px, style.angle_deg, gap)
    return canvas


def crop_mask(canvas: np.ndarray, offset: tuple[int, int], height: int, width: int) -> np.ndarray:
    """Crop a (height, width) mask at ``offset`` = (row, col) from a canvas of :func:`render_identifier_canvas`."""
    row, col = offset
    if not (0 <= row <= canvas.shape[0] - height and 0 <= col <= canvas.shape[1] - width):
        raise ValueError(f"offset {offset} does not fit a {height}x{width} crop in canvas {canvas.shape}")
    return canvas[row : row + height, col : col + width]


def slice_offsets(seed: int, count: int, height: int, width: int) -> np.ndarray:
    """Deterministic per-slice crop offsets, (count, 2) int64 in [0, height] x [0, width]."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [rng.integers(0, height + 1, size=count), rng.integers(0, width + 1, size=count)], axis=1
    )
