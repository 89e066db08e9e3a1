"""The README's set-up commands: exactly two, and CI runs the test one verbatim."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Set up\n", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S)]


def test_the_readme_has_exactly_two_setup_commands_one_demo_one_tests() -> None:
    commands = _setup_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands), commands
    demo, tests = commands
    assert demo.startswith("python3 -m venv .venv") and demo.endswith("amif demo")
    assert tests.startswith("python3 -m venv .venv") and "pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert _setup_commands()[1] in ci_lines
