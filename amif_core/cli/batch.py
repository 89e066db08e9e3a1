"""``amif batch``: protect every study of a manifest on Dask (:func:`amif_core.batch.protect_manifest`).

Dask is imported only when the command runs, so ``amif --help`` works
without it, and ``amif batch`` without it says how to install it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amif_core.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    command,
    force_option,
    identifier_option,
    model_options,
    notice,
    say,
)
from amif_core.cli.study import fuse_option_arguments, fuse_options
from amif_core.errors import InputError

SUFFIXES = {"nrrd": ".nrrd", "nii": ".nii", "nii.gz": ".nii.gz", "mha": ".mha"}


def _batch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path,
                        help="CSV with the columns study_id, mri, other and optionally colour and identifier (one row "
                             "per study; paths absolute or relative to the manifest; an empty colour or identifier "
                             "cell takes the option's value)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder for DIR/<study_id>/protected.<ext> and protected.amifkey per study, and "
                             "DIR/batch-report.csv and .json")
    parser.add_argument("--format", choices=tuple(SUFFIXES), default="nrrd",
                        help="file format of the protected volumes (default: nrrd; --dicom writes series folders)")
    parser.add_argument("--passphrase-file", type=Path, metavar="PATH",
                        help="encrypt each key with the passphrase on the first line of PATH (each worker reads it, "
                             "so on a cluster it must be on a shared file system)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on the Dask cluster of this scheduler, e.g. tcp://host:8786 (default: "
                             "DASK_SCHEDULER_ADDRESS if set, else a local cluster on this machine)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="workers of the local cluster (default: one per GPU, else one per core as memory allows)")
    parser.add_argument("--retries", type=int, default=2, metavar="N",
                        help="reruns of a study whose worker died or whose task raised unexpectedly (default: 2)")
    parser.add_argument("--check", action="store_true",
                        help="only check the manifest: list the rows that cannot run, then exit (1 if any)")


@command("batch", "Protect every study of a manifest on Dask (a local cluster, or an existing one); resumable.",
         example="amif batch manifest.csv --out protected/ --colour pet --passphrase-file secret.txt\n"
                 "  amif batch manifest.csv --out protected/ --scheduler tcp://host:8786",
         arguments=(_batch_arguments, fuse_option_arguments, identifier_option, model_options, force_option))
def batch(args: argparse.Namespace) -> int:
    options = fuse_options(args)
    if args.retries < 0:
        raise InputError("--retries must be 0 or more, got {retries}.", retries=args.retries)
    if args.check:
        from amif_core.batch.manifest import read_manifest

        studies, rejected = read_manifest(args.manifest, options)
        for problem in rejected:
            print(problem)
        say(args, f"{len(studies)} of {len(studies) + len(rejected)} studies can run.")
        return EXIT_FAILURE if rejected else EXIT_OK
    from amif_core.batch.run import protect_manifest

    report = protect_manifest(args.manifest, args.out, options=options, passphrase_file=args.passphrase_file,
                              suffix=SUFFIXES[args.format], device=args.device, weights=args.weights, force=args.force,
                              retries=args.retries, scheduler=args.scheduler, workers=args.workers,
                              progress=not args.quiet, notice=notice(args))
    counts = ", ".join(f"{count} {status}" for status, count in report.counts.items())
    say(args, f"{len(report.studies)} studies: {counts}, in {report.seconds:.1f} s on {report.workers} workers "
              f"({report.scheduler}).")
    say(args, f"Report: {Path(args.out) / 'batch-report.csv'} and batch-report.json")
    if not report.ok:
        print(f"amif batch: not protected: {', '.join(report.failed)} (the report gives each error).", file=sys.stderr)
        return EXIT_FAILURE
    say(args, "Keep the keys apart from the images: whoever holds both can recover the fusions without the "
              "identifier.")
    return EXIT_OK
