"""The module's translation function: Slicer's ``tr`` (``_`` by convention), or the text itself where MRML runs
without Slicer's application (the slicer-core wheel of the headless tests has no translations)."""
from __future__ import annotations

try:
    from slicer.i18n import tr
except ImportError:
    def tr(text: str) -> str:
        """The untranslated ``text``."""
        return text
