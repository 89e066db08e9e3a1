"""The packages of amif_core import only what docs/architecture.md ("Package dependencies") allows, and no cycle.

Every module's imports are read with ``ast`` (imports inside functions too,
since a lazy import is still a dependency), mapped to the part of
``amif_core`` they land in (a subpackage, or a top-level module), and compared
with the table in the docs, which is the one place the allowed dependencies
are written.
"""
from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import amif_core

CORE = Path(amif_core.__file__).resolve().parent
TABLE = CORE.parent / "docs" / "architecture.md"
SECTION = "## Package dependencies"


def part_of(module: str) -> str:
    """The part of amif_core a dotted module name lies in: ``amif_core.key.file`` -> "key", ``amif_core`` ->
    "__init__", ``amif_core.study`` -> "study"."""
    names = module.split(".")
    return names[1] if len(names) > 1 else "__init__"


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, name: str) -> set[str]:
    """The amif_core modules that the file at ``path``, module ``name``, imports (absolute or relative, anywhere in
    the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.update(f"{base}.{alias.name}" for alias in node.names)  # a module, or a name in one
    return {name for name in found if name == "amif_core" or name.startswith("amif_core.")}


def actual_dependencies() -> dict[str, dict[str, set[str]]]:
    """part -> {part it imports -> the "module -> module" imports that make the edge}."""
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in sorted(CORE.rglob("*.py")):
        source = module_name(path)
        for target in imported_modules(path, source):
            if target.split(".")[1:2] and not (CORE / target.split(".")[1]).exists() \
                    and not (CORE / f"{target.split('.')[1]}.py").exists():
                target = "amif_core"  # "from amif_core import load_model": a name of the package itself
            if part_of(source) != part_of(target):
                edges[part_of(source)][part_of(target)].add(f"{source} -> {target}")
    return edges


def allowed_dependencies(text: str) -> dict[str, set[str]]:
    """The table of the "Package dependencies" section: part -> the parts it may import."""
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    allowed = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        allowed[cells[0].strip("`")] = set(re.findall(r"`([^`]+)`", cells[2]))
    return allowed


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one part (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def parts() -> set[str]:
    return {path.name for path in CORE.iterdir() if (path / "__init__.py").is_file()} | {
        path.stem for path in CORE.glob("*.py")}


def test_every_import_is_one_the_table_allows():
    allowed = allowed_dependencies(TABLE.read_text(encoding="utf-8"))
    assert sorted(parts() - set(allowed)) == [], "parts of amif_core missing from the table"
    assert sorted(set(allowed) - parts()) == [], "table rows for parts amif_core no longer has"
    refused = [f"{source} may not import {target}: {', '.join(sorted(imports))}"
               for source, targets in actual_dependencies().items() for target, imports in targets.items()
               if target not in allowed[source]]
    assert refused == [], "\n".join(refused)


def test_there_is_no_import_cycle_between_packages():
    actual = {source: set(targets) for source, targets in actual_dependencies().items()}
    assert cycles(actual) == []
    assert cycles(allowed_dependencies(TABLE.read_text(encoding="utf-8"))) == [], "the table itself allows a cycle"


def test_the_scan_sees_lazy_relative_and_package_imports_and_finds_cycles(tmp_path: Path):
    module = tmp_path / "amif_core" / "key" / "file.py"
    module.parent.mkdir(parents=True)
    (module.parent / "__init__.py").write_text("")
    module.write_text("import os\nfrom amif_core.errors import InputError\nfrom . import codec\n"
                      "def write():\n    from amif_core import atomic\n")
    found = imported_modules(module, "amif_core.key.file")
    assert {"amif_core.errors.InputError", "amif_core.key.codec", "amif_core.atomic"} <= found
    assert "os" not in found
    assert cycles({"key": {"io"}, "io": {"key", "errors"}, "errors": set()}) == [["io", "key"]]
    assert cycles({"key": {"errors"}, "io": {"key"}}) == []
    table = f"{SECTION}\n\n| Package | Holds | May import |\n|---|---|---|\n| `key` | keys | `errors`, `atomic` |\n" \
            "| `errors` | errors | nothing |\n\n## Next\n| `x` | y | `z` |\n"
    assert allowed_dependencies(table) == {"key": {"errors", "atomic"}, "errors": set()}
