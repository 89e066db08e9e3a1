"""What every ``amif`` subcommand shares: exit codes, the command registry, common options and output helpers.

Subcommands are registered with :func:`command`; adding one is one decorated
function plus the option helpers it needs, e.g.::

    @command("bench", "Time protect and unlock.", example="amif bench --size 256",
             arguments=(model_options, _bench_arguments))
    def bench(args: argparse.Namespace) -> int:
        ...
        return EXIT_OK

Nothing here imports torch: a subcommand imports what it runs inside its
function, so ``amif info`` starts without the model.
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from tqdm import tqdm

from amif_core.constants import DEFAULT_IDENTIFIER
from amif_core.errors import InputError
from amif_core.runtime.callbacks import Progress
from amif_core.study import Models, read_passphrase_file, run_on_device

if TYPE_CHECKING:
    from amif_core.inference.model import AMIFModel
    from amif_core.tracing.secret import OwnerSecret

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_KEY_MISMATCH = 3
EXIT_PASSPHRASE = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a Unix tool whose reader closed the pipe
EXIT_TERMINATED = 143
EXIT_CODES = {  # every code amif returns, and what it means: the one table (--help's epilog is made from it)
    EXIT_OK: "success",
    EXIT_FAILURE: "other failure",
    EXIT_USAGE: "bad usage or input (including a damaged key file)",
    EXIT_KEY_MISMATCH: "the key does not fit the volume",
    EXIT_PASSPHRASE: "wrong or missing passphrase",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_BROKEN_PIPE: "the reader of its output went away (`amif info --json KEY | head`: silently, as a Unix tool "
                      "ends on SIGPIPE)",
    EXIT_TERMINATED: "terminated (SIGTERM)",
}

Arguments = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line summary, --help example, argument helpers and runner."""

    name: str
    summary: str
    example: str
    arguments: Sequence[Arguments]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def command(name: str, summary: str, example: str, arguments: Sequence[Arguments] = ()
            ) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register the decorated ``run(args) -> exit code`` as subcommand ``name``.

    ``example``: shown under "example:" in the subcommand's --help.
    ``arguments``: functions that add options to the subcommand's parser
    (--quiet is added to every subcommand).
    """

    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = Command(name, summary, example, tuple(arguments), run)
        return run

    return register


def model_options(parser: argparse.ArgumentParser) -> None:
    """--device and --weights, for subcommands that run the model."""
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA if present, else CPU; the default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--weights", type=Path, metavar="PATH",
                        help="AMIF weights file (default: the weights shipped with amif-core)")


def force_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")


def identifier_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--identifier", default=DEFAULT_IDENTIFIER, metavar="TEXT",
                        help=f"copyright identifier burnt into the image (default: {DEFAULT_IDENTIFIER!r})")


def passphrase_options(parser: argparse.ArgumentParser) -> None:
    """Where a passphrase comes from; never a plain argument (it would show in the shell history)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--passphrase-prompt", action="store_true", help="ask for the passphrase (not echoed)")
    group.add_argument("--passphrase-env", metavar="NAME", help="read the passphrase from environment variable NAME")
    group.add_argument("--passphrase-file", type=Path, metavar="PATH",
                       help="read the passphrase from the first line of PATH")


def owner_secret_option(parser: argparse.ArgumentParser) -> None:
    """--owner-secret: the file that chooses the fusion's trace mark."""
    parser.add_argument("--owner-secret", type=Path, metavar="PATH",
                        help="owner secret file (made by `amif owner init`) that chooses the invisible trace mark "
                             "of the fusion (default: $AMIF_OWNER_SECRET, else the public demo secret)")


def owner_secret(args: argparse.Namespace) -> "OwnerSecret":
    """The secret of --owner-secret or $AMIF_OWNER_SECRET, else the demo secret, which is announced on stderr."""
    from amif_core.tracing.secret import owner_secret as resolve

    return resolve(notice(args), args.owner_secret)


def load(args: argparse.Namespace) -> AMIFModel:
    """Load the model named by --weights (or the shipped one) onto --device."""
    return Models(args.weights)(args.device)


def run_planned(args: argparse.Namespace, voxels: int, slice_shape: tuple[int, int],
                run: Callable[[AMIFModel, int], object]) -> object:
    """Run ``run(model, batch_size)`` under the core runner's memory plan for --device (:func:`run_on_device`)."""
    result, _ = run_on_device(Models(args.weights), args.device, voxels, slice_shape, run, notice(args))
    return result


def passphrase_from(args: argparse.Namespace, confirm: bool) -> str | None:
    """The passphrase from --passphrase-prompt/-env/-file, or None when none was asked for."""
    if args.passphrase_env:
        value = os.environ.get(args.passphrase_env)
        if not value:
            raise InputError("The environment variable {name} is not set or empty.", name=args.passphrase_env)
        return value
    if args.passphrase_file:
        return read_passphrase_file(args.passphrase_file)
    if args.passphrase_prompt:
        return prompt_passphrase(confirm)
    return None


def prompt_passphrase(confirm: bool) -> str:
    """Ask for a passphrase on the terminal; with ``confirm``, twice."""
    value = getpass.getpass("Passphrase: ")
    if not value:
        raise InputError("The passphrase is empty.")
    if confirm and getpass.getpass("Repeat the passphrase: ") != value:
        raise InputError("The two passphrases differ; nothing was written.")
    return value


@contextmanager
def progress_bar(description: str, quiet: bool) -> Iterator[Progress]:
    """A tqdm bar on stderr, driven by a ``progress(done, total)`` callback (slices).

    The bar closes as its last slice is done, so the time it shows is its own
    work's, not that of whatever the caller does next inside the block.
    """
    bars: list[tqdm] = []  # one per pass, made at its first call, when the total is known (a retry is a pass)

    def update(done: int, total: int) -> None:
        if not bars or (bars[-1].n >= bars[-1].total and done < total):
            bars.append(tqdm(desc=description, total=total, unit="slice", disable=quiet, file=sys.stderr,
                             dynamic_ncols=True))
        bar = bars[-1]
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()


def say(args: argparse.Namespace, message: str) -> None:
    """Print a result line on stdout unless --quiet."""
    if not args.quiet:
        print(message)


def notice(args: argparse.Namespace) -> Callable[[str], None]:
    """A callback printing notices on stderr (above any progress bar) unless --quiet."""

    def show(message: str) -> None:
        if not args.quiet:
            tqdm.write(message, file=sys.stderr)

    return show


def _file_size(path: str | Path) -> str:
    size = os.path.getsize(path)
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"
