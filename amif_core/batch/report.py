"""What ``amif batch`` did, per study and in sum: ``DIR/batch-report.csv`` and ``DIR/batch-report.json``.

Both files are rewritten, atomically, at the end of every run: they
describe the last run (a skipped study still lists its key and digest).
"""
from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from amif_core.atomic import Output, json_output, write_atomically

REPORT_CSV = "batch-report.csv"
REPORT_JSON = "batch-report.json"
PROTECTED, SKIPPED, FAILED, INVALID = "protected", "skipped", "failed", "invalid"
STATUSES = (PROTECTED, SKIPPED, FAILED, INVALID)


@dataclass(frozen=True)
class StudyResult:
    """One study's outcome.

    ``status``: "protected" (done in this run), "skipped" (its outputs
    already existed and its key fits its protected volume), "failed" (``error``
    says why) or "invalid" (its manifest row was refused before any work).
    ``seconds``: wall time of its task, reading and the fit check included;
    ``device``: where the model ran ("cpu", "cuda:0"; empty when it did not
    run); ``worker``: the Dask worker's address; ``protected`` and ``key``: output paths; ``sha256``: hex digest of
    the protected file (of a DICOM series folder: :func:`sha256_of`);
    ``notes``: what the run noticed (resampling, partial coverage), joined by " | ".
    """

    row: int
    study_id: str
    status: str
    error: str = ""
    seconds: float = 0.0
    device: str = ""
    worker: str = ""
    protected: str = ""
    key: str = ""
    sha256: str = ""
    notes: str = ""


@dataclass
class BatchReport:
    """Every study's :class:`StudyResult` in manifest order, and the run's ``manifest``, ``out`` folder,
    ``scheduler`` address, ``workers`` count and wall ``seconds``."""

    manifest: str
    out: str
    scheduler: str = ""
    workers: int = 0
    seconds: float = 0.0
    studies: list[StudyResult] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Studies per status (every status listed, zeros included)."""
        tally = Counter(result.status for result in self.studies)
        return {status: tally[status] for status in STATUSES}

    @property
    def failed(self) -> list[str]:
        """The study ids that failed or whose rows were invalid, in manifest order."""
        return [result.study_id or f"row {result.row}" for result in self.studies
                if result.status in (FAILED, INVALID)]

    @property
    def ok(self) -> bool:
        """True when every study is protected or skipped."""
        return not self.failed

    def summary(self) -> dict:
        """The JSON summary: counts, failed studies, the run's facts and every study's result."""
        return {"manifest": self.manifest, "out": self.out, "scheduler": self.scheduler, "workers": self.workers,
                "seconds": round(self.seconds, 3), "counts": self.counts, "failed": self.failed,
                "studies": [asdict(result) for result in self.studies]}


def sha256_of(path: Path) -> str:
    """SHA-256 hex of a file's bytes; of a folder (a DICOM series), of each file's name and bytes in name order."""
    digest = hashlib.sha256()
    for member in sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]:
        if path.is_dir():
            digest.update(member.name.encode() + b"\0")
        with member.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _csv_text(report: BatchReport) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, [f.name for f in fields(StudyResult)], lineterminator="\n")
    writer.writeheader()
    writer.writerows({**asdict(result), "seconds": f"{result.seconds:.3f}"} for result in report.studies)
    return text.getvalue()


def write_report(report: BatchReport, out: Path) -> tuple[Path, Path]:
    """Write ``out/batch-report.csv`` (one row per study) and ``out/batch-report.json`` (:meth:`BatchReport.summary`)
    atomically, replacing the previous run's; returns their paths."""
    csv_text = _csv_text(report)
    paths = out / REPORT_CSV, out / REPORT_JSON
    write_atomically([Output(paths[0], lambda temp: temp.write_text(csv_text, encoding="utf-8")),
                      json_output(paths[1], report.summary())], force=True)
    return paths
