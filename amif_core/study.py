"""One study from files to files: what ``amif fuse`` runs, and ``amif batch`` runs for each study of a manifest.

The options that shape a protected study are one :class:`FuseOptions`, so
an option of ``amif fuse`` is one field here and reaches both commands.
Secrets (the key's passphrase) are passed apart from the options, never in
them. Both front ends import this module; it imports no front end.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

import numpy as np
import SimpleITK as sitk

from amif_core.atomic import check_outputs, write_atomically
from amif_core.constants import DEFAULT_BATCH_SIZE, DEFAULT_IDENTIFIER
from amif_core.errors import InputError
from amif_core.io.volumes import check_volume_path, read_volume, volume_output
from amif_core.key.file import key_output
from amif_core.runtime.callbacks import Progress
from amif_core.tracing.secret import owner_secret
from amif_core.transforms.colour import colour_table
from amif_core.transforms.identifier import validate_identifier

if TYPE_CHECKING:
    from amif_core.inference.model import AMIFModel
    from amif_core.key.core import Key

T = TypeVar("T")


class Models:
    """The model of ``weights`` (--weights; None: the shipped one), loaded once per device on first use."""

    def __init__(self, weights: Path | None) -> None:
        if weights is not None and not weights.is_file():
            raise InputError("The weights file {path} does not exist.", path=weights)
        self.weights = weights
        self._loaded: dict[str, AMIFModel] = {}

    def __call__(self, device: str) -> AMIFModel:
        if device not in self._loaded:
            from amif_core import load_model

            self._loaded[device] = load_model(device, weights=self.weights)
        return self._loaded[device]


def run_on_device(models: Models, device: str, voxels: int, slice_shape: tuple[int, int],
                  run: Callable[[AMIFModel, int], T], notice: Callable[[str], None]) -> tuple[T, str]:
    """Run ``run(model, batch_size)`` under the core runner's memory plan for ``device`` ("auto", "cpu", ...).

    ``voxels``: of the MRI grid; ``slice_shape``: (rows, cols) of one slice.
    The plan's notes, and each retry of an out-of-memory error (half the
    batch, then the CPU; :func:`amif_core.runtime.runner.run_with_memory_fallback`),
    go to ``notice``. Returns the result and the device that ran it (e.g. "cuda:0").
    """
    from amif_core.runtime import runner

    return runner.plan_and_run(voxels, slice_shape, device, lambda ran_on, batch: run(models(ran_on), batch), notice,
                               cpu_batch_size=DEFAULT_BATCH_SIZE)


def read_passphrase_file(path: Path) -> str:
    """The passphrase on the first line of the file ``path``; InputError when it cannot be read or is empty."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InputError("Cannot read the passphrase file {path}: {reason}.", path=path,
                         reason=error.strerror) from error
    if not lines or not lines[0]:
        raise InputError("The passphrase file {path} is empty; put the passphrase on its first line.", path=path)
    return lines[0]


@dataclass(frozen=True)
class FuseOptions:
    """How a study is protected: ``identifier`` text, ``colour`` table for a scalar PET/SPECT (None: grey, or the
    second scan's own RGB), numpy slice ``axis`` (None: the one closest to superior-inferior), and ``dicom``: write a
    DICOM series folder instead of a volume file; ``owner_secret``: the owner secret file that chooses the trace mark
    (None: the file $AMIF_OWNER_SECRET names, else the public demo secret); a path, never the secret itself."""

    identifier: str = DEFAULT_IDENTIFIER
    colour: str | None = None
    axis: int | None = None
    dicom: bool = False
    owner_secret: Path | None = None

    def check(self) -> None:
        """Raise :class:`~amif_core.errors.InputError` for an identifier the font cannot draw or an unknown colour
        table, before any volume is read."""
        validate_identifier(self.identifier)
        if self.colour is not None:
            colour_table(self.colour)


@dataclass(frozen=True)
class StudyFiles:
    """A study's paths: the ``mri`` and ``other`` inputs (files or DICOM series folders), the protected ``output``
    (a volume file, or a new folder for a DICOM series) and its ``key`` file."""

    mri: Path
    other: Path
    output: Path
    key: Path


@dataclass(frozen=True)
class FusedStudy:
    """What :func:`fuse_study` wrote: the key (no secret in its header) and the device that ran, e.g. "cuda:0"."""

    key: Key
    device: str


def check_study_outputs(files: StudyFiles, options: FuseOptions, force: bool) -> None:
    """Fail before any work when the options are unusable or the outputs cannot be written as asked
    (:func:`~amif_core.atomic.check_outputs`): an existing output without ``force``, an input as output."""
    options.check()
    if options.dicom:
        check_outputs([files.key], force, inputs=[files.mri, files.other], folders=[files.output])
    else:
        check_volume_path(files.output)
        check_outputs([files.output, files.key], force, inputs=[files.mri, files.other])


def _same_voxels(a: sitk.Image, b: sitk.Image) -> bool:
    """True when two volumes hold the same voxel values (any pixel types), compared slice by slice."""
    if a.GetSize() != b.GetSize() or a.GetNumberOfComponentsPerPixel() != b.GetNumberOfComponentsPerPixel():
        return False
    return all(np.array_equal(x, y) for x, y in zip(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b)))


def _say_if_same_scan(files: StudyFiles, mri: sitk.Image, other: sitk.Image, notice: Callable[[str], None]) -> None:
    """A notice when the two inputs are one file, or two files with the same voxels: the MRI would be fused with
    itself (allowed, as a test of the pipeline, but rarely meant)."""
    advice = "AMIF fuses the MRI with itself. Give the registered CT, PET or SPECT as the second input."
    if os.path.samefile(files.mri, files.other):
        notice(f"The MRI and the second scan are the same file ({files.mri}): {advice}")
    elif _same_voxels(mri, other):
        notice(f"The MRI ({files.mri}) and the second scan ({files.other}) have the same voxels: {advice}")


def fuse_study(files: StudyFiles, options: FuseOptions, passphrase: str | None, models: Models, device: str,
               force: bool, progress: Progress | None, notice: Callable[[str], None]) -> FusedStudy:
    """Read both scans, protect them on ``device`` with ``models`` (the trace mark chosen by ``options.owner_secret``)
    and write the protected volume and its key (encrypted with ``passphrase`` unless None) atomically: both outputs
    or neither.

    ``force``: replace existing outputs. ``progress(done, total)`` counts
    slices; the demo-secret, same-scan, resampling, memory-plan and
    out-of-memory retry notes go to ``notice``. The inputs are never modified.
    """
    owner = owner_secret(notice, options.owner_secret)
    mri, other = read_volume(files.mri), read_volume(files.other)
    _say_if_same_scan(files, mri, other, notice)
    from amif_core.inference.pipeline import protect_volume
    from amif_core.io.geometry import check_axis, slice_axis, slice_size

    axis = slice_axis(mri) if options.axis is None else options.axis
    check_axis(axis, mri)
    (protected, key), ran_on = run_on_device(models, device, mri.GetNumberOfPixels(), slice_size(mri, axis), (
        lambda model, batch: protect_volume(model, mri, other, options.identifier, axis, colour_table=options.colour,
                                            progress=progress, notice=notice, batch_size=batch, owner=owner)),
        notice)
    if options.dicom:
        from amif_core.io.dicom import dicom_series_output, source_attributes

        image_output = dicom_series_output(protected, files.output, key.identifier, source_attributes(files.mri))
    else:
        image_output = volume_output(protected, files.output)
    write_atomically([image_output, key_output(files.key, key, passphrase)], force)
    return FusedStudy(key, ran_on)
