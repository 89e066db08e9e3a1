"""The ``amif`` entry point: the parser, error handling and exit codes (``amif`` or ``python -m amif_core.cli``).

Subcommands live in :mod:`~amif_core.cli.user` and :mod:`~amif_core.cli.owner`
and register themselves with :func:`amif_core.cli.common.command`; only the
options of the subcommand being run are built. A core error that names a
setting gets this front end's advice for it (:data:`CLI_HINTS`).

The exit codes and their meanings are :data:`~amif_core.cli.common.EXIT_CODES`
(``amif --help`` lists them). A failed or interrupted run leaves no partial
output files.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, Sequence

from amif_core.cli import batch, owner, user  # noqa: F401  (registers the subcommands)
from amif_core.cli.common import (
    COMMANDS,
    EXIT_BROKEN_PIPE,
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_KEY_MISMATCH,
    EXIT_OK,
    EXIT_PASSPHRASE,
    EXIT_TERMINATED,
    EXIT_USAGE,
)
from amif_core.constants import VERSION
from amif_core.errors import AMIFError, InputError, KeyFormatError, KeyMismatchError, WrongPassphraseError

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_CODES", "EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_KEY_MISMATCH", "EXIT_OK", "EXIT_PASSPHRASE", "EXIT_TERMINATED",
           "EXIT_USAGE", "build_parser", "main"]


CLI_HINTS = {
    "axis": "Choose another --axis.",
    "device": "Use --device cpu or auto.",
    "overwrite": "Use --force to replace it.",
    "passphrase": "Give it with --passphrase-prompt, --passphrase-env NAME or --passphrase-file PATH.",
    "identifier": "Change --identifier.",
    "colour": "Change or drop --colour.",
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand.

    ``selected``: the subcommand being run; only its options are built (so a
    light command never imports what a heavy one needs for its defaults).
    None builds every subcommand's options.
    """
    parser = argparse.ArgumentParser(
        prog="amif", description="AMIF: fuse a registered MRI with a CT/PET/SPECT into one image that carries a "
                                 "visible copyright identifier; the identifier-free fusion needs the key.",
        epilog="exit codes:\n" + "\n".join(f"  {code:3d}  {meaning}" for code, meaning in EXIT_CODES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"amif {VERSION}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        sub = subparsers.add_parser(cmd.name, help=cmd.summary, description=cmd.summary,
                                    epilog=f"example:\n  {cmd.example}", allow_abbrev=False,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        if selected is not None and cmd.name != selected:
            continue
        for add in cmd.arguments:
            add(sub)
        sub.add_argument("-q", "--quiet", action="store_true", help="print only errors")
        sub.set_defaults(run=cmd.run)
    return parser


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so clean-up runs as for Ctrl-C."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    print(f"amif {args.command}: error: {message}", file=sys.stderr)
    return code


def _discard_stdout() -> None:
    """Point the standard output at the null device, so the interpreter's final flush into a closed pipe is silent."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a test's capture, or already closed
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, descriptor)
    os.close(null)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``amif`` command line on ``argv`` (default: sys.argv[1:]); returns the exit code.

    When the reader of the output goes away (``| head``), it stops without a
    message and returns :data:`EXIT_BROKEN_PIPE`, as a Unix tool ends on
    SIGPIPE; output files are complete or absent, as after any other stop.
    """
    try:
        return _run(argv)
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE


def _run(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(next((word for word in argv if word in COMMANDS), None))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, --version or a usage error (argparse printed it)
        return exit_request.code if isinstance(exit_request.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    with _sigterm_raises():
        try:
            return args.run(args)
        except WrongPassphraseError as error:
            return _fail(args, error.hint(CLI_HINTS), EXIT_PASSPHRASE)
        except KeyMismatchError as error:
            return _fail(args, error.hint(CLI_HINTS), EXIT_KEY_MISMATCH)
        except (InputError, KeyFormatError) as error:
            return _fail(args, error.hint(CLI_HINTS), EXIT_USAGE)
        except FileExistsError as error:
            return _fail(args, f"{error} {CLI_HINTS['overwrite']}", EXIT_USAGE)
        except AMIFError as error:
            return _fail(args, error.hint(CLI_HINTS), EXIT_FAILURE)
        except BrokenPipeError:
            raise  # the output's reader went away: main() ends quietly
        except OSError as error:
            return _fail(args, f"{error.strerror or error} ({error.filename})", EXIT_FAILURE)
        except KeyboardInterrupt:
            return _fail(args, "interrupted; no output files were written.", EXIT_INTERRUPTED)
        except Terminated:
            return _fail(args, "terminated; no output files were written.", EXIT_TERMINATED)


if __name__ == "__main__":
    sys.exit(main())
