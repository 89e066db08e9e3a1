"""Test support: count how often a file is opened while a block runs (the key file is read once per unlock)."""
from __future__ import annotations

import builtins
import io
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from unittest import mock


@contextmanager
def opens_of(path: str | Path) -> Iterator[list[str]]:
    """Yield a list that gains one entry per open of ``path`` (through ``open``, ``io.open``, ``Path.open``,
    ``Path.read_bytes`` or ``os.open``) while the block runs; each entry names the function that opened it."""
    target = os.path.realpath(path)
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def is_target(file: Any) -> bool:
        return isinstance(file, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(file)) == target

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if is_target(file):
            opened.append("open")
        return real_open(file, *args, **kwargs)

    def counting_os_open(file: Any, *args: Any, **kwargs: Any) -> int:
        if is_target(file):
            opened.append("os.open")
        return real_os_open(file, *args, **kwargs)

    with mock.patch.object(builtins, "open", counting_open), mock.patch.object(io, "open", counting_open), \
            mock.patch.object(os, "open", counting_os_open):
        yield opened
