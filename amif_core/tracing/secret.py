"""The owner secret: 256 random bits that choose the trace mark, kept by the model owner alone.

A secret file is two text lines, ``amif-owner-secret-v1`` and 64 hex digits,
written with owner-only permissions (0600). Without one, the public demo
secret is used: its mark is published with the code, so an image marked
with it traces to "anyone who runs AMIF", never to one owner.

The secret never leaves this module's objects: it is not in keys, images,
scenes or logs, and ``repr`` of an :class:`OwnerSecret` shows only whether it
is the demo secret.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from amif_core.errors import InputError
from amif_core.atomic import PRIVATE_MODE, Output, write_atomically

SECRET_BYTES = 32
HEADER = "amif-owner-secret-v1"
ENVIRONMENT = "AMIF_OWNER_SECRET"  # names a secret file, never holds the secret itself


@dataclass(frozen=True)
class OwnerSecret:
    """256 secret bits (``bits``, 32 bytes) and whether they are the public demo secret."""

    bits: bytes = field(repr=False)
    demo: bool = False

    def __post_init__(self) -> None:
        if len(self.bits) != SECRET_BYTES:
            raise InputError("An owner secret is {expected} bytes, got {got}.", expected=SECRET_BYTES,
                             got=len(self.bits))

    def derive(self, purpose: str) -> bytes:
        """32 bytes for one ``purpose`` (HMAC-SHA256 of the purpose under the secret): what the mark uses."""
        return hmac.new(self.bits, purpose.encode(), hashlib.sha256).digest()


DEMO_SECRET = OwnerSecret(hashlib.sha256(b"AMIF public demonstration owner secret; traces to anyone").digest(),
                          demo=True)


def new_secret() -> OwnerSecret:
    """A fresh secret from the operating system's random source."""
    return OwnerSecret(secrets.token_bytes(SECRET_BYTES))


def secret_output(path: Path, secret: OwnerSecret) -> Output:
    """The secret file at ``path`` as an :class:`~amif_core.atomic.Output`, readable by its owner only."""
    text = f"{HEADER}\n{secret.bits.hex()}\n"
    return Output(Path(path), lambda temp: Path(temp).write_text(text, encoding="ascii"), mode=PRIVATE_MODE)


def write_secret(path: Path, secret: OwnerSecret, force: bool = False) -> None:
    """Write ``secret`` to ``path`` atomically (mode 0600); an existing file is replaced only with ``force``."""
    write_atomically([secret_output(path, secret)], force)


def read_secret(path: str | Path) -> OwnerSecret:
    """Read a secret file written by :func:`write_secret` (``amif owner init``).

    Raises :class:`InputError` for a missing file, another format, or a file
    that other users may read (the secret would no longer be the owner's).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("The owner secret file {path} does not exist. Create one with `amif owner init -o {path}`.",
                         path=path)
    if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError("The owner secret file {path} can be read by other users; restrict it with "
                         "`chmod 600 {path}`.", path=path)
    lines = path.read_text(encoding="ascii", errors="replace").split()
    try:
        if len(lines) != 2 or lines[0] != HEADER:
            raise ValueError
        bits = bytes.fromhex(lines[1])
    except ValueError:
        raise InputError("{path} is not an AMIF owner secret file (made by `amif owner init`).", path=path) from None
    if len(bits) != SECRET_BYTES:
        raise InputError("{path} is not an AMIF owner secret file (made by `amif owner init`).", path=path)
    return OwnerSecret(bits)


def resolve_secret(path: str | Path | None) -> OwnerSecret:
    """The secret a run uses: the file ``path``, else the file named by ``$AMIF_OWNER_SECRET``, else the demo secret.
    An empty ``path`` (an unset field or setting) counts as none."""
    chosen = path or os.environ.get(ENVIRONMENT) or None
    return DEMO_SECRET if chosen is None else read_secret(chosen)


DEMO_NOTICE = (f"No owner secret (--owner-secret or ${ENVIRONMENT}): the fusion carries the public demo trace mark, "
               "which traces to anyone running AMIF, not to its owner.")


def owner_secret(notice: Callable[[str], None], path: str | Path | None = None) -> OwnerSecret:
    """:func:`resolve_secret`, announcing the demo secret through ``notice`` when that is what a run gets."""
    secret = resolve_secret(path)
    if secret.demo:
        notice(DEMO_NOTICE)
    return secret
