"""``protect_manifest``: protect every study of a manifest on Dask, one task per study, and report.

The model is loaded once per worker (:class:`~amif_core.batch.worker.ModelPlugin`);
Dask schedules the tasks, reruns a task whose worker died (up to the
scheduler's allowed failures) and retries one that raised unexpectedly up
to ``retries`` times. Progress is a tqdm bar fed by ``as_completed``.
"""
from __future__ import annotations

import os
import sys
import time
import uuid
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from tqdm import tqdm

from amif_core.batch.cluster import batch_client, require_distributed
from amif_core.batch.manifest import Study, read_manifest
from amif_core.batch.report import FAILED, INVALID, BatchReport, StudyResult, write_report
from amif_core.study import FuseOptions, Models, read_passphrase_file
from amif_core.errors import InputError
from amif_core.io.volumes import check_volume_path
from amif_core.tracing.secret import ENVIRONMENT, owner_secret

if TYPE_CHECKING:
    from distributed import Client

    from amif_core.batch.worker import BatchSettings

DEFAULT_RETRIES = 2


def protect_manifest(manifest: str | Path, out: str | Path, client: Client | None = None, *,
                     options: FuseOptions = FuseOptions(), passphrase_file: Path | None = None,
                     suffix: str = ".nrrd", device: str = "auto", weights: Path | None = None, force: bool = False,
                     retries: int = DEFAULT_RETRIES, scheduler: str | None = None, workers: int | None = None,
                     progress: bool = True, notice: Callable[[str], None] = print) -> BatchReport:
    """Protect every study of the CSV ``manifest`` into ``out/<study_id>/`` and write ``out/batch-report.csv`` and
    ``.json``; returns the report (``report.ok`` is False when a study failed or its row was invalid).

    ``client``: a Dask client to run on; None starts one as
    :func:`~amif_core.batch.cluster.batch_client` does (``scheduler``
    address, or a ``LocalCluster`` of ``workers`` workers). ``options``: the
    fuse options of every study (a row's ``colour``/``identifier`` cells
    override them). ``passphrase_file``: encrypt each key with the passphrase
    on its first line (read by each worker; the passphrase never travels with
    the tasks); ``options.owner_secret`` (else $AMIF_OWNER_SECRET here) is
    likewise a file each worker reads. ``suffix``: of the protected volume files. ``device``/
    ``weights``: as for ``amif fuse``, per worker. ``force``: protect every
    study again, even one already done. ``retries``: reruns of a task that
    raised unexpectedly (and, on a local cluster, of one whose worker died).
    Rows that cannot run are listed through ``notice`` before any work.
    Raises :class:`~amif_core.errors.InputError` for an unusable manifest,
    suffix, weights or passphrase file, and when Dask is not installed.
    """
    start = time.perf_counter()
    require_distributed()
    manifest, out = Path(manifest), Path(out)
    check_volume_path(f"protected{suffix}")
    Models(weights)  # a missing weights file is refused here, not once per worker
    if passphrase_file is not None:
        read_passphrase_file(passphrase_file)
    secret_file = options.owner_secret or os.environ.get(ENVIRONMENT) or None  # the workers' environment may lack it
    options = replace(options, owner_secret=None if secret_file is None else Path(secret_file).resolve())
    owner_secret(notice, options.owner_secret)  # a bad file is refused, the demo secret announced, here once
    studies, rejected = read_manifest(manifest, options)
    if rejected:
        notice(f"{len(rejected)} of {len(studies) + len(rejected)} manifest rows cannot run and are reported as "
               "invalid:\n" + "\n".join(f"  {problem}" for problem in rejected))
    out.mkdir(parents=True, exist_ok=True)
    from amif_core.batch.worker import BatchSettings

    settings = BatchSettings(out.resolve(), suffix, passphrase_file and passphrase_file.resolve(), force)
    report = BatchReport(str(manifest), str(out))
    report.studies = [StudyResult(p.row, p.study_id, INVALID, "; ".join(p.problems)) for p in rejected]
    if studies:
        with nullcontext(client) if client is not None else batch_client(scheduler, device, workers, retries) as on:
            report.studies += _run(on, studies, settings, weights, device, retries, progress, notice, report)
    report.studies.sort(key=lambda result: result.row)
    report.seconds = time.perf_counter() - start
    write_report(report, out)
    return report


def _run(client: Client, studies: list[Study], settings: BatchSettings, weights: Path | None, device: str, retries: int,
         progress: bool, notice: Callable[[str], None], report: BatchReport) -> list[StudyResult]:
    """Submit one task per study on ``client`` and collect their results as they complete."""
    from distributed import as_completed

    from amif_core.batch.worker import PLUGIN_NAME, ModelPlugin, protect_study

    try:
        client.register_plugin(ModelPlugin(weights, device), name=PLUGIN_NAME)
    except Exception as error:  # raised on a worker: amif_core missing there, the device refused, ...
        raise InputError("The Dask workers could not load the AMIF model: {reason}. Check that amif-core is "
                         "installed where the workers run and that they can use the device {device}.",
                         reason=f"{type(error).__name__}: {error}", device=device) from error
    report.scheduler = client.scheduler.address
    report.workers = len(client.nthreads())
    notice(f"Running {len(studies)} studies on {report.workers} Dask workers ({report.scheduler}); "
           f"dashboard: {client.dashboard_link}")
    run = uuid.uuid4().hex[:8]
    futures = {client.submit(protect_study, study, settings, key=f"amif-study-{run}-{study.row}", retries=retries):
               study for study in studies}
    results = []
    with tqdm(total=len(futures), desc="Studies", unit="study", disable=not progress, file=sys.stderr,
              dynamic_ncols=True) as bar:
        for future in as_completed(futures, loop=client.loop):
            study = futures[future]
            try:
                results.append(future.result())
            except Exception as error:  # the task raised after its retries, or kept killing its workers
                results.append(StudyResult(study.row, study.study_id, FAILED, f"{type(error).__name__}: {error}"))
            bar.update()
    return results
