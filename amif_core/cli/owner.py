"""The model owner's subcommands: ``amif train``, ``evaluate``, ``bench`` and ``attack-eval``.

They need the training data and heavier packages (scipy, scikit-image,
OpenCV), all imported inside the functions that use them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from amif_core.cli.common import (
    EXIT_OK,
    command,
    force_option,
    load,
    model_options,
    owner_secret,
    owner_secret_option,
    say,
)
from amif_core.errors import AMIFError
from amif_core.atomic import Output, check_outputs, json_output, write_atomically


def _data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="the Harvard pairs folder (pairs.csv and the CT-MRI, PET-MRI, SPECT-MRI folders)")


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    from amif_core.training.trainer import TrainConfig

    defaults = TrainConfig(data="")
    parser.add_argument("--out", type=Path, default=Path(defaults.out), metavar="DIR",
                        help=f"checkpoint folder; an interrupted run resumes from it (default: {defaults.out})")
    parser.add_argument("--weights-out", type=Path, metavar="PATH",
                        help="weights file to write (default: <out>/amif_v3.pt)")
    parser.add_argument("--backbone-from", type=Path, metavar="PATH",
                        help="start from the fusion backbone of this weights file and train only CCWM and C-SAMIC")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help=f"seeds every random choice: initial weights, crops, masks (default {defaults.seed})")
    parser.add_argument("--threads", type=int, default=defaults.threads, help="CPU threads (0: torch's default)")
    parser.add_argument("--fusion-steps", type=int, default=defaults.fusion_steps,
                        help=f"stage 1: training steps of the fusion backbone (default {defaults.fusion_steps})")
    parser.add_argument("--protect-steps", type=int, default=defaults.protect_steps,
                        help="stage 2: training steps of CCWM and C-SAMIC on the frozen backbone "
                             f"(default {defaults.protect_steps})")
    parser.add_argument("--batch", type=int, default=defaults.batch,
                        help=f"crops per training step (default {defaults.batch})")
    parser.add_argument("--crop", type=int, default=defaults.crop,
                        help=f"side of the square training crops, in pixels (default {defaults.crop})")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:N or mps")
    fusion = defaults.model.fusion
    parser.add_argument("--fusion-head", choices=("residual", "select"), default=fusion.head,
                        help=f"the backbone's output head (default {fusion.head}; see amif_core/networks/fusion.py)")
    parser.add_argument("--alpha-max", type=float, default=fusion.alpha_max,
                        help=f"select head: the largest share of the weaker source (default {fusion.alpha_max})")
    parser.add_argument("--beta-max", type=float, default=fusion.beta_max,
                        help=f"select head: the largest edge-transfer gain, 0 for none (default {fusion.beta_max})")


@command("train", "Train AMIF from scratch on the Harvard pairs, evaluate it and write a weights file.",
         example="amif train --data ../shared/data/harvard --out runs/amif",
         arguments=(_data_option, _train_arguments, force_option))
def train_command(args: argparse.Namespace) -> int:
    weights_out = args.weights_out or args.out / "amif_v3.pt"
    args.out.mkdir(parents=True, exist_ok=True)
    check_outputs([weights_out], args.force, inputs=[])
    from amif_core.runtime.devices import resolve_device
    from amif_core.inference.model import AMIFModel
    from amif_core.training.release import release_weights
    from amif_core.networks.amif import AMIFConfig
    from amif_core.networks.fusion import FusionConfig
    from amif_core.training.trainer import TrainConfig, train

    fusion = FusionConfig(head=args.fusion_head, alpha_max=args.alpha_max, beta_max=args.beta_max)
    config = TrainConfig(data=str(args.data), out=str(args.out), seed=args.seed, device=args.device,
                         threads=args.threads, crop=args.crop, batch=args.batch, fusion_steps=args.fusion_steps,
                         protect_steps=args.protect_steps, model=AMIFConfig(fusion=fusion),
                         backbone_from=str(args.backbone_from) if args.backbone_from is not None else None)
    from amif_core.evaluation.fusion import (  # scipy: loaded by the model-owner commands only
        evaluate,
        format_report,
    )

    net = train(config, quiet=args.quiet)
    model = AMIFModel(net, resolve_device(args.device), "unreleased", {})
    result = evaluate(model, args.data, "val", quiet=args.quiet)
    model_id = release_weights(net, config, result, weights_out, overwrite=args.force)
    print(format_report(result))
    say(args, f"Weights: {weights_out} (model id {model_id[:12]})")
    return EXIT_OK


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
    from amif_core.evaluation.fusion import (  # scipy: loaded by the model-owner commands only
        evaluate,
        format_report,
    )

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
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")


@command("bench", "Print the model's cost: GFLOPs per slice, median CPU time per slice, whole-volume time.",
         example="amif bench --device cpu --threads 2",
         arguments=(_bench_arguments, model_options, force_option))
def bench_command(args: argparse.Namespace) -> int:
    if args.json is not None:
        check_outputs([args.json], args.force, inputs=[])
    import torch

    from amif_core.evaluation.benchmark import run_benchmark

    torch.set_num_threads(args.threads)
    figures = run_benchmark(load(args), depth=args.depth, size=args.size, repeats=args.repeats)
    for name, value in figures.items():
        print(f"{name:28s} {value:.4f}" if isinstance(value, float) else f"{name:28s} {value}")
    if args.json is not None:
        write_atomically([json_output(args.json, figures)], args.force)
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
    from amif_core.evaluation.attacks.remover import RemoverConfig

    parser.add_argument("--limit", type=int, metavar="N",
                        help="at most N validation slices per pair (quick check); with --distill, at most N training "
                             "slices per pair")
    parser.add_argument("--leaked", type=_leaked_budgets, default="10,100,all", metavar="LIST",
                        help="leaked (protected, clean) training pairs, one U-Net remover per budget: comma-separated "
                             "counts or 'all' (default: 10,100,all; '' trains none)")
    parser.add_argument("--remover-steps", type=int, default=RemoverConfig.steps, metavar="N",
                        help=f"training steps of each U-Net remover (default {RemoverConfig.steps})")
    parser.add_argument("--white-box-slices", type=int, default=10, metavar="N",
                        help="run the white-box forward solve on the first N validation slices per pair (default 10)")
    parser.add_argument("--white-box-evaluations", type=int, default=1200, metavar="N",
                        help="forward-backward evaluations of each white-box solve (default 1200)")
    parser.add_argument("--colour", action="store_true",
                        help="attack MRI-PET and MRI-SPECT protected in colour (image attacks and wrong keys, in RGB; "
                             "needs --leaked '')")
    parser.add_argument("--planes", type=int, metavar="EVERY",
                        help="instead of the validation slices, attack the bundled demo volume (grey) cut in each "
                             "plane of its grid, every EVERY-th slice crossing the head (--data is not read)")
    parser.add_argument("--seed", type=int, default=0, help="seeds every random choice (default 0)")
    parser.add_argument("--threads", type=int, default=0, metavar="N", help="CPU threads (0: torch's default)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the full result as JSON")
    parser.add_argument("--picture", type=Path, metavar="PATH",
                        help="write a PNG: protected | strongest attack | authorized unlock, one validation slice")
    distill = parser.add_argument_group("distillation (--distill)")
    distill.add_argument("--distill", action="store_true",
                         help="instead of the identifier attacks: train students on the released images and trace "
                              "them (amif_core/evaluation/attacks/distill_eval.py)")
    distill.add_argument("--student-steps", type=int, metavar="N",
                         help="training steps of every student (default: each setting's own, 1500)")
    distill.add_argument("--student-seeds", type=int, default=2, metavar="N", help="seeds per setting (default 2)")
    distill.add_argument("--probes", type=int, default=40, metavar="N",
                         help="validation probe slices for the trace (default 40)")
    distill.add_argument("--settings", metavar="LIST",
                         help="comma-separated student settings to train (default: all; see distill.SETTINGS)")


def _attack_planes(args: argparse.Namespace) -> int:
    """``attack-eval --planes``: the demo volume's attacks per plane (:mod:`amif_core.evaluation.attacks.planes`)."""
    from amif_core.data.demo_files import DEMO_MRI, DEMO_PET
    from amif_core.evaluation.attacks.planes import format_planes, run_plane_attacks
    from amif_core.io.volumes import read_volume

    if args.planes < 1:
        raise AMIFError("--planes takes a step of at least 1 (every Nth slice), got {step}.", step=args.planes)
    result = run_plane_attacks(load(args), read_volume(DEMO_MRI), read_volume(DEMO_PET), every=args.planes,
                               white_box_slices=args.white_box_slices, evaluations=args.white_box_evaluations)
    print(format_planes(result))
    if args.json is not None:
        write_atomically([json_output(args.json, result)], args.force)
        say(args, f"Wrote {args.json}")
    return EXIT_OK


@command("attack-eval", "Try to remove the identifier without the key and measure how close each attack gets.",
         example="amif attack-eval --data ../shared/data/harvard --json attacks.json --picture attacks.png",
         arguments=(_data_option, _attack_arguments, owner_secret_option, model_options, force_option))
def attack_eval_command(args: argparse.Namespace) -> int:
    try:  # OpenCV and scikit-image come with the optional [attack] extra
        from amif_core.evaluation.attacks.report import format_report as format_attacks
        from amif_core.evaluation.attacks.report import save_picture
        from amif_core.evaluation.attacks.runner import run_attack_eval
    except ImportError as error:
        raise AMIFError("{reason}", reason=error) from error
    outputs = [path for path in (args.json, args.picture) if path is not None]
    check_outputs(outputs, args.force, inputs=[])
    import torch

    from amif_core.evaluation.attacks.remover import RemoverConfig

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.distill:
        return _distill(args)
    if args.planes is not None:
        return _attack_planes(args)
    evaluation = run_attack_eval(load(args), args.data, limit=args.limit, leaked=args.leaked,
                                 config=RemoverConfig(steps=args.remover_steps), seed=args.seed, quiet=args.quiet,
                                 white_box_limit=args.white_box_slices, evaluations=args.white_box_evaluations,
                                 colour=args.colour)
    print(format_attacks(evaluation.result))
    writes = [json_output(args.json, evaluation.result)] if args.json is not None else []
    if args.picture is not None:
        writes.append(Output(args.picture, lambda temp: save_picture(evaluation, temp)))
    write_atomically(writes, args.force)
    for path in outputs:
        say(args, f"Wrote {path}")
    return EXIT_OK


def _owner_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("init",), help="init: write a new owner secret (256 random bits)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="PATH",
                        help="the secret file to write, readable by you only (mode 0600); keep it private and "
                             "backed up: it is what proves that a suspect model learnt from your outputs")


@command("owner", "Make the owner secret that chooses your fusions' invisible trace mark.",
         example="amif owner init -o ~/.amif/owner.secret",
         arguments=(_owner_arguments, force_option))
def owner_command(args: argparse.Namespace) -> int:
    from amif_core.tracing.secret import new_secret, write_secret

    check_outputs([args.output], args.force, inputs=[])
    write_secret(args.output, new_secret(), force=args.force)
    say(args, f"Owner secret: {args.output} (mode 0600). Use it with `amif fuse --owner-secret {args.output}` or "
              f"AMIF_OWNER_SECRET={args.output}, and with `amif trace`.")
    return EXIT_OK


def _trace_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("probes", type=Path,
                        help="probe folder: one sub-folder per probe holding mri.<ext> and other.<ext> (volumes "
                             "that `amif fuse` reads, or PNG/JPEG/TIFF slices)")
    parser.add_argument("outputs", type=Path,
                        help="the suspect's outputs: <probe id>.<ext> for each probe, in any of those formats")
    parser.add_argument("--colour", metavar="TABLE",
                        help="the colour table the suspect's colour outputs were made with, for scalar PET/SPECT "
                             "probes (RGB probes need none)")
    parser.add_argument("--json", metavar="PATH", help="write the result as JSON to PATH ('-': standard output)")


@command("trace", "Test whether a suspect's outputs carry your trace mark: a statistic, its exact p-value, a verdict.",
         example="amif trace probes/ suspect-outputs/ --owner-secret ~/.amif/owner.secret --json trace.json",
         arguments=(_trace_arguments, owner_secret_option, model_options, force_option))
def trace_command(args: argparse.Namespace) -> int:
    import json

    from amif_core.inference.trace import read_probes, trace_probes
    from amif_core.transforms.colour import colour_table

    json_path = None if args.json in (None, "-") else Path(args.json)
    if json_path is not None:
        check_outputs([json_path], args.force, inputs=[])
    if args.colour is not None:
        colour_table(args.colour)
    secret = owner_secret(args)
    result = trace_probes(load(args), read_probes(args.probes, args.outputs), secret, args.colour)
    if args.json == "-":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        say(args, f"Verdict: {result.verdict} (p = {result.p_value:.3g}; t = {result.t:.2f} with {result.features - 1} "
                  f"degrees of freedom, cosine {result.cosine:.3f}; {result.slices} slices, {result.pixels} pixels)")
        for note in result.notes:
            say(args, f"Note: {note}")
        if json_path is not None:
            write_atomically([json_output(json_path, result.to_dict())], args.force)
    return EXIT_OK


def _distill(args: argparse.Namespace) -> int:
    """attack-eval --distill: the students and their trace (the owner secret and another one derived from --seed
    unless --owner-secret names the owner's)."""
    import hashlib

    from amif_core.evaluation.attacks.distill import SETTINGS, with_steps
    from amif_core.evaluation.attacks.distill_eval import format_distill, run_distill
    from amif_core.tracing.secret import OwnerSecret, read_secret

    chosen = SETTINGS if args.settings is None else {name: SETTINGS[name] for name in args.settings.split(",")
                                                     if name in SETTINGS}
    if not chosen or (args.settings is not None and len(chosen) != len(args.settings.split(","))):
        raise AMIFError("--settings takes a comma-separated list of {names}.", names=", ".join(SETTINGS))
    derived = [OwnerSecret(hashlib.sha256(f"attack-eval --distill secret {args.seed} {i}".encode()).digest())
               for i in range(2)]
    owner = read_secret(args.owner_secret) if args.owner_secret is not None else derived[0]
    result = run_distill(load(args), args.data, owner, derived[1], probes=args.probes,
                         seeds=tuple(range(args.seed, args.seed + args.student_seeds)),
                         settings=with_steps(chosen, args.student_steps), seed=args.seed, quiet=args.quiet,
                         log=lambda line: say(args, line), train_limit=args.limit)
    print(format_distill(result))
    if args.json is not None:
        write_atomically([json_output(args.json, result)], args.force)
        say(args, f"Wrote {args.json}")
    return EXIT_OK
