"""Trace a suspect from its outputs on the owner's probe pairs: read a probe folder, build the references, score.

A probe folder holds one sub-folder per probe, ``<probe id>/mri.<ext>`` and
``<probe id>/other.<ext>``; the suspect folder holds the suspect's output
for each, ``<probe id>.<ext>`` (or a DICOM series folder ``<probe id>/``).
Volumes are any format ``amif fuse`` reads, sliced along the MRI's axis
closest to axial; single slices may be PNG, JPEG or TIFF images (grey, or
RGB for a colour PET/SPECT and a colour output).

The owner's network (without the mark) gives the reference for each probe
(:mod:`amif_core.tracing.detect` matches the suspect's intensity scale to
it). Integer outputs are read over their type's maximum.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from amif_core.errors import InputError
from amif_core.inference.model import AMIFModel
from amif_core.inference.pair import prepare_pair
from amif_core.tracing.detect import TraceAccumulator, TraceResult
from amif_core.tracing.mark import TraceMark
from amif_core.tracing.secret import OwnerSecret
from amif_core.transforms.colour import luma
from amif_core.transforms.intensity import fit_normalisation

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass
class Probe:
    """One probe: its id, the MRI (H, W) or (D, H, W), the second scan (same, or RGB with a trailing 3) and the
    suspect's output for them (the MRI's shape, or RGB)."""

    name: str
    mri: np.ndarray
    other: np.ndarray
    output: np.ndarray


def read_image_or_volume(path: Path, axis: int | None = None) -> tuple[np.ndarray, int | None]:
    """A 2D image file as (H, W) or RGB (H, W, 3), or a volume as (D, H, W) (RGB: (D, H, W, 3)) sliced along
    ``axis`` (default: its own axis closest to axial), with the axis used (None for an image). Integers keep
    their scale."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = np.asarray(Image.open(path))
        return (image[..., :3] if image.ndim == 3 else image), None
    from amif_core.io.geometry import axis_first, slice_axis
    from amif_core.io.volumes import read_volume

    volume = read_volume(path)
    axis = slice_axis(volume) if axis is None else axis
    return np.array(axis_first(volume, axis)), axis


def _one(folder: Path, stem: str) -> Path:
    matches = sorted(p for p in folder.iterdir() if p.name.split(".")[0] == stem)
    if len(matches) != 1:
        raise InputError("{folder} must hold exactly one file or folder named {stem}.<ext>, found {found}.",
                         folder=folder, stem=stem, found=[m.name for m in matches] or "none")
    return matches[0]


def read_probes(probes: Path, outputs: Path) -> list[Probe]:
    """Every probe of the folder ``probes`` with the suspect's output for it from ``outputs`` (see the module notes)."""
    for folder, what in ((probes, "probe"), (outputs, "suspect output")):
        if not Path(folder).is_dir():
            raise InputError("The {what} folder {folder} does not exist.", what=what, folder=folder)
    names = sorted(p.name for p in Path(probes).iterdir() if p.is_dir())
    if not names:
        raise InputError("The probe folder {folder} holds no probe sub-folders (<id>/mri.<ext> and <id>/other.<ext>).",
                         folder=probes)
    found = []
    for name in names:
        mri, axis = read_image_or_volume(_one(Path(probes) / name, "mri"))  # the MRI's axis slices all three
        other = read_image_or_volume(_one(Path(probes) / name, "other"), axis)[0]
        found.append(Probe(name, mri, other, read_image_or_volume(_one(Path(outputs), name), axis)[0]))
    return found


def _scaled(image: np.ndarray) -> np.ndarray:
    """Integers over their type's maximum (8-bit RGB, 8- and 16-bit grey), floats as they are: float32."""
    data = np.asarray(image)
    if data.dtype.kind in "ui":
        return data.astype(np.float32) / np.float32(np.iinfo(data.dtype).max)
    return data.astype(np.float32)


def add_probe(accumulator: TraceAccumulator, model: AMIFModel, probe: Probe, colour_table: str | None = None) -> None:
    """Add every slice of ``probe`` to ``accumulator``: the inputs normalised as protect normalises them, the
    reference (the owner's unmarked fusion, its luma in colour) and the suspect's output (its luma)."""
    pair = prepare_pair(probe.mri, probe.other, colour_table)
    reference = model.fuse_clean(probe.mri, probe.other, colour_table, owner=None)
    colour = pair.cbcr is not None
    output = _scaled(probe.output)
    if output.shape not in (reference.shape, reference.shape[:-1] if colour else None):
        raise InputError("The suspect's output for probe {name} has shape {shape}; its inputs give {expected}. Give "
                         "the suspect's output for exactly these inputs.", name=probe.name, shape=output.shape,
                         expected=reference.shape)
    output = luma(output) if output.ndim == reference.ndim and colour else output
    reference = (luma(reference) if colour else reference).reshape(pair.mri.shape)
    output = output.reshape(pair.mri.shape)
    a = fit_normalisation(pair.mri).apply(pair.mri)
    b = fit_normalisation(pair.other).apply(pair.other)
    for slice_a, slice_b, slice_ref, slice_out in zip(a, b, reference, output):
        accumulator.add(slice_a, slice_b, slice_ref, slice_out)


def trace_probes(model: AMIFModel, probes: Iterable[Probe], secret: OwnerSecret, colour_table: str | None = None
                 ) -> TraceResult:
    """Trace a suspect: the statistic, exact p-value and verdict of its outputs on ``probes`` for ``secret``.

    ``model``: the owner's model (its network gives the unmarked references).
    """
    accumulator = TraceAccumulator()
    for probe in probes:
        add_probe(accumulator, model, probe, colour_table)
    return accumulator.result(TraceMark.from_secret(secret))
