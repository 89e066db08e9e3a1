"""The AMIF key: what unlocks one protected image, and how it is checked.

Key material is the coupling's y2 on the key support (the 2x2 blocks the
identifier touches), stored as int16 fixed-point codes under a one-time pad
that only the protected image itself can derive (:func:`pad_seed`), and so are
the codes' per-band scales. So the key alone is useless by construction: its
codes and scales are a ChaCha20 stream to anyone without the image.
Everything else here (fingerprint, signature, normalisation, identifier,
offsets) describes the image and is safe to show.
Whether a key fits an image is :func:`amif_core.key.check.check_fits`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from amif_core.key.codec import plain_scale
from amif_core.transforms.identifier import IdentifierStyle
from amif_core.transforms.identifier_masks import stamped_masks, volume_identifier_mask
from amif_core.transforms.intensity import Normalisation

SIGNATURE_GRID = 8


def _window(data: dict) -> Normalisation:
    """A :class:`Normalisation` from its ``{"low", "high"}`` dict, the numbers kept as they are (a key written
    again keeps its bytes)."""
    return Normalisation(low=data["low"], high=data["high"])


@dataclass(frozen=True)
class IntensityWindows:
    """The intensity windows protect fitted to its two inputs: ``mri`` and ``other`` (each a
    :class:`~amif_core.transforms.intensity.Normalisation`, ``low`` to ``high`` mapped to [0, 1])."""

    mri: Normalisation
    other: Normalisation

    def to_dict(self) -> dict[str, dict]:
        """The header's form: ``{"mri": {"low", "high"}, "other": {"low", "high"}}``."""
        return {"mri": self.mri.to_dict(), "other": self.other.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> IntensityWindows:
        return cls(mri=_window(data["mri"]), other=_window(data["other"]))


@dataclass(frozen=True)
class KeyColour:
    """How a colour key's RGB image was made: ``space`` (the colour transform, "BT.601 YCbCr"), ``table`` (the
    colour table a scalar second scan was mapped through; None: the second scan's own RGB) and ``uptake`` (the
    intensity window applied before that table; None without a table)."""

    space: str
    table: str | None = None
    uptake: Normalisation | None = None

    def to_dict(self) -> dict:
        """The header's form: ``{"space", "table"}``, and ``"uptake"`` when there is one."""
        out: dict = {"space": self.space, "table": self.table}
        if self.uptake is not None:
            out["uptake"] = self.uptake.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> KeyColour:
        uptake = data.get("uptake")
        return cls(space=data["space"], table=data.get("table"), uptake=None if uptake is None else _window(uptake))


def image_fingerprint(image: np.ndarray) -> str:
    """SHA-256 hex of a protected image: its shape, then its float32 C-order bytes."""
    data = np.ascontiguousarray(image, dtype=np.float32)
    digest = hashlib.sha256(repr(tuple(data.shape)).encode())
    for plane in data.reshape((-1,) + data.shape[-2:]):
        digest.update(plane.tobytes())
    return digest.hexdigest()


def image_signature(image: np.ndarray, colour: bool = False) -> np.ndarray:
    """Coarse per-slice summary: (D, 8, 8) float32 means of an 8x8 grid of blocks.

    It survives re-saving at lower precision, so a failing fingerprint can be
    told apart as "this image, modified" or "another image". ``image`` is
    (H, W) or (D, H, W); with ``colour``, (H, W, 3) or (D, H, W, 3) RGB,
    summarised by its luma.
    """
    if colour:
        from amif_core.transforms.colour import luma

        image = luma(image)
    volume = np.asarray(image, dtype=np.float32).reshape((-1,) + np.shape(image)[-2:])
    rows = np.array_split(np.arange(volume.shape[1]), SIGNATURE_GRID)
    cols = np.array_split(np.arange(volume.shape[2]), SIGNATURE_GRID)
    out = np.zeros((volume.shape[0], SIGNATURE_GRID, SIGNATURE_GRID), dtype=np.float32)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            if len(r) and len(c):
                out[:, i, j] = volume[:, r[0] : r[-1] + 1, c[0] : c[-1] + 1].mean(axis=(1, 2))
    return out


def short(fingerprint: str) -> str:
    """The first 12 hex digits of a fingerprint, for messages."""
    return fingerprint[:12]


@dataclass
class Key:
    """Everything needed to unlock one protected image of shape ``shape``, and what it fits.

    Key material, with D slices padded to Hp x Wp (multiples of 8):

    - ``codes``: (N,) int16, the flow's y2 on the key support of every slice
      (:func:`~amif_core.key.codec.support_masks`; slice by slice, band by
      band, row-major), as fixed-point codes plus the one-time pad of
      :func:`~amif_core.key.codec.pad_seed` modulo 2**16
      (:func:`~amif_core.key.codec.encode`);
    - ``code_origin`` and ``code_step``: (D, 4) uint32, the float32 bits of
      each slice's and band's fixed-point scale, under the scale pad of
      :func:`~amif_core.key.codec.pad_scale` when ``scale_padded`` (keys
      written by AMIF before key format 5 hold them in the clear), so the
      range of the key values, which follows the covered content, is hidden
      too; :meth:`scales` gives them back as float32.

    The rest describes the image and is safe to show: ``signature`` (D, 8, 8)
    float32 (:func:`image_signature`), ``mask_offsets`` (D, 2) int64 (the
    2D identifier's crop offset per slice; (0, 2) for a 3D identifier),
    ``identifier_lattice`` (the 3D identifier's layout: a
    :meth:`~amif_core.transforms.identifier_tile.DiagonalTile.to_dict`, or
    in keys of format 6 a
    :meth:`~amif_core.transforms.identifier_volume.Lattice.to_dict`; None
    for the 2D identifier, and in keys made before it), fingerprint, model,
    identifier, its drawing style (``identifier_style``, an
    :class:`~amif_core.transforms.identifier.IdentifierStyle`) and
    normalisation. A volume's key also holds its geometry: ``axis`` (the
    numpy axis of the (z, y, x) voxel array the volume was sliced along, so
    ``shape`` is that array with ``axis`` first), ``size`` (x, y, z) voxels,
    ``spacing`` and ``origin`` (mm), ``direction`` (9 values, row-major) and
    ``volume_fingerprint``; these are None for a key of a plain array.

    ``normalisation`` is the :class:`IntensityWindows` protect fitted. A
    colour key (``colour`` not None: a :class:`KeyColour`) is for an RGB image:
    ``shape`` ends in 3, the codes are those of its luma, and
    ``chroma_codes`` (2M,) int16 hold the chroma of its M covered pixels
    (:func:`~amif_core.key.codec.encode_chroma`), under the same pad from
    word ``codes.size`` on.

    ``levels`` (not None for images made to be stored as integers, see
    :mod:`amif_core.key.storage`): the protected image's values are multiples
    of 1 / ``levels``, so integers 0..``levels`` hold it exactly; None: float32.
    """

    codes: np.ndarray
    code_origin: np.ndarray
    code_step: np.ndarray
    shape: tuple[int, ...]
    fingerprint: str
    signature: np.ndarray
    model_id: str
    identifier: str
    identifier_style: IdentifierStyle
    normalisation: IntensityWindows
    mask_offsets: np.ndarray
    created_utc: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    axis: int = 0
    size: tuple[int, int, int] | None = None
    spacing: tuple[float, float, float] | None = None
    origin: tuple[float, float, float] | None = None
    direction: tuple[float, ...] | None = None
    volume_fingerprint: str | None = None
    colour: KeyColour | None = None
    chroma_codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    levels: int | None = None
    scale_padded: bool = True
    identifier_lattice: dict | None = None

    def __post_init__(self) -> None:
        # The header's dicts (a key read from a file, or made by the model) become the typed fields.
        if isinstance(self.identifier_style, dict):
            self.identifier_style = IdentifierStyle(**self.identifier_style)
        if isinstance(self.normalisation, dict):
            self.normalisation = IntensityWindows.from_dict(self.normalisation)
        if isinstance(self.colour, dict):
            self.colour = KeyColour.from_dict(self.colour)

    def scales(self, image_seed: bytes) -> tuple[np.ndarray, np.ndarray]:
        """The codes' origin and step, (D, 4) float32 each; ``image_seed``: the protected image's
        :func:`~amif_core.key.codec.pad_seed` (unused for a key whose scales are in the clear)."""
        return plain_scale(self.code_origin, self.code_step, image_seed if self.scale_padded else None)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """``shape`` without the colour channels: (H, W) or (D, H, W)."""
        return tuple(self.shape[:-1]) if self.colour is not None else tuple(self.shape)

    @property
    def is_volume_key(self) -> bool:
        """True when the key holds a volume's geometry (it was made by the volume pipeline or read from a file)."""
        return self.volume_fingerprint is not None

    def geometry(self) -> dict[str, list]:
        """The protected volume's geometry: {"size", "spacing", "origin", "direction"} lists."""
        if not self.is_volume_key:
            raise ValueError("This key was made for a plain array, not a volume: it has no geometry.")
        return {"size": list(self.size), "spacing": list(self.spacing), "origin": list(self.origin),
                "direction": list(self.direction)}

    def identifier_mask(self) -> np.ndarray:
        """The identifier mask this key was made with: uint8 {0, 1}, shape :attr:`spatial_shape`."""
        if self.identifier_lattice is not None:
            return volume_identifier_mask(self.identifier, self.spatial_shape, self.identifier_lattice)
        h, w = self.spatial_shape[-2:]
        return stamped_masks(self.identifier, self.mask_offsets, h, w, self.identifier_style).reshape(
            self.spatial_shape)

    @property
    def slices(self) -> int:
        return int(self.code_origin.shape[0])


def signatures_match(a: np.ndarray, b: np.ndarray, tolerance: float = 0.02, correlation: float = 0.85) -> bool:
    """True when two :func:`image_signature` arrays describe the same image up to edits or a filter.

    Small edits keep every block mean within ``tolerance`` (mean) and ten
    times that (max). A smoothing or median filter moves the block means
    more (the identifier's ink differs from slice to slice, so a 3D filter
    mixes it), but keeps their pattern: Pearson r >= ``correlation``. Another
    volume, even of the same MRI on the same grid, or the slices shifted by
    one, measured r <= 0.83 (``benchmarks/archive_roundtrips.py`` prints r).
    """
    if a.shape != b.shape:
        return False
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    if float(diff.mean()) <= tolerance and float(diff.max()) <= 10 * tolerance:
        return True
    return signature_correlation(a, b) >= correlation


def signature_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two :func:`image_signature` arrays of the same shape (0.0 when either is constant)."""
    x, y = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])
