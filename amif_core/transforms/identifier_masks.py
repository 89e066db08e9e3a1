"""Which identifier an image gets, and the mask a key's record of it rebuilds.

A 2D slice, a stack of unrelated slices and a volume too thin for text
across it get the tiled 2D identifier (:mod:`amif_core.transforms.identifier`),
cropped per slice at seeded offsets. A volume gets the 3D identifier of
:mod:`amif_core.transforms.identifier_tile`. Keys of format 6 hold the text-plate
lattice that came before it (:mod:`amif_core.transforms.identifier_volume`),
which their unlock rebuilds.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from amif_core.transforms.identifier import IdentifierStyle, crop_mask, render_identifier_canvas, slice_offsets
from amif_core.transforms.identifier_tile import KIND, DiagonalTile, tile_mask, volume_tile
from amif_core.transforms.identifier_volume import Lattice, VolumePlanes, lattice_mask


def identifier_masks(text: str, shape: tuple[int, ...], style: IdentifierStyle, planes: VolumePlanes | None,
                     seed: int) -> tuple[np.ndarray, np.ndarray, DiagonalTile | None]:
    """The identifier mask of an image and what rebuilds it: (masks, offsets, tile).

    ``shape``: (D, H, W), slices first. ``planes``: None for a 2D image (D
    = 1) or a stack of unrelated slices, which keep the tiled 2D identifier;
    else the volume's planes, and it gets the 3D identifier unless too thin
    for one (:func:`~amif_core.transforms.identifier_tile.volume_tile`).
    ``masks``: (D, H, W) uint8 {0, 1}; ``offsets``: (D, 2) int64 crop offsets
    of the 2D identifier (from ``seed``), (0, 2) with a 3D identifier.
    """
    depth, h, w = shape
    tile = volume_tile(text, shape, style, planes) if planes is not None else None
    if tile is not None:
        return tile_mask(text, shape, tile), np.zeros((0, 2), dtype=np.int64), tile
    offsets = slice_offsets(seed, depth, h, w)
    return stamped_masks(text, offsets, h, w, style), offsets, None


def stamped_masks(text: str, offsets: np.ndarray, height: int, width: int, style: IdentifierStyle) -> np.ndarray:
    """The 2D identifier of each slice: (D, height, width) uint8 {0, 1}, crops of one canvas at ``offsets`` (D, 2)."""
    canvas = render_identifier_canvas(text, height, width, style)
    return np.stack([crop_mask(canvas, tuple(o), height, width) for o in offsets])


def volume_identifier_mask(text: str, shape: tuple[int, int, int], layout: dict[str, Any]) -> np.ndarray:
    """The 3D identifier mask a key's ``identifier_lattice`` record rebuilds: uint8 {0, 1} of ``shape`` (D, H, W).

    ``layout``: a :class:`~amif_core.transforms.identifier_tile.DiagonalTile`'s
    dict (its "kind" is "diagonal"), or a format-6 key's text-plate
    :class:`~amif_core.transforms.identifier_volume.Lattice` dict (no "kind").
    """
    if layout.get("kind") == KIND:
        return tile_mask(text, shape, DiagonalTile.from_dict(layout))
    return lattice_mask(text, shape, Lattice.from_dict(layout))
