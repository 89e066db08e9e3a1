#!/usr/bin/env python3
"""Keep the figures in docs/ equal to what their commands printed.

Two steps, one file per result under ``docs/results/``:

``record NAME -- COMMAND ...``
    runs COMMAND (an ``amif`` subcommand or a benchmark that takes
    ``--json PATH``) with ``--json`` pointed at a temporary file, and writes
    ``docs/results/NAME.json``: the command line, the date, the git commit,
    the weights' model id, the machine, and the command's own JSON under
    ``result``. Figures that a command printed before it could write JSON are
    kept as ``{"source": "transcribed from <doc> on <date>", "printed": <the
    text>}`` instead, written by hand and saying so.

``render [--check]``
    rewrites every generated block of ``docs/*.md``, the lines between
    ``<!-- begin NAME:SECTION -->`` and ``<!-- end NAME:SECTION -->``, from
    ``docs/results/NAME.json`` with the SECTION renderer below; ``--check``
    changes nothing and exits 1 when a page differs from what it renders to.

Usage::

    python scripts/docs_results.py record evaluate-val -- amif evaluate --data ../shared/data/harvard --split val
    python scripts/docs_results.py render
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
RESULTS = DOCS / "results"
BLOCK = re.compile(r"(<!-- begin (?P<name>[\w.-]+):(?P<section>[\w-]+) -->\n)(?P<body>.*?)"
                   r"(<!-- end (?P=name):(?P=section) -->)", re.DOTALL)


# --- record ---------------------------------------------------------------------------------------------------------

def machine() -> str:
    """The CPU model, its logical cores, the OS and Python; and the load when the command started."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return (f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; load average {load} at the start")


CODE = ("amif_core", "benchmarks", "scripts", "pyproject.toml")  # what the figures depend on; docs/ is not


def commit() -> str:
    """HEAD's hash, with "-dirty" when the code differs from it."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", *CODE], cwd=REPO).returncode != 0
    return head.stdout.strip() + ("-dirty" if dirty else "")


def weights_id(command: list[str]) -> str:
    """The model id (SHA-256 of the weights file) that ``command`` runs: its --weights, else the shipped default."""
    from amif_core.inference.weights import DEFAULT_WEIGHTS, model_id_of

    path = Path(command[command.index("--weights") + 1]) if "--weights" in command else DEFAULT_WEIGHTS
    return model_id_of(path)


def record(name: str, command: list[str], omit: tuple[str, ...] = ()) -> Path:
    """Run ``command --json TEMP`` and write docs/results/NAME.json around its JSON; returns that path.

    ``omit``: top-level keys of the command's JSON left out (bulky per-slice data no table shows); the
    record names them under ``omitted``.
    """
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    facts = {"command": shlex.join(command), "date": started, "commit": commit(), "weights_id": weights_id(command),
             "machine": machine(), "source": "ran"}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        subprocess.run([*command, "--json", str(out)], cwd=REPO, check=True)
        result = json.loads(out.read_text(encoding="utf-8"))
    if omit:
        facts["omitted"] = [key for key in omit if result.pop(key, None) is not None]
    facts["result"] = result
    from amif_core.atomic import Output, write_atomically

    path = RESULTS / f"{name}.json"
    write_atomically([Output(path, lambda temp: temp.write_text(json.dumps(facts, indent=2) + "\n",
                                                                encoding="utf-8"))], force=True)
    return path


# --- render ---------------------------------------------------------------------------------------------------------

def provenance(record: dict) -> str:
    """One line: where the figures come from."""
    how = ("printed by" if record["source"] == "ran"
           else f"{record['source']}; printed by")
    return (f"*Figures {how} `{record['command']}` on {record['date'][:10]}, commit {record['commit'][:12]}, "
            f"weights {record['weights_id'][:12]}; machine: {record['machine']}.*")


PROTECTION_HEADING = "\n### Protection criteria"


def evaluate_fusion(record: dict) -> str:
    """``amif evaluate``'s fusion tables, as the command prints them."""
    from amif_core.evaluation.fusion import format_report

    return format_report(record["result"]).split(PROTECTION_HEADING)[0].strip()


def evaluate_protection(record: dict) -> str:
    """``amif evaluate``'s protection criteria (grey, and colour when measured), as the command prints them."""
    from amif_core.evaluation.fusion import format_report

    return "\n".join(("### Protection criteria" + part).strip() + "\n"
                     for part in format_report(record["result"]).split(PROTECTION_HEADING)[1:]).strip()


FIDELITY_BARS = {"MI": 0.85, "VIF": 0.95, "SSIM": 0.98}  # of the pixel-wise maximum's, with >= 4/8 metrics beaten


def fusion_bar(record: dict) -> str:
    """Per pair: the metrics the unlocked fusion beats, its fidelity against the pixel-wise maximum, the verdict."""
    from amif_core.evaluation.fusion import TABLE_METRICS

    lines = ["| pair | beats pixel-max | MI / VIF / SSIM × max | beats CDDFuse (published) | bar |", "|---|---|---|---|---|"]
    for pair, rows in record["result"]["metrics"].items():
        ours, top, cdd = rows["unlocked"], rows["pixel-max"], rows["CDDFuse (published)"]
        wins = sum(ours[m] > top[m] for m in TABLE_METRICS)
        ratios = {m: ours[m] / top[m] for m in FIDELITY_BARS}
        met = wins >= 4 and all(ratios[m] >= bar for m, bar in FIDELITY_BARS.items())
        lines.append(f"| {pair} | {wins}/8 | {' / '.join(f'{ratios[m]:.3f}' for m in FIDELITY_BARS)} | "
                     f"{sum(ours[m] > cdd[m] for m in TABLE_METRICS)}/8 | {'met' if met else 'not met'} |")
    return "\n".join(lines)


def lesion_table(record: dict) -> str:
    """``benchmarks/lesion_conspicuity.py --json``: per uptake pattern and lesion kind, how many cases meet the
    colour and structure bars against the overlay (the benchmark's own verdicts), then every case that misses
    one, with its figures."""
    result = record["result"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in result["cases"]:
        groups.setdefault((row["pattern"], row["kind"]), []).append(row)
    lines = ["| pattern | lesions | colour bar | structure bar | both bars | least ΔE margin | least SSIM margin |",
             "|---|---|---|---|---|---|---|"]
    for (pattern, kind), rows in groups.items():
        colour, structure = sum(r["colour ok"] for r in rows), sum(r["structure ok"] for r in rows)
        both = sum(r["colour ok"] and r["structure ok"] for r in rows)
        lines.append(f"| {pattern} | {kind} | {colour}/{len(rows)} | {structure}/{len(rows)} | {both}/{len(rows)} | "
                     f"{min(r['dE fusion'] - r['dE overlay'] for r in rows):+.2f} | "
                     f"{min(r['SSIM fusion'] - r['SSIM overlay'] for r in rows):+.3f} |")
    missed = [r for r in result["cases"] if not (r["colour ok"] and r["structure ok"])]
    lines += ["", f"{result['passed']}/{len(result['cases'])} cases meet both bars (table `{result['table']}`, the "
                  f"{result['fusion']} fusion)."]
    if missed:
        lines += ["", "| case missing a bar | ΔE fusion | ΔE overlay | SSIM fusion | SSIM overlay |", "|---|---|---|---|---|"]
        lines += [f"| {r['pattern']}, {r['kind']}, {r['case']} | {r['dE fusion']:.2f} | {r['dE overlay']:.2f} | "
                  f"{r['SSIM fusion']:.3f} | {r['SSIM overlay']:.3f} |" for r in missed]
    return "\n".join(lines)


def attack_tables(record: dict) -> str:
    """``amif attack-eval``'s tables, as the command prints them (or as they were transcribed), each heading one
    level down, below the page's own section."""
    if "printed" in record:
        text = record["printed"]
    else:
        from amif_core.evaluation.attacks.report import format_report

        text = format_report(record["result"])
    return re.sub(r"^#", "##", text.strip(), flags=re.MULTILINE)


def distill_table(record: dict) -> str:
    """``amif attack-eval --distill``'s table, as the command prints it, in a code block."""
    from amif_core.evaluation.attacks.distill_eval import format_distill

    return "```text\n" + format_distill(record["result"]).strip() + "\n```"


BENCH_ROWS = (  # (figure, target, unit, the keys it is printed from)
    ("`protect` cost per 256 x 256 slice", "<= 10 GFLOPs", "{protect_gflops:.2f} GFLOPs (unlock {unlock_gflops:.2f})"),
    ("median `protect` time per slice", "<= 0.10 s", "{protect_s_per_slice:.3f} s"),
    ("median `unlock` time per slice", "<= 0.1 s", "{unlock_s_per_slice:.3f} s"),
    ("median colour `protect` per slice (`pet` table, RGB out)", "<= 0.10 s", "{protect_rgb_s_per_slice:.3f} s"),
    ("median colour `unlock` per slice", "", "{unlock_rgb_s_per_slice:.3f} s"),
    ("whole-volume `protect`, in memory", "< 30 s for 256 x 256 x 180", "{volume_protect_s:.1f} s"),
    ("whole-volume `unlock`, in memory", "", "{volume_unlock_s:.1f} s"),
)


def bench_table(record: dict) -> str:
    """``amif bench --json``'s figures against their targets."""
    figures = record["result"]
    threads = figures["threads"]
    lines = [f"Device {figures['device']}, {threads} thread{'s' if threads != 1 else ''}.", "",
             "| figure | target | measured |", "|---|---|---|"]
    lines += [f"| {name} | {target} | {cell.format(**figures)} |" for name, target, cell in BENCH_ROWS]
    return "\n".join(lines)


SECTIONS: dict[str, Callable[[dict], str]] = {
    "provenance": provenance,
    "evaluate-fusion": evaluate_fusion,
    "evaluate-protection": evaluate_protection,
    "fusion-bar": fusion_bar,
    "lesion": lesion_table,
    "attacks": attack_tables,
    "bench": bench_table,
    "distill": distill_table,
}


def render_page(text: str, results: Path = RESULTS) -> str:
    """``text`` with every generated block rendered again from its JSON file."""
    def block(match: re.Match) -> str:
        record = json.loads((results / f"{match['name']}.json").read_text(encoding="utf-8"))
        return f"{match.group(1)}{SECTIONS[match['section']](record)}\n{match.group(5)}"

    return BLOCK.sub(block, text)


def generated_pages(docs: Path = DOCS) -> list[Path]:
    """The pages of ``docs`` that hold at least one generated block."""
    return [page for page in sorted(docs.glob("*.md")) if BLOCK.search(page.read_text(encoding="utf-8"))]


def render(check: bool) -> int:
    stale = []
    for page in generated_pages():
        text = page.read_text(encoding="utf-8")
        rendered = render_page(text)
        if rendered != text:
            stale.append(page)
            if not check:
                page.write_text(rendered, encoding="utf-8")
    for page in stale:
        print(f"{page.relative_to(REPO)}: {'differs from its JSON' if check else 'rendered'}")
    return 1 if check and stale else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    rec = sub.add_parser("record", help="run a command and keep its JSON with where it came from")
    rec.add_argument("name", help="the result's name: docs/results/NAME.json")
    rec.add_argument("--omit", action="append", default=[], metavar="KEY",
                     help="leave this top-level key of the command's JSON out (e.g. per_slice); repeatable")
    rec.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command (it must take --json PATH)")
    ren = sub.add_parser("render", help="render the generated blocks of docs/*.md from docs/results/*.json")
    ren.add_argument("--check", action="store_true", help="change nothing; exit 1 when a page is stale")
    args = parser.parse_args(argv)
    if args.step == "record":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            parser.error("record needs a command after --")
        print(record(args.name, command, tuple(args.omit)))
        return 0
    return render(args.check)


if __name__ == "__main__":
    sys.exit(main())
