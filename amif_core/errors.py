"""Exceptions of AMIF. Their messages are meant to be shown to users as they are.

Each error is built from an English ``template`` with named ``{placeholders}``
(``str.format`` syntax, format specs allowed: ``{size:.1f}``) and the
``params`` that fill them; the message is ``template.format(**params)``. Every
template is one string literal at the place that raises it, so a front end can
list and translate them (the Slicer panel does, in ``AMIFSlicerLib.coremessages``),
then fill the translation with the same params. The core itself never translates.

An error that a setting can fix names it: ``setting`` is one of
:data:`SETTINGS` and ``value`` the offending value. The core's message says
what is wrong in the front end's neutral terms; each front end adds how to
change that setting in its own words (the CLI names a flag, the Slicer panel
a control), see :meth:`AMIFError.hint`. Advice that many errors share (``advice``,
e.g. "use an intact copy of the key" after each kind of key-file damage) is one
literal kept apart from the templates and appended to the message.
"""
from __future__ import annotations

from typing import Any, Mapping

SETTINGS = ("axis", "device", "overwrite", "passphrase", "identifier", "colour")


class AMIFError(Exception):
    """Base class of every error AMIF raises on purpose.

    ``template``: the English message with named ``{placeholders}``;
    ``params``: their values (the keyword arguments other than ``setting`` and
    ``value``); ``setting``: the setting that would fix it (one of
    :data:`SETTINGS`), or None; ``value``: the offending value, when there is one;
    ``advice``: a sentence shared by several errors (one literal, a module
    constant), appended to the message after a space, or None.
    """

    def __init__(self, template: str, *, setting: str | None = None, value: Any = None, advice: str | None = None,
                 **params: Any) -> None:
        super().__init__(template.format(**params) + (f" {advice}" if advice else ""))
        if setting is not None and setting not in SETTINGS:
            raise ValueError(f"unknown setting {setting!r}")
        self.template = template
        self.params = params
        self.setting = setting
        self.value = value
        self.advice = advice

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
