"""Test support: find, by reading amif_core's source, every place that builds an AMIF error.

Used by ``tests/test_errors.py`` (each template is one literal whose
``{placeholders}`` are the call's keyword params) and by the Slicer panel's
tests (the templates are exactly those of ``AMIFSlicerLib.coremessages``).
"""
from __future__ import annotations

import ast
import string
from dataclasses import dataclass
from pathlib import Path

import amif_core

CORE_DIR = Path(amif_core.__file__).resolve().parent
ERROR_ARGUMENTS = frozenset({"setting", "value", "advice"})  # keywords of AMIFError that are not template params


@dataclass(frozen=True)
class ErrorSite:
    """One call that builds an AMIF error: where it is, its template (None: not one literal) and keyword names."""

    place: str
    error: str
    template: str | None
    keywords: tuple[str | None, ...]  # None stands for a ``**mapping`` argument
    advice: str | None = None  # the advice= text: a literal, or a module constant bound to one

    def problem(self) -> str | None:
        """Why this site breaks the rule (one literal template, its placeholders exactly the params), or None."""
        if self.template is None:
            return f"{self.place}: {self.error}'s first argument is not one literal string"
        if None in self.keywords:
            return f"{self.place}: {self.error} takes its params from a ** mapping"
        if "advice" in self.keywords and self.advice is None:
            return f"{self.place}: {self.error}'s advice is not a literal or a module constant bound to one"
        fields = placeholders(self.template)
        params = set(self.keywords) - ERROR_ARGUMENTS
        if fields != params:
            return f"{self.place}: template fields {sorted(fields)} but params {sorted(params)}"
        return None


def placeholders(template: str) -> set[str]:
    """The field names of a ``str.format`` template (``{size:.1f}`` names ``size``)."""
    names = set()
    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None:
            names.add(field.split(".")[0].split("[")[0])
    return names


def _trees(root: Path) -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"), str(path))) for path in sorted(root.rglob("*.py"))]


def _error_classes(trees: list[tuple[Path, ast.Module]]) -> set[str]:
    """Names of AMIFError and every class in amif_core that derives from it, however deep."""
    classes = [node for _, tree in trees for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    names = {"AMIFError"}
    grown = True
    while grown:
        grown = False
        for node in classes:
            bases = {base.id if isinstance(base, ast.Name) else getattr(base, "attr", None) for base in node.bases}
            if node.name not in names and bases & names:
                names.add(node.name)
                grown = True
    return names


def _advice(call: ast.Call, constants: dict[str, str]) -> str | None:
    """The text of a call's ``advice=`` keyword: a literal, or the module-level string constant it names."""
    value = next((k.value for k in call.keywords if k.arg == "advice"), None)
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return value.value
    return constants.get(value.id) if isinstance(value, ast.Name) else None


def error_sites(root: Path = CORE_DIR) -> list[ErrorSite]:
    """Every call in the package at ``root`` (amif_core) to AMIFError or one of its subclasses (raised or not)."""
    trees = _trees(root)
    classes = _error_classes(trees)
    sites = []
    for path, tree in trees:
        constants = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                     and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                     for target in node.targets if isinstance(target, ast.Name)}
        calls = sorted((node for node in ast.walk(tree) if isinstance(node, ast.Call)),
                       key=lambda node: (node.lineno, node.col_offset))
        for node in calls:
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name not in classes:
                continue
            first = node.args[0] if node.args else None
            literal = isinstance(first, ast.Constant) and isinstance(first.value, str) and len(node.args) == 1
            sites.append(ErrorSite(f"{path.relative_to(root.parent)}:{node.lineno}", name,
                                   first.value if literal else None, tuple(k.arg for k in node.keywords),
                                   _advice(node, constants)))
    return sites


PANEL_UNREACHABLE = ("amif_core/batch/", "amif_core/cli/", "amif_core/study.py", "amif_core/evaluation/",
                     "amif_core/training/", "amif_core/inference/trace.py",
                     "amif_core/tracing/detect.py")  # Slicer never runs these (tracing is the owner's command)


def core_templates(panel_only: bool = False) -> set[str]:
    """The distinct templates, and advice texts, of amif_core's errors; ``panel_only``: leaving out
    :data:`PANEL_UNREACHABLE`."""
    sites = [site for site in error_sites()
             if not (panel_only and site.place.replace("\\", "/").startswith(PANEL_UNREACHABLE))]
    return {text for site in sites for text in (site.template, site.advice) if text is not None}
