"""All-or-nothing writing of one or several output files.

Each output is written to a hidden temporary file in its destination folder
(``.amif-partial-<random>-<name>``, so format detection by extension still
works) and moved into place only when every output of the set was written.
Any failure or interruption (including ``KeyboardInterrupt``) removes the
temporary files and anything already moved, so no partial output is left.
Existing files are never replaced unless ``force`` is set.
"""
from __future__ import annotations

import errno
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from amif_core.errors import InputError

PARTIAL_PREFIX = ".amif-partial-"
PUBLIC_MODE = 0o666  # reduced by the umask, like any new file
PRIVATE_MODE = 0o600  # keys: readable by their owner only


@dataclass(frozen=True)
class Output:
    """One file to write: ``write(temp_path)`` must fill the (already created, empty) file."""

    path: Path
    write: Callable[[Path], None]
    mode: int = PUBLIC_MODE


def check_outputs(paths: Sequence[str | Path], force: bool = False, inputs: Sequence[str | Path] = ()) -> None:
    """Fail early, before any work, if the outputs cannot be written as asked.

    Raises :class:`FileExistsError` for an existing output without ``force``
    and :class:`InputError` for a missing or unwritable folder, an output given
    twice, or an output that is one of ``inputs`` (never overwritten, even with ``force``).
    """
    seen: set[Path] = set()
    input_paths = [Path(p).resolve() for p in inputs]
    for raw in paths:
        path = Path(raw).resolve()
        if path in seen:
            raise InputError(f"The same output file is given twice: {raw}. Give each output its own name.")
        seen.add(path)
        if any(path == p or (path.exists() and p.exists() and os.path.samefile(path, p)) for p in input_paths):
            raise InputError(f"The output {raw} is one of the input files; AMIF never overwrites its inputs. "
                             "Choose another output name.")
        if not path.parent.is_dir():
            raise InputError(f"The folder {path.parent} does not exist; create it first or choose another output path.")
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise InputError(f"The folder {path.parent} is not writable (read-only, or not yours); choose another "
                             "output path.")
        if path.is_dir():
            raise InputError(f"The output {raw} is a folder; give a file name.")
        if path.exists() and not force:
            raise FileExistsError(f"{raw} already exists; nothing was overwritten.")


def _reserve(path: Path, mode: int) -> Path:
    for _ in range(100):
        temp = path.with_name(f"{PARTIAL_PREFIX}{secrets.token_hex(4)}-{path.name}")
        try:
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


def write_atomically(outputs: Sequence[Output], force: bool = False) -> None:
    """Write every output, then move them all into place; on any failure, leave none of them.

    ``force``: replace existing files. Raises what the writers raise, or
    :class:`FileExistsError` when an output exists and ``force`` is False.
    """
    check_outputs([o.path for o in outputs], force)
    temps: list[Path] = []
    placed: list[Path] = []
    try:
        for output in outputs:
            temps.append(_reserve(Path(output.path), output.mode))
            output.write(temps[-1])
            _sync(temps[-1])
        for output, temp in zip(outputs, temps):
            _move_into_place(temp, Path(output.path), force)
            placed.append(Path(output.path))
    except BaseException:
        for path in temps + placed:
            path.unlink(missing_ok=True)
        raise
