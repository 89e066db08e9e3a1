"""The ``amif`` command line (console script ``amif``, or ``python -m amif_core.cli``).

Subcommands are registered with :func:`command`; adding one is one decorated
function plus the option helpers it needs, e.g.::

    @command("bench", "Time protect and unlock.", example="amif bench --size 256 256 180",
             arguments=(model_options, _bench_arguments))
    def bench(args: argparse.Namespace) -> int:
        ...
        return EXIT_OK

Exit codes: 0 success; 1 other failure; 2 bad usage or input (including a
damaged key file); 3 the key does not fit the volume; 4 wrong or missing
passphrase; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM). A failed or
interrupted run leaves no partial output files.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import sys
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from tqdm import tqdm

from amif_core import __version__, load_model
from amif_core.atomic import Output, check_outputs, write_atomically
from amif_core.attacks.remover import RemoverConfig
from amif_core.benchmark import run_benchmark
from amif_core.demo import run_demo
from amif_core.engine.devices import resolve_device
from amif_core.engine.inference import AMIFModel, Progress
from amif_core.engine.release import release_weights
from amif_core.engine.training import TrainConfig, train
from amif_core.errors import AMIFError, InputError, KeyFormatError, KeyMismatchError, WrongPassphraseError
from amif_core.heap import trim_heap
from amif_core.keyfile import key_output, read_key, read_key_header
from amif_core.transforms.identifier import DEFAULT_IDENTIFIER
from amif_core.volumes import (
    check_identifier,
    check_volume_path,
    protect_volume,
    read_volume,
    unlock_volume,
    volume_output,
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_KEY_MISMATCH = 3
EXIT_PASSPHRASE = 4
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

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


# ---------------------------------------------------------------- shared options and helpers


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


def load(args: argparse.Namespace) -> AMIFModel:
    """Load the model named by --weights (or the shipped one) onto --device."""
    if args.weights is not None and not args.weights.is_file():
        raise InputError(f"The weights file {args.weights} does not exist.")
    try:
        return load_model(args.device, weights=args.weights)
    except ValueError as error:  # an unknown or unavailable --device
        raise InputError(str(error)) from error


def passphrase_from(args: argparse.Namespace, confirm: bool) -> str | None:
    """The passphrase from --passphrase-prompt/-env/-file, or None when none was asked for."""
    if args.passphrase_env:
        value = os.environ.get(args.passphrase_env)
        if not value:
            raise InputError(f"The environment variable {args.passphrase_env} is not set or empty.")
        return value
    if args.passphrase_file:
        try:
            lines = args.passphrase_file.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise InputError(f"Cannot read the passphrase file {args.passphrase_file}: {error.strerror}.") from error
        if not lines or not lines[0]:
            raise InputError(f"The passphrase file {args.passphrase_file} is empty; put the passphrase on its first line.")
        return lines[0]
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

    The callback also returns the batch's freed memory to the system
    (:func:`amif_core.heap.trim_heap`), which keeps long series from growing.
    """
    bars: list[tqdm] = []  # made at the first call, when the total is known

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc=description, total=total, unit="slice", disable=quiet, file=sys.stderr,
                             dynamic_ncols=True))
        bars[0].update(done - bars[0].n)
        trim_heap()

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


# ---------------------------------------------------------------- subcommands


def _fuse_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mri", type=Path, help="the MRI: .nrrd, .nii, .nii.gz, .mha, .mhd or a DICOM series folder")
    parser.add_argument("other", type=Path,
                        help="the registered CT, PET or SPECT (any grid: it is resampled onto the MRI grid)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="protected volume to write (.nrrd, .nii, .nii.gz or .mha); float32 on the MRI grid")
    parser.add_argument("--key", type=Path, required=True, help="key file to write; keep it apart from the image")
    parser.add_argument("--axis", type=int, choices=(0, 1, 2),
                        help="numpy axis of the (z, y, x) array to slice along (default: the one closest to "
                             "superior-inferior)")


@command("fuse", "Fuse an MRI with a CT/PET/SPECT and protect the result with a visible identifier.",
         example="amif fuse mri.nii.gz pet.nrrd -o protected.nrrd --key protected.amifkey --passphrase-prompt",
         arguments=(_fuse_arguments, identifier_option, passphrase_options, model_options, force_option))
def fuse(args: argparse.Namespace) -> int:
    check_identifier(args.identifier)
    check_volume_path(args.output)
    check_outputs([args.output, args.key], args.force, inputs=[args.mri, args.other])
    passphrase = passphrase_from(args, confirm=True)
    mri, other = read_volume(args.mri), read_volume(args.other)
    model = load(args)
    with progress_bar("Protecting", args.quiet) as progress:
        protected, key = protect_volume(model, mri, other, args.identifier, args.axis, progress=progress,
                                        notice=notice(args))
    write_atomically([volume_output(protected, args.output), key_output(args.key, key, passphrase)], args.force)
    say(args, f"Protected volume: {args.output} (float32, the MRI's geometry; sliced along axis {key.axis})")
    say(args, f"Key:              {args.key} ({_file_size(args.key)}, "
              f"{'encrypted' if passphrase else 'NOT encrypted'}; volume fingerprint {key.volume_fingerprint[:12]})")
    say(args, "Keep the key apart from the image: whoever holds both can recover the fusion without the identifier.")
    return EXIT_OK


def _unlock_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protected", type=Path, help="the protected volume written by `amif fuse`")
    parser.add_argument("--key", type=Path, required=True, help="the key written with it")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="unlocked fusion to write (.nrrd, .nii, .nii.gz or .mha)")


@command("unlock", "Recover the identifier-free fusion from a protected volume and its key.",
         example="amif unlock protected.nrrd --key protected.amifkey -o fused.nrrd",
         arguments=(_unlock_arguments, passphrase_options, model_options, force_option))
def unlock(args: argparse.Namespace) -> int:
    check_volume_path(args.output)
    check_outputs([args.output], args.force, inputs=[args.protected, args.key])
    encrypted = read_key_header(args.key)["encryption"] is not None
    passphrase = passphrase_from(args, confirm=False)
    if encrypted and passphrase is None:
        if not sys.stdin.isatty():
            raise WrongPassphraseError(f"The key file {args.key} is encrypted; give its passphrase with "
                                       "--passphrase-prompt, --passphrase-env NAME or --passphrase-file PATH.")
        passphrase = prompt_passphrase(confirm=False)
    if not encrypted and passphrase is not None:
        notice(args)("The key file is not encrypted; the passphrase was not needed.")
    key = read_key(args.key, passphrase)
    protected = read_volume(args.protected)
    model = load(args)
    with progress_bar("Unlocking", args.quiet) as progress:
        fused = unlock_volume(model, protected, key, progress=progress)
    write_atomically([volume_output(fused, args.output)], args.force)
    say(args, f"Unlocked fusion: {args.output} (float32 in [0, 1], the protected volume's geometry)")
    return EXIT_OK


def _info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", type=Path, help="a key file")
    parser.add_argument("--json", action="store_true", help="print the whole header as JSON")


def _format_header(path: Path, header: dict) -> str:
    geometry = header["geometry"]
    encryption = header["encryption"]
    norm = header["normalisation"]
    direction = geometry["direction"]
    rows = [
        f"AMIF key file {path} (format version {header['format_version']}, written by AMIF {header['amif_version']})",
        f"  created (UTC):      {header['created_utc']}",
        f"  encrypted:          {'yes (' + encryption['kdf'] + ', ' + encryption['cipher'] + ')' if encryption else 'no'}",
        f"  identifier:         {header['identifier']}",
        f"  model id:           {header['model_id']}",
        "  fits the volume with",
        f"    fingerprint:      {header['volume_fingerprint']}",
        f"    size (x, y, z):   {' x '.join(str(v) for v in geometry['size'])} voxels",
        f"    spacing:          {' x '.join(f'{v:g}' for v in geometry['spacing'])} mm",
        f"    origin:           ({', '.join(f'{v:g}' for v in geometry['origin'])}) mm",
        f"    direction:        {' '.join(f'{v:g}' for v in direction[:3])} | {' '.join(f'{v:g}' for v in direction[3:6])}"
        f" | {' '.join(f'{v:g}' for v in direction[6:])}",
        f"    sliced along:     numpy axis {header['axis']} ({header['shape'][0]} slices of "
        f"{header['shape'][1]} x {header['shape'][2]})",
        f"  normalisation:      MRI [{norm['mri']['low']:g}, {norm['mri']['high']:g}], "
        f"second scan [{norm['other']['low']:g}, {norm['other']['high']:g}]",
    ]
    return "\n".join(rows)


@command("info", "Show what a key file fits (its header); needs no passphrase and shows no key material.",
         example="amif info protected.amifkey", arguments=(_info_arguments,))
def info(args: argparse.Namespace) -> int:
    header = read_key_header(args.key)
    print(json.dumps(header, indent=2, ensure_ascii=False) if args.json else _format_header(args.key, header))
    return EXIT_OK


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("amif-demo-output"), metavar="DIR",
                        help="folder to write into (default: ./amif-demo-output)")


@command("demo", "Protect and unlock the bundled MRI/PET demo pair and write a PNG montage.",
         example="amif demo --out amif-demo-output",
         arguments=(_demo_arguments, identifier_option, model_options, force_option))
def demo(args: argparse.Namespace) -> int:
    check_identifier(args.identifier)
    model = load(args)
    titles = {"protect": "Protecting", "unlock": "Unlocking"}
    with ExitStack() as bars:
        paths = run_demo(model, args.out, args.force, args.identifier, notice=notice(args),
                         progress=lambda stage: bars.enter_context(progress_bar(titles[stage], args.quiet)))
    for role, path in paths.items():
        say(args, f"{role + ':':11s}{path}")
    return EXIT_OK


# ---------------------------------------------------------------- the model owner's subcommands


def _data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="the Harvard pairs folder (pairs.csv and the CT-MRI, PET-MRI, SPECT-MRI folders)")


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig(data="")
    parser.add_argument("--out", type=Path, default=Path(defaults.out), metavar="DIR",
                        help=f"checkpoint folder; an interrupted run resumes from it (default: {defaults.out})")
    parser.add_argument("--weights-out", type=Path, metavar="PATH",
                        help="weights file to write (default: <out>/amif_v2.pt)")
    parser.add_argument("--backbone-from", type=Path, metavar="PATH",
                        help="start from the fusion backbone of this weights file and train only CCWM and C-SAMIC")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads, help="CPU threads (0: torch's default)")
    parser.add_argument("--fusion-steps", type=int, default=defaults.fusion_steps)
    parser.add_argument("--protect-steps", type=int, default=defaults.protect_steps)
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--crop", type=int, default=defaults.crop)
    parser.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:N or mps")


@command("train", "Train AMIF from scratch on the Harvard pairs, evaluate it and write a weights file.",
         example="amif train --data ../shared/data/harvard --out runs/amif",
         arguments=(_data_option, _train_arguments, force_option))
def train_command(args: argparse.Namespace) -> int:
    weights_out = args.weights_out or args.out / "amif_v2.pt"
    args.out.mkdir(parents=True, exist_ok=True)
    check_outputs([weights_out], args.force, inputs=[])
    config = TrainConfig(data=str(args.data), out=str(args.out), seed=args.seed, device=args.device,
                         threads=args.threads, crop=args.crop, batch=args.batch, fusion_steps=args.fusion_steps,
                         protect_steps=args.protect_steps,
                         backbone_from=str(args.backbone_from) if args.backbone_from is not None else None)
    from amif_core.evaluation import evaluate, format_report  # scipy: loaded by the model-owner commands only

    net = train(config, quiet=args.quiet)
    model = AMIFModel(net, resolve_device(args.device), "unreleased", {})
    result = evaluate(model, args.data, "val", quiet=args.quiet)
    model_id = release_weights(net, config, result, weights_out, overwrite=args.force)
    print(format_report(result))
    say(args, f"Weights: {weights_out} (model id {model_id[:12]})")
    return EXIT_OK


def json_output(path: Path, result: dict) -> Output:
    """An atomic write of ``result`` as indented JSON to ``path``."""
    text = json.dumps(result, indent=2)
    return Output(path, lambda temp: temp.write_text(text))


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", choices=("val", "train", "all"), default="val")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N slices per pair (quick check)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the full result as JSON")


@command("evaluate", "Fusion metrics per pair and the protection criteria on the Harvard validation patients.",
         example="amif evaluate --data ../shared/data/harvard --split val",
         arguments=(_data_option, _evaluate_arguments, model_options, force_option))
def evaluate_command(args: argparse.Namespace) -> int:
    if args.json is not None:
        check_outputs([args.json], args.force, inputs=[])
    from amif_core.evaluation import evaluate, format_report  # scipy: loaded by the model-owner commands only

    result = evaluate(load(args), args.data, args.split, limit=args.limit, quiet=args.quiet)
    print(format_report(result))
    if args.json is not None:
        write_atomically([json_output(args.json, result)], args.force)
    return EXIT_OK


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=256, help="slice height and width (default 256)")
    parser.add_argument("--depth", type=int, default=180, help="slices of the whole-volume run (default 180)")
    parser.add_argument("--repeats", type=int, default=40, help="single-slice calls timed after 3 warm-up calls (median)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")


@command("bench", "Print the model's cost: GFLOPs per slice, median CPU time per slice, whole-volume time.",
         example="amif bench --device cpu --threads 2",
         arguments=(_bench_arguments, model_options))
def bench_command(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    figures = run_benchmark(load(args), depth=args.depth, size=args.size, repeats=args.repeats)
    for name, value in figures.items():
        print(f"{name:28s} {value:.4f}" if isinstance(value, float) else f"{name:28s} {value}")
    return EXIT_OK


def _leaked_budgets(text: str) -> list[int | str]:
    """--leaked: comma-separated positive pair counts or 'all'; '' for no remover."""
    budgets: list[int | str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item != "all" and not (item.isdigit() and int(item) > 0):
            raise argparse.ArgumentTypeError(f"{item!r} is neither a positive number of pairs nor 'all'")
        budgets.append(item if item == "all" else int(item))
    return budgets


def _attack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, metavar="N", help="at most N validation slices per pair (quick check)")
    parser.add_argument("--leaked", type=_leaked_budgets, default="10,100,all", metavar="LIST",
                        help="leaked (protected, clean) training pairs, one U-Net remover per budget: comma-separated "
                             "counts or 'all' (default: 10,100,all; '' trains none)")
    parser.add_argument("--remover-steps", type=int, default=RemoverConfig.steps, metavar="N",
                        help=f"training steps of each U-Net remover (default {RemoverConfig.steps})")
    parser.add_argument("--white-box-slices", type=int, default=10, metavar="N",
                        help="run the white-box forward solve on the first N validation slices per pair (default 10)")
    parser.add_argument("--white-box-evaluations", type=int, default=1200, metavar="N",
                        help="forward-backward evaluations of each white-box solve (default 1200)")
    parser.add_argument("--seed", type=int, default=0, help="seeds every random choice (default 0)")
    parser.add_argument("--threads", type=int, default=0, metavar="N", help="CPU threads (0: torch's default)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the full result as JSON")
    parser.add_argument("--picture", type=Path, metavar="PATH",
                        help="write a PNG: protected | strongest attack | authorized unlock, one validation slice")


@command("attack-eval", "Try to remove the identifier without the key and measure how close each attack gets.",
         example="amif attack-eval --data ../shared/data/harvard --json attacks.json --picture attacks.png",
         arguments=(_data_option, _attack_arguments, model_options, force_option))
def attack_eval_command(args: argparse.Namespace) -> int:
    try:  # OpenCV and scikit-image come with the optional [attack] extra
        from amif_core.attacks.report import format_report as format_attacks, save_picture
        from amif_core.attacks.runner import run_attack_eval
    except ImportError as error:
        raise AMIFError(str(error)) from error
    outputs = [path for path in (args.json, args.picture) if path is not None]
    check_outputs(outputs, args.force, inputs=[])
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    evaluation = run_attack_eval(load(args), args.data, limit=args.limit, leaked=args.leaked,
                                 config=RemoverConfig(steps=args.remover_steps), seed=args.seed, quiet=args.quiet,
                                 white_box_limit=args.white_box_slices, evaluations=args.white_box_evaluations)
    print(format_attacks(evaluation.result))
    writes = [json_output(args.json, evaluation.result)] if args.json is not None else []
    if args.picture is not None:
        writes.append(Output(args.picture, lambda temp: save_picture(evaluation, temp)))
    write_atomically(writes, args.force)
    for path in outputs:
        say(args, f"Wrote {path}")
    return EXIT_OK


# ---------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="amif", description="AMIF: fuse a registered MRI with a CT/PET/SPECT into one image that carries a "
                                 "visible copyright identifier; the identifier-free fusion needs the key.",
        epilog="exit codes: 0 success, 1 other failure, 2 bad usage or input (including a damaged key), "
               "3 the key does not fit the volume, 4 wrong or missing passphrase, 130 interrupted",
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"amif {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        sub = subparsers.add_parser(cmd.name, help=cmd.summary, description=cmd.summary,
                                    epilog=f"example:\n  {cmd.example}", allow_abbrev=False,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``amif`` command line on ``argv`` (default: sys.argv[1:]); returns the exit code."""
    parser = build_parser()
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
            return _fail(args, str(error), EXIT_PASSPHRASE)
        except KeyMismatchError as error:
            return _fail(args, str(error), EXIT_KEY_MISMATCH)
        except (InputError, KeyFormatError, FileExistsError) as error:
            return _fail(args, str(error), EXIT_USAGE)
        except AMIFError as error:
            return _fail(args, str(error), EXIT_FAILURE)
        except OSError as error:
            return _fail(args, f"{error.strerror or error} ({error.filename})", EXIT_FAILURE)
        except KeyboardInterrupt:
            return _fail(args, "interrupted; no output files were written.", EXIT_INTERRUPTED)
        except Terminated:
            return _fail(args, "terminated; no output files were written.", EXIT_TERMINATED)


if __name__ == "__main__":
    sys.exit(main())
