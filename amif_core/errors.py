"""Exceptions of AMIF. Their messages are meant to be shown to users as they are."""
from __future__ import annotations


class AMIFError(Exception):
    """Base class of every error AMIF raises on purpose."""


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
