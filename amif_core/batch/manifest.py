"""The manifest of ``amif batch``: one study per CSV row, read and checked before any work starts.

Columns: ``study_id``, ``mri`` and ``other`` (files or DICOM series
folders, absolute or relative to the manifest's folder), optionally
``colour`` (a colour table for that study's scalar PET/SPECT) and
``identifier`` (that study's identifier text); an empty cell takes the
command's option. Row numbers are those a spreadsheet shows (the header is
row 1). Torch- and Dask-free.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

from amif_core.batch.report import REPORT_CSV, REPORT_JSON
from amif_core.study import FuseOptions
from amif_core.errors import InputError
from amif_core.io.volumes import READ_SUFFIXES

REQUIRED_COLUMNS = ("study_id", "mri", "other")
OPTIONAL_COLUMNS = ("colour", "identifier")


@dataclass(frozen=True)
class Study:
    """One row of the manifest: its spreadsheet ``row``, ``study_id`` (the name of its output folder), absolute
    ``mri`` and ``other`` paths, and its ``options`` (the command's, with the row's colour and identifier)."""

    row: int
    study_id: str
    mri: Path
    other: Path
    options: FuseOptions


@dataclass(frozen=True)
class RowProblem:
    """Why a manifest row cannot run: its ``row``, its ``study_id`` (as written, perhaps empty) and ``problems``."""

    row: int
    study_id: str
    problems: tuple[str, ...]

    def __str__(self) -> str:
        return f"row {self.row} ({self.study_id or 'no study_id'}): " + "; ".join(self.problems)


def _path_problem(column: str, value: str, path: Path) -> str | None:
    if not value:
        return f"the {column} cell is empty"
    if not path.exists():
        return f"{column} {path} does not exist"
    if path.is_file() and not any(path.name.lower().endswith(suffix) for suffix in READ_SUFFIXES):
        return f"{column} {path} is not a volume AMIF reads ({', '.join(READ_SUFFIXES)} or a DICOM series folder)"
    return None


def _study_id_problem(study_id: str) -> str | None:
    if not study_id:
        return "the study_id cell is empty"
    if study_id in (".", "..") or any(c in study_id for c in '/\\\0') or study_id != study_id.strip():
        return (f"study_id {study_id!r} cannot name a folder (no '/', '\\', leading or trailing spaces, '.' or '..'); "
                "use letters, digits, '-' or '_'")
    if study_id.casefold() in (REPORT_CSV, REPORT_JSON):
        return f"study_id {study_id!r} is the name of the batch report; choose another"
    return None


def read_manifest(path: str | Path, options: FuseOptions = FuseOptions()) -> tuple[list[Study], list[RowProblem]]:
    """Every row of the manifest CSV at ``path``: the studies that can run, and the rows that cannot with why.

    ``options``: the command's fuse options, which a row's ``colour`` and
    ``identifier`` cells override. A row cannot run when an input is missing
    or not a readable kind of file, its study_id is empty, unfit for a folder
    name or given twice (every row that shares it, compared case-insensitively
    as file systems may), or its colour table or identifier is refused.
    Raises :class:`InputError` when the file cannot be read as a manifest (missing, no header, a required
    column missing, no rows).
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            columns = [name.strip() for name in reader.fieldnames or []]
            raw = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except OSError as error:
        raise InputError("Cannot read the manifest {path}: {reason}.", path=path, reason=error.strerror) from error
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError("The manifest {path} is not a UTF-8 CSV file ({reason}); save it as CSV (UTF-8).",
                         path=path, reason=error) from error
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputError("The manifest {path} lacks the column(s) {missing}; its header row must name study_id, mri "
                         "and other (and may name colour and identifier).", path=path, missing=", ".join(missing))
    if not raw:
        raise InputError("The manifest {path} has no rows under its header; add one row per study.", path=path)
    folder = path.resolve().parent
    seen: dict[str, list[int]] = {}
    for index, cells in enumerate(raw):
        seen.setdefault(cells["study_id"].casefold(), []).append(index + 2)
    studies, rejected = [], []
    for index, cells in enumerate(raw):
        row, study_id = index + 2, cells["study_id"]
        mri, other = folder / cells["mri"], folder / cells["other"]
        row_options = replace(options, identifier=cells.get("identifier") or options.identifier,
                              colour=cells.get("colour") or options.colour)
        problems = [p for p in (_study_id_problem(study_id), _path_problem("mri", cells["mri"], mri),
                                _path_problem("other", cells["other"], other)) if p]
        twins = [r for r in seen.get(study_id.casefold(), []) if r != row]
        if study_id and twins:
            problems.append(f"study_id {study_id!r} is also on row(s) {', '.join(map(str, twins))}; give each study "
                            "its own id")
        try:
            row_options.check()
        except InputError as error:
            problems.append(str(error))
        if problems:
            rejected.append(RowProblem(row, study_id, tuple(problems)))
        else:
            studies.append(Study(row, study_id, mri, other, row_options))
    return studies, rejected
