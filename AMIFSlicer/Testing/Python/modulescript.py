"""Import ``AMIFSlicer.py`` itself outside Slicer: the real file, on the real MRML of ``slicer-core``.

The wheel has MRML and ``slicer.util`` but none of Slicer's application
layer, so the names ``AMIFSlicer.py`` imports from it are stood in while it
is imported: ``qt``, ``slicer.i18n`` (the untranslated text),
``slicer.ScriptedLoadableModule`` (empty base classes) and
``slicer.parameterNodeWrapper`` (the class left as written, so its
annotations are what the tests read). None of the slicer-core wheels
(5.11.0.2, 5.12.4.0, 5.13.31053.0) ships ``slicer.parameterNodeWrapper``, so
the node types the panel will get are derived from those annotations the way
its ``getNodeTypes`` does; the self-test checks them with the real connector in
Slicer.
"""
from __future__ import annotations

import importlib.util
import sys
import types
import typing
from pathlib import Path

import slicer

MODULE_SCRIPT = Path(__file__).resolve().parents[2] / "AMIFSlicer.py"
_loaded: types.ModuleType | None = None


def _standIns() -> dict[str, types.ModuleType]:
    qt = types.ModuleType("qt")
    qt.QTimer = types.SimpleNamespace(singleShot=lambda msec, call: call())
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    scripted = types.ModuleType("slicer.ScriptedLoadableModule")
    for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleLogic", "ScriptedLoadableModuleTest"):
        setattr(scripted, name, type(name, (), {}))
    scripted.ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (), {
        "onReload": lambda self: self.calls.append("ScriptedLoadableModuleWidget.onReload")})  # records, on a test's self
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda classtype: classtype
    return {"qt": qt, "slicer.i18n": i18n, "slicer.ScriptedLoadableModule": scripted,
            "slicer.parameterNodeWrapper": wrapper}


def loadModuleScript() -> types.ModuleType:
    """The module ``AMIFSlicer`` from ``AMIFSlicer.py``, imported once with the stand-ins above (removed again
    afterwards, so nothing else sees them)."""
    global _loaded
    if _loaded is None:
        standIns = _standIns()
        saved = {name: sys.modules.get(name) for name in standIns}
        sys.modules.update(standIns)
        try:
            spec = importlib.util.spec_from_file_location("AMIFSlicer", MODULE_SCRIPT)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        finally:
            for name, previous in saved.items():
                if previous is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = previous
        _loaded = module
    return _loaded


def comboBoxNodeTypes(annotation: object) -> tuple[str, ...]:
    """The ``nodeTypes`` that Slicer's node combo box connector sets for a parameter annotated ``annotation``
    (as ``parameterNodeWrapper.util.getNodeTypes``: the class name of a node class, or of each node class in a
    Union; None and other members add nothing)."""
    members = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Union else (annotation,)
    return tuple(member().GetClassName() for member in members
                 if isinstance(member, type) and issubclass(member, slicer.vtkMRMLNode))
