"""Exceptions of AMIF. Their messages are meant to be shown to users as they are.

An error that a setting can fix names it: ``setting`` is one of
:data:`SETTINGS` and ``value`` the offending value. The core's message says
what is wrong in the front end's neutral terms; each front end adds how to
change that setting in its own words (the CLI names a flag, the Slicer panel
a control), see :meth:`AMIFError.hint`.
"""
from __future__ import annotations

from typing import Any, Mapping

SETTINGS = ("axis", "device", "overwrite", "passphrase", "identifier", "colour")


class AMIFError(Exception):
    """Base class of every error AMIF raises on purpose.

    ``setting``: the setting that would fix it (one of :data:`SETTINGS`), or
    None; ``value``: the offending value, when there is one.
    """

    def __init__(self, message: str, *, setting: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        if setting is not None and setting not in SETTINGS:
            raise ValueError(f"unknown setting {setting!r}")
        self.setting = setting
        self.value = value

    def hint(self, words: Mapping[str, str]) -> str:
        """The message plus the front end's advice for :attr:`setting` (``words``: setting -> advice)."""
        advice = words.get(self.setting) if self.setting is not None else None
        return f"{self} {advice}" if advice else str(self)


class InputError(AMIFError, ValueError):
    """An input image, volume or option is unusable; the message says what to change."""


class KeyMismatchError(AMIFError):
    """The key does not belong to this protected image."""


class ImageModifiedError(KeyMismatchError):
    """The protected image is the one the key was made for, but its voxels changed
    (edited, resampled, or re-saved at lower precision)."""


class ModelMismatchError(KeyMismatchError):
    """The key was made by another version of the AMIF weights."""


class KeyFormatError(AMIFError):
    """A key file is truncated, corrupted or not an AMIF key."""


class WrongPassphraseError(AMIFError):
    """The passphrase does not open this key file."""


class CancelledError(AMIFError):
    """The user cancelled a running protect or unlock."""


class MemoryLimitError(AMIFError):
    """A run cannot fit this computer's memory, even one slice at a time."""
