"""What the panel knows about the chosen unlock key file, read once per version of the file.

The panel refreshes on every change of the scene or the parameter node; the
key file is read again only when its path, size or modification time changed
(:class:`KeyFileCache`). A file that cannot unlock says why; nothing is hidden.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from AMIFSlicerLib.i18n import tr as _


@dataclass(frozen=True)
class KeyFileState:
    """The unlock key file as the panel shows it.

    ``needsPassphrase``: True when its arrays are encrypted; None when it is
    not known yet (reading a key file needs the ``cryptography`` package,
    installed with the other dependencies on the first run), so the panel
    offers the passphrase field. ``problem``: why the file cannot unlock (in
    the panel's words), or None.
    """

    needsPassphrase: bool | None
    problem: str | None = None


Stamp = tuple[str, int, int]


def fileStamp(path: Path) -> Stamp | None:
    """(resolved path, size, modification time in ns) of a file, or None when there is no file there."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return str(path.resolve()), status.st_size, status.st_mtime_ns


def readKeyFileState(path: Path, message: Callable[[Exception], str]) -> KeyFileState:
    """Read the key file at ``path`` once (:func:`amif_core.key.file.open_key_file`) and say what it needs.

    ``message(error)`` words a core error for the panel. A key file that is
    damaged, not a key, or unreadable gives its reason as ``problem``.
    """
    try:
        from amif_core.key.file import open_key_file
    except ModuleNotFoundError:  # cryptography comes with the dependencies: the first Unlock installs it
        return KeyFileState(needsPassphrase=None)
    from amif_core.errors import AMIFError

    try:
        return KeyFileState(needsPassphrase=open_key_file(path).needs_passphrase)
    except (AMIFError, OSError) as error:
        return KeyFileState(needsPassphrase=False, problem=_("This key file cannot unlock: {reason}").format(
            reason=message(error)))


class KeyFileCache:
    """The :class:`KeyFileState` of the last key file asked for, read again only when the file changes (its path,
    size or modification time). ``message(error)`` words a core error for the panel."""

    def __init__(self, message: Callable[[Exception], str]) -> None:
        self.message = message
        self._stamp: Stamp | None = None
        self._state: KeyFileState | None = None

    def state(self, path: Path) -> KeyFileState | None:
        """The state of the key file at ``path``; None when no file is there (the unlock check says so)."""
        stamp = fileStamp(path)
        if stamp is None:
            return None
        if stamp != self._stamp:
            self._state = readKeyFileState(path, self.message)
            self._stamp = stamp if self._state.needsPassphrase is not None else None  # unknown: ask again next time
        return self._state
