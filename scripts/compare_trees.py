#!/usr/bin/env python3
"""Check that two checkouts of AMIF give byte-identical results on the CPU (a refactoring's proof).

Runs, in each checkout (``python -m amif_core.cli`` with that checkout first
on the path): ``amif demo``; ``amif fuse`` and ``amif unlock`` of the bundled
pair with a passphrase; and ``amif evaluate`` on the Harvard validation
patients when ``--data`` is given (``--limit`` slices per pair). Then compares
the protected and unlocked volumes byte for byte, the keys' arrays and
headers (all but the fields that record time or version), and the printed
evaluation. Prints one line per comparison and exits 1 if any differs.

Usage::

    git worktree add /tmp/before <commit>
    python scripts/compare_trees.py /tmp/before . [--data ../shared/data/harvard --limit 5]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

VOLATILE = {"created_utc", "amif_version", "encryption"}
PASSPHRASE = "compare trees"


def _amif(tree: Path, work: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "AMIF_PASSPHRASE": PASSPHRASE}
    done = subprocess.run([sys.executable, "-m", "amif_core.cli", *args, "-q"], cwd=work, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"amif {args[0]} failed in {tree}: {done.stderr.strip()}")
    return done.stdout


def _key_contents(tree: Path, path: Path) -> str:
    """The key's header (volatile fields dropped) and the SHA-256 of each payload array, as JSON text."""
    code = (
        "import hashlib, json, sys, dataclasses\n"
        "from amif_core.key.file import read_key, read_key_header\n"
        "header = {k: v for k, v in read_key_header(sys.argv[1]).items() if k not in sys.argv[3].split(',')}\n"
        "key = read_key(sys.argv[1], sys.argv[2])\n"
        "arrays = {f.name: hashlib.sha256(getattr(key, f.name).tobytes()).hexdigest()\n"
        "          for f in dataclasses.fields(key) if hasattr(getattr(key, f.name), 'tobytes')}\n"
        "print(json.dumps({'header': header, 'arrays': arrays}, sort_keys=True))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    return subprocess.run([sys.executable, "-c", code, str(path), PASSPHRASE, ",".join(VOLATILE)], env=env,
                          capture_output=True, text=True, check=True).stdout


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(tree: Path, out: Path, data: Path | None, limit: int) -> dict[str, str]:
    out.mkdir(parents=True)
    demo_data = tree.resolve() / "amif_core" / "data" / "demo"
    _amif(tree, out, "demo", "--out", "demo", "--device", "cpu")
    (out / "pass.txt").write_text(PASSPHRASE + "\n")
    _amif(tree, out, "fuse", str(demo_data / "mri.nrrd"), str(demo_data / "pet.nrrd"), "-o", "p.nrrd", "--key",
          "p.amifkey", "--passphrase-file", "pass.txt", "--device", "cpu")
    _amif(tree, out, "unlock", "p.nrrd", "--key", "p.amifkey", "-o", "u.nrrd", "--passphrase-file", "pass.txt",
          "--device", "cpu")
    results = {
        "demo protected.nrrd": _sha(out / "demo" / "protected.nrrd"),
        "demo unlocked.nrrd": _sha(out / "demo" / "unlocked.nrrd"),
        "demo montage.png": _sha(out / "demo" / "montage.png"),
        "demo key (header and arrays)": _key_contents(tree, out / "demo" / "protected.amifkey"),
        "fuse p.nrrd": _sha(out / "p.nrrd"),
        "fuse key (header and arrays)": _key_contents(tree, out / "p.amifkey"),
        "unlock u.nrrd": _sha(out / "u.nrrd"),
    }
    if data is not None:
        results[f"evaluate --split val --limit {limit}"] = _amif(
            tree, out, "evaluate", "--data", str(data.resolve()), "--split", "val", "--limit", str(limit),
            "--device", "cpu")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="the checkout before the change")
    parser.add_argument("after", type=Path, help="the checkout after the change")
    parser.add_argument("--data", type=Path, help="the Harvard pairs folder, to compare `amif evaluate` too")
    parser.add_argument("--limit", type=int, default=5, help="validation slices per pair for evaluate (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        before = _run(args.before, Path(work) / "before", args.data, args.limit)
        after = _run(args.after, Path(work) / "after", args.data, args.limit)
    differ = [name for name in before if before[name] != after[name]]
    for name in before:
        print(f"{'DIFFERS' if name in differ else 'same   '}  {name}")
    print(json.dumps({"compared": len(before), "differ": len(differ)}))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
