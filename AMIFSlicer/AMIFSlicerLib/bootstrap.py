"""Finding ``amif_core`` when the module runs from a source checkout.

An installed extension ships ``amif_core`` next to ``AMIFSlicer.py`` (Slicer
puts that folder on ``sys.path``). A developer who adds ``<checkout>/AMIFSlicer``
under *Additional module paths* instead has ``amif_core`` one level up, in the
checkout root; :func:`ensureAmifCoreImportable` adds that root to ``sys.path``.
Nothing is imported: ``amif_core`` needs PyTorch, which may not be installed yet.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

CORE_PACKAGE = "amif_core"
LIBRARY_PACKAGE = "AMIFSlicerLib"


def ensureAmifCoreImportable(moduleDir: str | Path) -> Path | None:
    """Make ``amif_core`` importable for the module in ``moduleDir``; return the folder added to ``sys.path``.

    Returns None when ``amif_core`` is already importable (installed extension,
    or a Python environment that has it) or when no checkout copy exists at
    ``<moduleDir>/../amif_core``; the latter is reported later, when the core
    is first needed.
    """
    if importlib.util.find_spec(CORE_PACKAGE) is not None:
        return None
    checkoutRoot = Path(moduleDir).resolve().parent
    if not (checkoutRoot / CORE_PACKAGE / "__init__.py").is_file():
        return None
    sys.path.append(str(checkoutRoot))
    importlib.invalidate_caches()
    return checkoutRoot


def forgetLibrary(package: str = LIBRARY_PACKAGE) -> list[str]:
    """Drop ``package`` and its submodules from ``sys.modules``, so that the next import reads their files again
    (Slicer's Reload reloads only the module's own script); returns the names dropped."""
    names = [name for name in sys.modules if name == package or name.startswith(package + ".")]
    for name in names:
        del sys.modules[name]
    importlib.invalidate_caches()
    return names
