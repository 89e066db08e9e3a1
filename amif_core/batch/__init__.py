"""Protect a whole archive: every study of a manifest, one Dask task per study (``amif batch``).

    from amif_core.batch import protect_manifest
    report = protect_manifest("manifest.csv", "protected/")   # a LocalCluster on this machine
    report.ok, report.counts, report.failed

Importing this package needs neither torch nor Dask; running needs Dask
``distributed`` (``pip install "amif-core[batch]"``). Modules: ``manifest``
(read and check the CSV), ``worker`` (the per-worker model and the per-study
task), ``cluster`` (an existing scheduler or a ``LocalCluster``), ``run``
(:func:`protect_manifest`) and ``report`` (``batch-report.csv`` and ``.json``).
"""
from __future__ import annotations

from amif_core.batch.manifest import RowProblem, Study, read_manifest
from amif_core.batch.report import BatchReport, StudyResult
from amif_core.batch.run import protect_manifest
from amif_core.study import FuseOptions

__all__ = ["BatchReport", "FuseOptions", "RowProblem", "Study", "StudyResult", "protect_manifest", "read_manifest"]
