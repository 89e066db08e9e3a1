"""The ``.amifkey`` header: what it holds, the payload layout it implies, and its validation.

The header is UTF-8 JSON that describes the volume, the model and the
identifier a key fits, never key material (spec: docs/key-format.md).
:func:`validate_header` checks every field's type and range and that the
payload can hold the arrays the header describes, before anything large is
allocated. Torch-free.
"""
from __future__ import annotations

import base64
import math
import re
from dataclasses import asdict
from typing import Any

import numpy as np

from amif_core.constants import VERSION, padded
from amif_core.key.core import SIGNATURE_GRID, Key
from amif_core.key.storage import STORAGE_LEVELS

FORMAT_NAME = "amif-key"
MAX_SIDE = 65535
MAX_VOXELS = 1 << 33
ZLIB_MAX_RATIO = 1032  # deflate cannot expand data by more than this
MAX_SCRYPT_COST = 64 << 20  # bytes of 128 * n * r * p: twice what AMIF writes, so a crafted header costs < 1 s
NONCE_SIZE = 12
TAG_SIZE = 16
_HEX64 = re.compile(r"[0-9a-f]{64}")
STYLE_NUMBERS = ("font_fraction", "angle_deg", "coverage")
STYLE_FLAGS = ("transpose", "flip_rows", "flip_cols")
COLOUR_SPACE = "BT.601 YCbCr"


def arrays_layout(shape: tuple[int, ...], code_count: int, chroma_count: int = 0
                  ) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, little-endian dtype, shape) of each payload array, in payload order.

    ``shape``: the slices' (D, H, W); the chroma codes follow only in a colour
    key. Origin and step are uint32 words: the float32 bits of the scales,
    padded from format 5 on (:func:`~amif_core.key.codec.pad_scale`) and in
    the clear before it.
    """
    depth = shape[0]
    layout = [
        ("codes", "<i2", (code_count,)),
        ("origin", "<u4", (depth, 4)),
        ("step", "<u4", (depth, 4)),
        ("signature", "<f4", (depth, SIGNATURE_GRID, SIGNATURE_GRID)),
    ]
    return layout + ([("chroma", "<i2", (chroma_count,))] if chroma_count else [])


def max_codes(shape: tuple[int, int, int]) -> int:
    """The most key codes an image of ``shape`` (D, H, W) can have: 4 bands of the whole padded half-size grid."""
    depth, h, w = shape
    return 4 * depth * (padded(h) // 2) * (padded(w) // 2)


def raw_length(layout: list[tuple[str, str, tuple[int, ...]]]) -> int:
    """Bytes of the uncompressed payload that ``layout`` describes."""
    return sum(np.dtype(dtype).itemsize * math.prod(shape) for _, dtype, shape in layout)


def build_header(key: Key, encryption: dict | None) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "amif_version": VERSION,
        "created_utc": key.created_utc,
        "model_id": key.model_id,
        "volume_fingerprint": key.volume_fingerprint,
        "image_fingerprint": key.fingerprint,
        "axis": int(key.axis),
        "shape": [int(v) for v in key.spatial_shape],
        "colour": key.colour.to_dict() if key.colour is not None else None,
        "levels": key.levels,
        "geometry": key.geometry(),
        "normalisation": key.normalisation.to_dict(),
        "identifier": key.identifier,
        "identifier_style": asdict(key.identifier_style),
        "mask_offsets": np.asarray(key.mask_offsets, dtype=np.int64).tolist(),
        "identifier_lattice": key.identifier_lattice,
        "payload": {"compression": "zlib", "filter": "byteshuffle", "code_count": int(key.codes.size),
                    "chroma_count": int(key.chroma_codes.size)},
        "encryption": encryption,
    }


def _int(value: Any, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {str(value)[:40]}")
    return value


def _float(value: Any, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {str(value)[:40]}")
    return float(value)


def _floats(value: Any, name: str, count: int) -> list[float]:
    if not isinstance(value, list) or len(value) != count:
        raise ValueError(f"{name} must be a list of {count} numbers")
    return [_float(v, name) for v in value]


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise ValueError(f"{name} must be a text of 1 to {limit} characters")
    return value


def _b64(value: Any, name: str, low: int, high: int) -> bytes:
    try:
        raw = base64.b64decode(_text(value, name, 4 * high), validate=True)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{name} must be base64") from error
    if not low <= len(raw) <= high:
        raise ValueError(f"{name} must hold {low} to {high} bytes")
    return raw


def _colour(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or value.get("space") != COLOUR_SPACE:
        raise ValueError(f"colour must be null or an object with space {COLOUR_SPACE!r}")
    if value.get("table") is not None:
        _text(value["table"], "colour.table", 64)


def _lattice(value: Any, axis: int, zyx: list[int], version: int) -> None:
    """Check an ``identifier_lattice``: from version 7 a
    :meth:`~amif_core.transforms.identifier_tile.DiagonalTile.to_dict`, or the text-plate
    :meth:`~amif_core.transforms.identifier_volume.Lattice.to_dict` that version 6 introduced."""
    if version >= 7 and isinstance(value, dict) and value.get("kind") == "diagonal":
        if set(value) != {"kind", "font_px", "period", "anchors", "planes", "axis"}:
            raise ValueError("identifier_lattice of kind diagonal must hold font_px, period, anchors, planes and axis")
        _int(value["font_px"], "identifier_lattice.font_px", 1, MAX_SIDE)
        period = value["period"]
        if not isinstance(period, list) or len(period) != 3:
            raise ValueError("identifier_lattice.period must list Pu, Pv and the shear")
        rows, cols = (_int(p, "identifier_lattice.period", 1, 4 * MAX_SIDE) for p in period[:2])
        _int(period[2], "identifier_lattice.period shear", 0, cols - 1)
        anchors = value["anchors"]
        if not isinstance(anchors, list) or len(anchors) != 3 or not all(
                isinstance(a, list) and len(a) == 2 for a in anchors):
            raise ValueError("identifier_lattice.anchors must list 3 (u, v) pairs")
        for u, v in anchors:
            _int(u, "identifier_lattice.anchors u", 0, rows - 1)
            _int(v, "identifier_lattice.anchors v", 0, cols - 1)
    else:
        if not isinstance(value, dict) or set(value) != {"font_px", "cells", "planes", "axis"}:
            raise ValueError("identifier_lattice must be null or hold font_px, cells, planes and axis")
        _int(value["font_px"], "identifier_lattice.font_px", 1, MAX_SIDE)
        if not isinstance(value["cells"], list) or len(value["cells"]) != 3:
            raise ValueError("identifier_lattice.cells must list 3 counts")
        for count, side in zip(value["cells"], zyx):
            _int(count, "identifier_lattice.cells", 1, side)
    planes = value["planes"]
    if (not isinstance(planes, list) or len(planes) != 3
            or not all(isinstance(p, list) and len(p) == 3 and all(isinstance(f, bool) for f in p) for p in planes)):
        raise ValueError("identifier_lattice.planes must list 3 triples of true or false")
    if _int(value["axis"], "identifier_lattice.axis", 0, 2) != axis:
        raise ValueError("identifier_lattice.axis must be the key's axis")


def validate_header(header: Any, payload_length: int, version: int) -> None:
    """Raise ValueError/TypeError/KeyError unless ``header`` is a well-formed header of format ``version`` (2 to 7).

    Version 3 adds ``colour`` and ``payload.chroma_count`` (a version-2 header
    is grey); version 4 adds ``levels`` (null: a float32 image; else the
    integer storage of :mod:`amif_core.key.storage`); version 5 has version
    4's header and pads the codes' scales in the payload; version 6 adds
    ``identifier_lattice`` (null: the 2D identifier at ``mask_offsets``;
    else the 3D identifier, and ``mask_offsets`` is empty); version 7 lets
    it hold the diagonal tile of :mod:`amif_core.transforms.identifier_tile`
    (its ``kind`` is "diagonal") as well as version 6's text-plate lattice.
    """
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError("format must be 'amif-key'")
    _text(header["amif_version"], "amif_version", 64)
    _text(header["created_utc"], "created_utc", 64)
    for name in ("model_id", "volume_fingerprint", "image_fingerprint"):
        if not isinstance(header[name], str) or not _HEX64.fullmatch(header[name]):
            raise ValueError(f"{name} must be 64 lowercase hex digits")
    axis = _int(header["axis"], "axis", 0, 2)
    if not isinstance(header["shape"], list) or len(header["shape"]) != 3:
        raise ValueError("shape must list 3 sizes")
    shape = tuple(_int(v, "shape", 1, MAX_SIDE) for v in header["shape"])
    if math.prod(shape) > MAX_VOXELS:
        raise ValueError(f"shape {shape} is larger than {MAX_VOXELS} voxels")
    geometry = header["geometry"]
    if not isinstance(geometry, dict) or not isinstance(geometry["size"], list) or len(geometry["size"]) != 3:
        raise ValueError("geometry.size must list 3 sizes")
    zyx = [_int(v, "geometry.size", 1, MAX_SIDE) for v in geometry["size"]][::-1]
    if tuple([zyx[axis]] + [s for i, s in enumerate(zyx) if i != axis]) != shape:
        raise ValueError(f"geometry.size {geometry['size']} sliced along axis {axis} does not give shape {list(shape)}")
    if min(_floats(geometry["spacing"], "geometry.spacing", 3)) <= 0:
        raise ValueError("geometry.spacing must be positive")
    _floats(geometry["origin"], "geometry.origin", 3)
    _floats(geometry["direction"], "geometry.direction", 9)
    for part in ("mri", "other"):
        _float(header["normalisation"][part]["low"], f"normalisation.{part}.low")
        _float(header["normalisation"][part]["high"], f"normalisation.{part}.high")
    _text(header["identifier"], "identifier", 64)
    style = header["identifier_style"]
    if not isinstance(style, dict) or set(style) != set(STYLE_NUMBERS + STYLE_FLAGS):
        raise ValueError(f"identifier_style must hold {', '.join(STYLE_NUMBERS + STYLE_FLAGS)}")
    for name in STYLE_NUMBERS:
        _float(style[name], f"identifier_style.{name}")
    for name in STYLE_FLAGS:
        if not isinstance(style[name], bool):
            raise ValueError(f"identifier_style.{name} must be true or false")
    lattice = header["identifier_lattice"] if version >= 6 else None
    if lattice is not None:
        _lattice(lattice, axis, zyx, version)
    offsets = header["mask_offsets"]
    if not isinstance(offsets, list) or len(offsets) != (0 if lattice is not None else shape[0]):
        raise ValueError(f"mask_offsets must list one (row, column) pair per slice ({shape[0]}), none with "
                         "identifier_lattice")
    for pair in offsets:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError("mask_offsets must hold (row, column) pairs")
        _int(pair[0], "mask_offsets row", 0, shape[1])
        _int(pair[1], "mask_offsets column", 0, shape[2])
    payload = header["payload"]
    if not isinstance(payload, dict) or payload.get("compression") != "zlib" or payload.get("filter") != "byteshuffle":
        raise ValueError("payload must be zlib-compressed and byte-shuffled")
    code_count = _int(payload["code_count"], "payload.code_count", 0, max_codes(shape))
    chroma_count = 0
    if version >= 3:
        _colour(header["colour"])
        chroma_count = _int(payload["chroma_count"], "payload.chroma_count", 0,
                            2 * math.prod(shape) if header["colour"] is not None else 0)
    if version >= 4 and header["levels"] is not None and header["levels"] not in STORAGE_LEVELS:
        raise ValueError(f"levels must be null or one of {', '.join(map(str, STORAGE_LEVELS))}")
    encryption = header["encryption"]
    overhead = 0
    if encryption is not None:
        if not isinstance(encryption, dict) or encryption.get("kdf") != "scrypt" or encryption.get("cipher") != "AES-256-GCM":
            raise ValueError("encryption must be scrypt + AES-256-GCM")
        n = _int(encryption["n"], "encryption.n", 2, 1 << 20)
        r = _int(encryption["r"], "encryption.r", 1, 32)
        p = _int(encryption["p"], "encryption.p", 1, 16)
        if n & (n - 1) or 128 * n * r * p > MAX_SCRYPT_COST:
            raise ValueError("encryption.n must be a power of 2 and scrypt's cost 128 * n * r * p at most 64 MiB")
        _b64(encryption["salt"], "encryption.salt", 8, 64)
        _b64(encryption["nonce"], "encryption.nonce", NONCE_SIZE, NONCE_SIZE)
        overhead = TAG_SIZE
    raw = raw_length(arrays_layout(shape, code_count, chroma_count))
    if payload_length < overhead + 8 or raw > ZLIB_MAX_RATIO * (payload_length - overhead) + (1 << 16):
        raise ValueError(f"the payload ({payload_length} bytes) cannot hold the {raw} bytes of key arrays its header "
                         "describes")


