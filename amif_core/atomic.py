"""All-or-nothing writing of one or several output files.

Each output is written to a hidden temporary file in its destination folder
(``.amif-partial-<random>-<name>``, so format detection by extension still
works) and moved into place only when every output of the set was written.
A folder output (a DICOM series) is a temporary folder, moved into place the
same way. Any failure or interruption (including ``KeyboardInterrupt``)
removes the temporary files and anything already moved, so no partial output
is left. Existing files are never replaced unless ``force`` is set; an
existing folder is replaced only with ``force``, and only once the new one is
complete.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from amif_core.errors import InputError

PARTIAL_PREFIX = ".amif-partial-"
PUBLIC_MODE = 0o666  # reduced by the umask, like any new file
PRIVATE_MODE = 0o600  # keys: readable by their owner only


@dataclass(frozen=True)
class Output:
    """One file to write: ``write(temp_path)`` must fill the (already created, empty) file; with ``folder``, one
    folder: ``write`` fills the (already created, empty) temporary folder with its files."""

    path: Path
    write: Callable[[Path], None]
    mode: int = PUBLIC_MODE
    folder: bool = False


def check_outputs(paths: Sequence[str | Path], force: bool = False, inputs: Sequence[str | Path] = (),
                  folders: Sequence[str | Path] = ()) -> None:
    """Fail early, before any work, if the outputs cannot be written as asked.

    ``paths`` are output files, ``folders`` output folders. Raises
    :class:`FileExistsError` for an existing output (a non-empty folder) without
    ``force`` and :class:`InputError` for a missing or unwritable parent folder,
    an output given twice, or an output that is one of ``inputs`` or holds one
    (never overwritten, even with ``force``).
    """
    seen: set[Path] = set()
    input_paths = [Path(p).resolve() for p in inputs]
    folder_paths = {Path(f).resolve() for f in folders}
    for raw in [*paths, *folders]:
        path = Path(raw).resolve()
        if path in seen:
            raise InputError("The same output file is given twice: {path}. Give each output its own name.", path=raw)
        seen.add(path)
        if any(path == p or (path.exists() and p.exists() and os.path.samefile(path, p)) for p in input_paths):
            raise InputError("The output {path} is one of the input files; AMIF never overwrites its inputs. "
                             "Choose another output name.", path=raw)
        if not path.parent.is_dir():
            raise InputError("The folder {folder} does not exist; create it first or choose another output path.",
                             folder=path.parent)
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise InputError("The folder {folder} is not writable (read-only, or not yours); choose another "
                             "output path.", folder=path.parent)
        if path in folder_paths:
            if any(p == path or path in p.parents for p in input_paths):
                raise InputError("The output folder {path} holds input files; AMIF never overwrites its inputs. "
                                 "Choose a new folder.", path=raw)
            if path.exists() and not path.is_dir():
                raise InputError("The output {path} is a file; give a new folder for the DICOM series.", path=raw)
            if path.is_dir() and any(path.iterdir()) and not force:
                raise FileExistsError(f"The folder {raw} already exists and is not empty; nothing was overwritten.")
            continue
        if path.is_dir():
            raise InputError("The output {path} is a folder; give a file name.", path=raw)
        if path.exists() and not force:
            raise FileExistsError(f"{raw} already exists; nothing was overwritten.")


def _reserve(path: Path, mode: int, folder: bool = False) -> Path:
    for _ in range(100):
        temp = path.with_name(f"{PARTIAL_PREFIX}{secrets.token_hex(4)}-{path.name}")
        try:
            if folder:
                os.mkdir(temp, 0o777)
            else:
                os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
        except FileExistsError:
            continue
        return temp
    raise OSError(errno.EEXIST, f"Could not create a temporary file next to {path}")


def _sync(path: Path) -> None:
    """Flush a written file to disk, so the rename never exposes an empty file after a crash."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_into_place(temp: Path, path: Path, force: bool) -> None:
    if force:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)  # atomic, and fails if the destination appeared meanwhile
    except FileExistsError:
        raise FileExistsError(f"{path} already exists; nothing was overwritten.") from None
    except OSError:  # file systems without hard links
        if path.exists():
            raise FileExistsError(f"{path} already exists; nothing was overwritten.") from None
        os.replace(temp, path)
        return
    temp.unlink()


def _move_folder_into_place(temp: Path, path: Path, force: bool, replaced: list[tuple[Path, Path]]) -> None:
    """Rename the folder ``temp`` to ``path``; an existing non-empty ``path`` (only with ``force``) is moved aside
    into ``replaced`` first, to be removed once every output is in place (or restored on failure)."""
    if path.is_dir() and any(path.iterdir()):
        if not force:
            raise FileExistsError(f"The folder {path} already exists and is not empty; nothing was overwritten.")
        aside = path.with_name(f"{PARTIAL_PREFIX}{secrets.token_hex(4)}-replaced-{path.name}")
        os.rename(path, aside)
        replaced.append((aside, path))
    elif path.is_dir():
        path.rmdir()
    os.rename(temp, path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_atomically(outputs: Sequence[Output], force: bool = False) -> None:
    """Write every output, then move them all into place; on any failure, leave none of them.

    ``force``: replace existing files (and folders). Raises what the writers
    raise, or :class:`FileExistsError` when an output exists and ``force`` is False.
    """
    check_outputs([o.path for o in outputs if not o.folder], force, folders=[o.path for o in outputs if o.folder])
    temps: list[Path] = []
    placed: list[Path] = []
    replaced: list[tuple[Path, Path]] = []
    try:
        for output in outputs:
            temps.append(_reserve(Path(output.path), output.mode, output.folder))
            output.write(temps[-1])
            for written in sorted(temps[-1].iterdir()) if output.folder else [temps[-1]]:
                _sync(written)
        for output, temp in zip(outputs, temps):
            if output.folder:
                _move_folder_into_place(temp, Path(output.path), force, replaced)
            else:
                _move_into_place(temp, Path(output.path), force)
            placed.append(Path(output.path))
    except BaseException:
        for path in temps + placed:
            _remove(path)
        for aside, path in replaced:
            os.rename(aside, path)
        raise
    for aside, _ in replaced:
        shutil.rmtree(aside, ignore_errors=True)


def json_output(path: Path, result: dict) -> Output:
    """An :class:`Output` of ``result`` as indented JSON to ``path``."""
    text = json.dumps(result, indent=2)
    return Output(path, lambda temp: temp.write_text(text))
