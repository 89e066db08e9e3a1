#!/usr/bin/env python3
"""Draw the AMIFSlicer module icon: a brain fused from an MRI half and a PET half, with a padlock.

Writes ``AMIFSlicer/Resources/Icons/AMIFSlicer.png`` (128x128 RGBA, transparent
background). Drawn at 4x and downsampled for smooth edges; deterministic.

Usage::

    python scripts/make_slicer_icon.py [--out PATH]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "AMIFSlicer" / "Resources" / "Icons" / "AMIFSlicer.png"
SIZE = 128
SCALE = 4
MRI_GREYS = ((70, 70, 74), (205, 205, 210))  # dark to light, left half
PET_COLOURS = ((150, 20, 30), (255, 190, 40))  # deep red to yellow, right half
LOCK_BODY = (22, 60, 120)
LOCK_EDGE = (235, 240, 250)


def _gradient(size: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    """A vertical colour gradient from ``bottom`` (row size-1) to ``top`` (row 0)."""
    column = Image.new("RGB", (1, size))
    for y in range(size):
        t = y / (size - 1)
        column.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom)))
    return column.resize((size, size))


def draw_icon() -> Image.Image:
    """The icon as a 128x128 RGBA image."""
    s = SIZE * SCALE
    icon = Image.new("RGBA", (s, s), (0, 0, 0, 0))

    # Brain silhouette: two overlapping lobes seen from above, slightly left of centre.
    brain = Image.new("L", (s, s), 0)
    shape = ImageDraw.Draw(brain)
    box = (int(0.06 * s), int(0.08 * s), int(0.80 * s), int(0.82 * s))
    shape.ellipse(box, fill=255)
    middle = (box[0] + box[2]) // 2

    mri = _gradient(s, MRI_GREYS[1], MRI_GREYS[0])
    pet = _gradient(s, PET_COLOURS[1], PET_COLOURS[0])
    halves = Image.new("L", (s, s), 0)
    ImageDraw.Draw(halves).rectangle((0, 0, middle, s), fill=255)
    fused = Image.composite(mri, pet, halves)
    icon.paste(fused, (0, 0), brain)

    # Gyri: arcs in each hemisphere, and the midline fissure.
    folds = ImageDraw.Draw(icon)
    width = int(0.018 * s)
    for side in (-1, 1):
        for i, (dy, r) in enumerate(((0.22, 0.13), (0.40, 0.16), (0.58, 0.13))):
            cx = middle + side * int(0.17 * s)
            cy = int(dy * s) + box[1] // 2
            radius = int(r * s)
            folds.arc((cx - radius, cy - radius // 2, cx + radius, cy + radius // 2),
                      200 + 10 * i, 340 - 10 * i, fill=(30, 30, 34, 200), width=width)
    folds.line((middle, box[1] + int(0.03 * s), middle, box[3] - int(0.03 * s)), fill=(20, 20, 24, 255),
               width=int(0.022 * s))
    folds.ellipse(box, outline=(20, 20, 24, 255), width=width)

    # Padlock, bottom right, overlapping the brain.
    lock = ImageDraw.Draw(icon)
    body = (int(0.56 * s), int(0.56 * s), int(0.96 * s), int(0.94 * s))
    shackle = (int(0.62 * s), int(0.40 * s), int(0.90 * s), int(0.70 * s))
    lock.arc(shackle, 180, 360, fill=LOCK_EDGE + (255,), width=int(0.085 * s))
    lock.arc(shackle, 180, 360, fill=LOCK_BODY + (255,), width=int(0.05 * s))
    lock.rounded_rectangle(body, radius=int(0.05 * s), fill=LOCK_BODY + (255,), outline=LOCK_EDGE + (255,),
                           width=int(0.02 * s))
    font = ImageFont.load_default(size=int(0.26 * s))
    centre = ((body[0] + body[2]) / 2, (body[1] + body[3]) / 2 + 0.01 * s)
    lock.text(centre, "\u00a9", font=font, fill=LOCK_EDGE + (255,), anchor="mm")

    return icon.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output PNG (default {DEFAULT_OUT})")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    draw_icon().save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
