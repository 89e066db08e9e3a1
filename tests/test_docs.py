"""The documentation: every relative link resolves, and the generated tables equal their JSON."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
README_MAX_LINES = 250


def _docs_results():
    """scripts/docs_results.py, which renders the generated blocks."""
    spec = importlib.util.spec_from_file_location("docs_results", REPO / "scripts" / "docs_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    headings = re.findall(r"^#+\s+(.*?)\s*$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def _links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8")))


def test_the_readme_is_a_short_front_page() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move long material to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_resolves_to_a_file_in_the_repository(page: Path) -> None:
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_relative_to(REPO) or not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no heading #{anchor} in {resolved.relative_to(REPO)})")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_the_link_check_sees_links_and_reports_a_missing_file(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("[a](docs/cli.md#exit-codes) ![b](images/x.png) [c](https://example.org)\n"
                    "```sh\n[not a link](nowhere)\n```\n", encoding="utf-8")
    assert _links(page) == ["docs/cli.md#exit-codes", "images/x.png", "https://example.org"]
    assert "exit-codes" in _anchors(REPO / "docs" / "cli.md")


def test_the_generated_tables_equal_what_their_json_renders_to() -> None:
    docs_results = _docs_results()
    pages = docs_results.generated_pages()
    assert {page.name for page in pages} >= {"results.md", "security.md"}
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert docs_results.render_page(text) == text, (
            f"{page.relative_to(REPO)} differs from its JSON: run python scripts/docs_results.py render")


def test_every_result_records_where_it_came_from() -> None:
    docs_results = _docs_results()
    used = {match["name"] for page in docs_results.generated_pages()
            for match in docs_results.BLOCK.finditer(page.read_text(encoding="utf-8"))}
    for name in sorted(used):
        record = json.loads((REPO / "docs" / "results" / f"{name}.json").read_text(encoding="utf-8"))
        for field in ("command", "date", "commit", "weights_id", "machine", "source"):
            assert record.get(field), f"docs/results/{name}.json: no {field}"
        assert ("result" in record) == (record["source"] == "ran"), name
        assert "result" in record or "printed" in record, name


def test_a_changed_figure_is_caught(tmp_path: Path) -> None:
    docs_results = _docs_results()
    record = {"command": "amif attack-eval", "date": "2026-01-01T00:00:00Z", "commit": "0" * 40,
              "weights_id": "1" * 64, "machine": "test", "source": "transcribed", "printed": "| a | 1.00 |"}
    (tmp_path / "x.json").write_text(json.dumps(record), encoding="utf-8")
    page = "<!-- begin x:attacks -->\n| a | 1.00 |\n<!-- end x:attacks -->\n"
    assert docs_results.render_page(page, tmp_path) == page
    assert docs_results.render_page(page.replace("1.00", "1.01"), tmp_path) == page


def test_d5_the_key_examples_show_the_format_the_tool_writes() -> None:
    """Issue 28's D5: every `amif info` example (text or JSON) in the pages names the key format version that
    write_key writes today; they showed formats 1 and 4."""
    from amif_core.key.file import FORMAT_VERSION

    shown = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        shown += [(page.name, int(v)) for v in re.findall(r"\(format version (\d+), written by AMIF", text)]
        shown += [(page.name, int(v)) for v in re.findall(r'"format_version": (\d+)', text)]
    assert {name for name, _ in shown} >= {"cli.md", "key-format.md"}, shown
    assert all(version == FORMAT_VERSION for _, version in shown), shown
