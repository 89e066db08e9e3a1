"""What runs on a Dask worker: the model, loaded once per worker by a plugin, and one study's task.

A study's outputs go to ``OUT/<study_id>/``: ``protected.<ext>`` (or the
folder ``protected/`` for a DICOM series) and ``protected.amifkey``,
written as ``amif fuse`` writes them (:func:`amif_core.study.fuse_study`).
A study whose outputs exist, whose key records its options and fits its
protected volume (:func:`amif_core.inference.pipeline.check_key_fits_volume`)
is skipped unless forced; any other study is protected again, replacing
what it left.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from distributed import WorkerPlugin, get_worker

from amif_core.batch.manifest import Study
from amif_core.batch.report import FAILED, PROTECTED, SKIPPED, StudyResult, sha256_of
from amif_core.study import FuseOptions, Models, StudyFiles, check_study_outputs, fuse_study, read_passphrase_file
from amif_core.errors import AMIFError, InputError, KeyFormatError, KeyMismatchError, WrongPassphraseError
from amif_core.key.core import Key
from amif_core.transforms.identifier import validate_identifier

PLUGIN_NAME = "amif-model"
KEY_NAME = "protected.amifkey"


class ModelPlugin(WorkerPlugin):
    """Loads the model once when a worker starts (or restarts) and keeps it for every task on that worker.

    ``weights``: a weights file (None: the shipped weights); ``device``:
    "auto", "cpu", "cuda", "cuda:N" or "mps". With "auto" on a machine of
    several GPUs, a worker named by an integer (as a ``LocalCluster`` names
    them) takes GPU ``name % count``, so that each GPU has its own worker.
    """

    def __init__(self, weights: Path | None, device: str) -> None:
        self.weights, self.requested = weights, device

    def setup(self, worker: object) -> None:
        from amif_core.runtime import runner

        gpus = [d.device_id for d in runner.available_devices() if d.device_id.startswith("cuda:")]
        name = getattr(worker, "name", None)
        if self.requested == runner.AUTO and len(gpus) > 1 and isinstance(name, int):
            self.device = gpus[name % len(gpus)]
        else:
            self.device = runner.resolve(self.requested)
        self.models = Models(self.weights)
        self.model_id = self.models(self.device).model_id


@dataclass(frozen=True)
class BatchSettings:
    """What every study of a run shares: the ``out`` folder, the protected volume's ``suffix`` (".nrrd", ".nii",
    ".nii.gz" or ".mha"; unused for a DICOM series), the ``passphrase_file`` the key's passphrase is read from on the
    worker (None: keys not encrypted), and ``force``: protect every study again."""

    out: Path
    suffix: str = ".nrrd"
    passphrase_file: Path | None = None
    force: bool = False


def study_files(study: Study, settings: BatchSettings) -> StudyFiles:
    """The study's inputs and its outputs under ``settings.out/<study_id>/``."""
    folder = settings.out / study.study_id
    output = folder / ("protected" if study.options.dicom else f"protected{settings.suffix}")
    return StudyFiles(study.mri, study.other, output, folder / KEY_NAME)


def _made_as_asked(key: Key, options: FuseOptions) -> bool:
    """True when ``key`` records the identifier, colour table and (when one is asked) slice axis of ``options``."""
    table = None if key.colour is None else key.colour.table
    return (key.identifier == validate_identifier(options.identifier) and table == options.colour
            and options.axis in (None, key.axis))


def _done(files: StudyFiles, options: FuseOptions, passphrase: str | None, model_id: str) -> bool:
    """True when the study's outputs exist, its key opens with ``passphrase`` (encrypted when one is given), records
    the study's options (:func:`_made_as_asked`) and fits its protected volume for the weights ``model_id``. Raises
    :class:`WrongPassphraseError` for a key that ``passphrase`` does not open, so an earlier run's key is never
    replaced unasked. The owner secret is not recorded anywhere, so a change of secret alone is not seen."""
    from amif_core.inference.pipeline import check_key_fits_volume
    from amif_core.io.volumes import read_volume
    from amif_core.key.file import open_key_file

    if not (files.output.exists() and files.key.exists()):
        return False
    try:
        keyfile = open_key_file(files.key)
        if passphrase is not None and not keyfile.needs_passphrase:
            return False  # asked for an encrypted key now
        key = keyfile.key(passphrase)
        if not _made_as_asked(key, options):
            return False
        check_key_fits_volume(read_volume(files.output), key, model_id)
    except WrongPassphraseError:
        raise
    except (KeyMismatchError, KeyFormatError, InputError):
        return False
    return True


def _message(error: BaseException) -> str:
    if isinstance(error, WrongPassphraseError):
        return (f"{error} It is the key of an earlier run: give that run's passphrase, or use --force to protect "
                "this study again.")
    if isinstance(error, OSError) and not isinstance(error, AMIFError):
        return f"{error.strerror or error} ({error.filename})" if error.filename else str(error)
    if isinstance(error, MemoryError):
        return "out of memory, even one slice at a time on the CPU"
    return str(error)


def protect_study(study: Study, settings: BatchSettings) -> StudyResult:
    """One study's task: skip it when done (unless ``settings.force``), else protect it; on a worker that has the
    :class:`ModelPlugin`.

    Failures of the study itself (unreadable or non-overlapping inputs, a
    full disk, memory exhausted on the CPU) come back as a "failed" result
    with the error; anything else raises, so Dask retries the task.
    """
    start = time.perf_counter()
    worker = get_worker()
    plugin: ModelPlugin = worker.plugins[PLUGIN_NAME]
    files = study_files(study, settings)
    notes: list[str] = []

    def result(status: str, error: str = "", device: str = "") -> StudyResult:
        digest = sha256_of(files.output) if status in (PROTECTED, SKIPPED) else ""
        return StudyResult(study.row, study.study_id, status, error, time.perf_counter() - start, device,
                           worker.address, str(files.output), str(files.key), digest, " | ".join(notes))

    try:
        passphrase = None if settings.passphrase_file is None else read_passphrase_file(settings.passphrase_file)
        if not settings.force and _done(files, study.options, passphrase, plugin.model_id):
            return result(SKIPPED)
        files.output.parent.mkdir(exist_ok=True)
        check_study_outputs(files, study.options, force=True)
        fused = fuse_study(files, study.options, passphrase, plugin.models, plugin.device, force=True, progress=None,
                           notice=notes.append)
        return result(PROTECTED, device=fused.device)
    except (AMIFError, OSError, MemoryError) as error:
        return result(FAILED, _message(error))
