"""``python -m amif_core.cli.worker``: protect or unlock files for a front end that runs AMIF in a process of its own.

The 3D Slicer module starts this worker (through ``slicer.util.launchConsoleProcess``)
so that torch, its threads and CUDA live in this process and never in Slicer's;
the front end writes the inputs into a private temporary folder and reads the
outputs back. The worker speaks on stdout, one message per line, each
``AMIF:`` followed by a JSON object with one member:

* ``{"progress": [done, total]}`` after each slice;
* ``{"notice": text}`` for a remark (resampling, a memory fallback);
* ``{"result": {...}}`` once the outputs are written (see each command);
* ``{"error": {"type", "template", "params", "advice", "setting", "value"}}`` for an
  :class:`~amif_core.errors.AMIFError`, which the front end raises again with
  :func:`error_from_message` (exit code 2);
* ``{"ready": true}`` from ``serve``, once it has imported what a run needs.

``serve --jobs FOLDER`` is a worker started ahead of time: it imports torch
and the pipeline (the seconds a run would otherwise start with), says it is
ready, then waits for ``FOLDER/job.json`` (the command line of one
``protect``, ``unlock`` or ``check``, as a JSON list), runs it and exits. It
exits without a result when the folder goes, its parent process ends, or
``--idle-seconds`` pass.

Any other line (a library's warning, a traceback) is for the log. The key the
worker writes is not encrypted: the front end encrypts it when it moves it to
its place, so no passphrase reaches the worker's command line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from amif_core import errors

PREFIX = "AMIF:"
EXIT_OK, EXIT_BUG, EXIT_AMIF_ERROR = 0, 1, 2
JOB_FILE = "job.json"
JOB_POLL_SECONDS = 0.02


def say(**message: Any) -> None:
    """Print one protocol message (a JSON object after :data:`PREFIX`) and flush, so the front end sees it now."""
    print(PREFIX + json.dumps(message, default=str), flush=True)


def parse_message(line: str) -> dict[str, Any] | None:
    """The message of a protocol line, or None for any other line."""
    if not line.startswith(PREFIX):
        return None
    try:
        message = json.loads(line[len(PREFIX):])
    except json.JSONDecodeError:
        return None
    return message if isinstance(message, dict) else None


def error_message(error: errors.AMIFError) -> dict[str, Any]:
    """The protocol form of an AMIF error: its class name, template, params, advice, setting and value."""
    return {"type": type(error).__name__, "template": error.template, "params": error.params, "advice": error.advice,
            "setting": error.setting, "value": error.value}


def error_from_message(message: dict[str, Any]) -> errors.AMIFError:
    """The AMIF error a worker reported (its class from :mod:`amif_core.errors`, else :class:`AMIFError`), with the
    template and params that a front end translates."""
    kind = getattr(errors, str(message.get("type")), errors.AMIFError)
    if not (isinstance(kind, type) and issubclass(kind, errors.AMIFError)):
        kind = errors.AMIFError
    params = message.get("params") or {}
    try:
        return kind(message["template"], setting=message.get("setting"), value=message.get("value"),
                    advice=message.get("advice"), **params)
    except (KeyError, IndexError, ValueError, TypeError):  # a param that lost its type in JSON
        return kind("{message}", message=str(message.get("template")))


def _progress(done: int, total: int) -> None:
    say(progress=[done, total])


def _notice(text: str) -> None:
    say(notice=text)


def _provenance(model, weights: Path, ran_on: str) -> dict[str, Any]:
    return {"device": ran_on, "modelId": model.model_id, "weights": str(weights),
            "modelVersion": f"{weights.stem} (weights format {model.metadata.get('version', '?')})"}


def protect(args: argparse.Namespace) -> dict[str, Any]:
    """Protect ``--mri`` with ``--other``: write ``--out`` (the protected volume) and ``--key`` (not encrypted)."""
    import SimpleITK as sitk

    import amif_core
    from amif_core.inference.pipeline import protect_volume
    from amif_core.inference.weights import DEFAULT_WEIGHTS
    from amif_core.io.geometry import slice_axis, slice_size
    from amif_core.key.file import write_key
    from amif_core.runtime.runner import plan_and_run
    from amif_core.tracing.secret import owner_secret

    mri, other = sitk.ReadImage(str(args.mri)), sitk.ReadImage(str(args.other))
    weights = Path(args.weights or DEFAULT_WEIGHTS)
    models: dict[str, Any] = {}

    owner = owner_secret(_notice, args.owner_secret)

    def run(device: str, batch: int):
        model = models.get(device) or models.setdefault(device, amif_core.load_model(device, weights=weights))
        return protect_volume(model, mri, other, args.identifier, colour_table=args.colour_table,
                              progress=_progress, notice=_notice, batch_size=batch, owner=owner)

    (protected, key), ran_on = plan_and_run(mri.GetNumberOfPixels(), slice_size(mri, slice_axis(mri)), args.device,
                                            run, _notice)
    sitk.WriteImage(protected, str(args.out))
    write_key(args.key, key)
    return _provenance(models[ran_on], weights, ran_on)


def unlock(args: argparse.Namespace) -> dict[str, Any]:
    """Unlock ``--protected`` with ``--key`` (not encrypted) into ``--out``; the weights are those that made the
    key when they ship (as ``amif unlock`` picks them), unless ``--weights`` names a file."""
    import SimpleITK as sitk

    import amif_core
    from amif_core.inference.pipeline import unlock_volume
    from amif_core.inference.weights import DEFAULT_WEIGHTS, weights_for_key
    from amif_core.io.geometry import slice_size
    from amif_core.key.file import read_key
    from amif_core.runtime.runner import plan_and_run

    key = read_key(args.key)
    protected = sitk.ReadImage(str(args.protected))
    weights = Path(weights_for_key(key.model_id, args.weights) or DEFAULT_WEIGHTS)
    models: dict[str, Any] = {}

    def run(device: str, batch: int):
        model = models.get(device) or models.setdefault(device, amif_core.load_model(device, weights=weights))
        return unlock_volume(model, protected, key, progress=_progress, cancel=None, batch_size=batch)

    unlocked, ran_on = plan_and_run(protected.GetNumberOfPixels(), slice_size(protected, key.axis), args.device, run,
                                    _notice)
    sitk.WriteImage(unlocked, str(args.out))
    return {**_provenance(models[ran_on], weights, ran_on), "identifier": key.identifier}


def check(args: argparse.Namespace) -> dict[str, Any]:
    """Import torch, run a small tensor operation on ``--device`` and list the devices this computer offers."""
    import torch

    from amif_core.runtime import runner

    device = runner.resolve(args.device)
    value = (torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)).sum().item()
    if value != 8.0:  # a broken GPU build: the front end quotes this line
        raise RuntimeError(f"PyTorch gave a wrong result on {device} ({value} instead of 8); choose the CPU.")
    return {"torch": torch.__version__, "device": device,
            "devices": [[option.label, option.device_id] for option in runner.available_devices()]}


def serve(args: argparse.Namespace) -> dict[str, Any] | None:
    """Import what a run needs, say ``ready``, wait for ``--jobs``/job.json and run the command it holds; None when
    no job came (the folder went, the parent process ended, or ``--idle-seconds`` passed)."""
    import SimpleITK  # noqa: F401  (imported now: the job starts without these seconds)
    import torch  # noqa: F401

    import amif_core.inference.pipeline  # noqa: F401
    import amif_core.key.file  # noqa: F401

    say(ready=True)
    parent, idleUntil = os.getppid(), time.monotonic() + args.idle_seconds
    job = args.jobs / JOB_FILE
    while not job.is_file():
        if not args.jobs.is_dir() or os.getppid() != parent or time.monotonic() > idleUntil:
            return None
        time.sleep(JOB_POLL_SECONDS)
    jobArgs = parser().parse_args(json.loads(job.read_text(encoding="utf-8")))
    if jobArgs.command == "serve":
        raise ValueError("a served job cannot be another serve")
    return COMMANDS[jobArgs.command](jobArgs)


COMMANDS = {"protect": protect, "unlock": unlock, "check": check, "serve": serve}


def parser() -> argparse.ArgumentParser:
    """The worker's command line: ``protect``, ``unlock``, ``check`` and ``serve``."""
    root = argparse.ArgumentParser(prog="python -m amif_core.cli.worker", description=__doc__.split("\n\n")[0])
    commands = root.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve")
    serving.add_argument("--jobs", type=Path, required=True)
    serving.add_argument("--idle-seconds", type=float, default=1800.0)
    for name in ("protect", "unlock", "check"):
        sub = commands.add_parser(name)
        sub.add_argument("--device", default="auto")
        if name == "check":
            continue
        sub.add_argument("--weights", type=Path)
        sub.add_argument("--key", type=Path, required=True)
        sub.add_argument("--out", type=Path, required=True)
        if name == "protect":
            sub.add_argument("--mri", type=Path, required=True)
            sub.add_argument("--other", type=Path, required=True)
            sub.add_argument("--identifier", required=True)
            sub.add_argument("--colour-table")
            sub.add_argument("--owner-secret", type=Path)
        else:
            sub.add_argument("--protected", type=Path, required=True)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its result or its AMIF error goes to stdout as a protocol message."""
    args = parser().parse_args(argv)
    try:
        result = COMMANDS[args.command](args)
    except errors.AMIFError as error:
        say(error=error_message(error))
        return EXIT_AMIF_ERROR
    if result is not None:
        say(result=result)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
