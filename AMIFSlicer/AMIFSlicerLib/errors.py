"""Exceptions raised by the AMIF Slicer logic.

Their messages are written for the person at the panel (and translated where
they are written): the module shows them as they are. Errors of the AMIF core
(:mod:`amif_core.errors`) pass through unchanged, since their messages follow
the same rule; the panel shows them in its language through
:func:`AMIFSlicerLib.coremessages.coreMessage`.
"""
from __future__ import annotations


class AMIFSlicerError(Exception):
    """Base class of the errors the Slicer logic raises on purpose."""


class InvalidInputError(AMIFSlicerError, ValueError):
    """A selected node or option cannot be used; the message says what to choose instead."""


class DependencyError(AMIFSlicerError):
    """A required Python package is missing and was not installed (declined, failed or testing mode)."""
