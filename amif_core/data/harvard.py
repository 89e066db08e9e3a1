"""The Harvard Whole Brain Atlas fusion pairs (MRI-CT, MRI-PET, MRI-SPECT).

Layout expected under ``root`` (see ``../shared/data/harvard/README.md``)::

    pairs.csv                     pair,file,patient,slice
    CT-MRI/{CT,MRI}/<file>.png    grey 256x256
    PET-MRI/{PET,MRI}/<file>.png  PET is RGB pseudo-colour
    SPECT-MRI/{SPECT,MRI}/<file>.png

Colour images are reduced to luma (ITU-R BT.601, as OpenCV's YCrCb). The split
is by patient, never by slice.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from amif_core.transforms.intensity import fit_normalisation

PAIRS = ("CT-MRI", "PET-MRI", "SPECT-MRI")
VALIDATION_PATIENTS: dict[str, tuple[str, ...]] = {
    "CT-MRI": ("33", "41"),
    "PET-MRI": ("30",),
    "SPECT-MRI": ("11", "22", "29", "40"),
}


@dataclass(frozen=True)
class PairRecord:
    """One row of pairs.csv."""

    pair: str
    file: str
    patient: str
    slice: str

    @property
    def other_modality(self) -> str:
        return self.pair.split("-")[0]


@dataclass
class PairSet:
    """Loaded pairs: ``mri`` and ``other`` are (N, 256, 256) float32 in [0, 1].

    Each slice is normalised on its own with :func:`fit_normalisation`, exactly
    as ``protect`` normalises a 2D input.
    """

    records: list[PairRecord]
    mri: np.ndarray
    other: np.ndarray


def read_grey(path: Path) -> np.ndarray:
    """Read a PNG as float32 (H, W) on the 0..255 scale; RGB is reduced to BT.601 luma."""
    image = np.asarray(Image.open(path))
    if image.ndim == 3:
        rgb = image[..., :3].astype(np.float32)
        return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return image.astype(np.float32)


def read_records(root: Path) -> list[PairRecord]:
    """Parse ``root/pairs.csv``; raises FileNotFoundError with a hint if absent."""
    index = Path(root) / "pairs.csv"
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found: --data must point at the Harvard pairs folder.")
    with index.open(newline="") as handle:
        return [PairRecord(r["pair"], r["file"], r["patient"], r["slice"]) for r in csv.DictReader(handle)]


def split_records(records: list[PairRecord], split: str) -> list[PairRecord]:
    """Select ``split`` in {"train", "val", "all"} by patient."""
    if split == "all":
        return list(records)
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
    want_val = split == "val"
    return [r for r in records if (r.patient in VALIDATION_PATIENTS.get(r.pair, ())) == want_val]


def source_paths(root: Path, record: PairRecord) -> tuple[Path, Path]:
    """Paths of the MRI and the other-modality PNG of one pair."""
    base = Path(root) / record.pair
    return base / "MRI" / record.file, base / record.other_modality / record.file


def read_rgb(path: Path) -> np.ndarray:
    """Read a PNG as (H, W, 3) uint8 RGB (a grey PNG is repeated into three channels)."""
    image = np.asarray(Image.open(path).convert("RGB"))
    return np.ascontiguousarray(image[..., :3])


def read_pair(root: Path, record: PairRecord) -> tuple[np.ndarray, np.ndarray]:
    """The raw MRI and other-modality slice of one pair: two (H, W) float32 on the 0..255 scale (see :func:`read_grey`)."""
    mri_path, other_path = source_paths(root, record)
    return read_grey(mri_path), read_grey(other_path)


def load_pairs(root: Path, split: str, pairs: tuple[str, ...] = PAIRS) -> PairSet:
    """Load and normalise every pair of ``split`` whose pair type is in ``pairs``."""
    records = [r for r in split_records(read_records(root), split) if r.pair in pairs]
    mri, other = [], []
    for record in records:
        for store, grey in zip((mri, other), read_pair(root, record)):
            store.append(fit_normalisation(grey).apply(grey))
    return PairSet(records, np.stack(mri), np.stack(other))


def manifest_hash(root: Path) -> str:
    """SHA-256 over pairs.csv and every image it lists (path and content), hex."""
    digest = hashlib.sha256()
    records = read_records(root)
    digest.update((Path(root) / "pairs.csv").read_bytes())
    for record in records:
        for path in source_paths(root, record):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
