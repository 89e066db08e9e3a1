#!/usr/bin/env python3
"""Coverage of the 3D identifier on volume grids of several sizes, per plane, and what its layout costs.

For each grid, the volume's layout is searched (:func:`amif_core.transforms.identifier_tile.volume_tile`,
default style and planes: a plain (D, H, W) array) and its mask built; printed per grid: the font, the tile's
period, the search's and the mask's seconds, then per plane (slices across numpy axis 0, 1, 2) the smallest and
largest share of a slice the mask covers (bar: 8 to 25 %) and the share of slices that hold a whole upright copy
of that plane's word (every D/48-th slice of a plane D slices deep). Needs no data.

Usage::

    python benchmarks/identifier_coverage.py                         # the demo's grid, thin, thick and large ones
    python benchmarks/identifier_coverage.py --grid 120x256x256       # one grid, D x H x W
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, installed or not

from amif_core.constants import DEFAULT_IDENTIFIER  # noqa: E402
from amif_core.transforms.identifier_tile import tile_mask, volume_tile, whole_word_shares, word_bitmap  # noqa: E402

GRIDS = ((112, 129, 105), (60, 256, 256), (180, 256, 256), (300, 512, 512))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", action="append", help="D x H x W (repeatable; default: four grids)")
    args = parser.parse_args()
    grids = [tuple(int(n) for n in g.lower().split("x")) for g in args.grid] if args.grid else GRIDS
    print(f"identifier {DEFAULT_IDENTIFIER!r}; per plane (numpy axis 0 / 1 / 2): coverage min-max, "
          "share of slices holding a whole upright word")
    for grid in grids:
        start = time.perf_counter()
        tile = volume_tile(DEFAULT_IDENTIFIER, grid)
        searched = time.perf_counter() - start
        if tile is None:
            print(f"{'x'.join(map(str, grid)):>13s}  too thin: the 2D identifier")
            continue
        start = time.perf_counter()
        mask = tile_mask(DEFAULT_IDENTIFIER, grid, tile)
        built = time.perf_counter() - start
        words = [word_bitmap(DEFAULT_IDENTIFIER, tile.font_px, tile.planes[axis]).shape for axis in range(3)]
        planes = []
        for axis, whole in enumerate(whole_word_shares(tile, words, grid)):
            coverage = mask.mean(axis=tuple(a for a in range(3) if a != axis))
            planes.append(f"{coverage.min():.1%}-{coverage.max():.1%} {whole:.0%}")
        print(f"{'x'.join(map(str, grid)):>13s}  font {tile.font_px} px, period {tile.period}, "
              f"search {searched:.1f} s, mask {built:.2f} s | " + " | ".join(planes))


if __name__ == "__main__":
    main()
