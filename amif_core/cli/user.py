"""The user's subcommands: ``amif fuse``, ``unlock``, ``info`` and ``demo``.

Each imports the model and the volume pipeline inside its function, so
``amif info`` reads a key header without torch.
"""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path

from amif_core.cli.common import (
    EXIT_OK,
    Models,
    command,
    force_option,
    identifier_option,
    model_options,
    notice,
    passphrase_from,
    passphrase_options,
    progress_bar,
    prompt_passphrase,
    load,
    run_planned,
    say,
    _file_size,
)
from amif_core.cli.study import fuse_option_arguments, fuse_options
from amif_core.study import StudyFiles, check_study_outputs, fuse_study
from amif_core.errors import InputError, KeyFormatError, WrongPassphraseError
from amif_core.atomic import check_outputs, write_atomically
from amif_core.io.volumes import check_volume_path, read_volume, volume_output
from amif_core.key.file import is_key_file, open_key_file, read_key_header
from amif_core.transforms.identifier import validate_identifier


def _fuse_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mri", type=Path, help="the MRI: .nrrd, .nii, .nii.gz, .mha, .mhd or a DICOM series folder")
    parser.add_argument("other", type=Path,
                        help="the registered CT, PET or SPECT (any grid: it is resampled onto the MRI grid)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="protected volume to write (.nrrd, .nii, .nii.gz or .mha; with --dicom a new folder) "
                             "on the MRI grid: uint16 grey, or 8-bit RGB in colour")
    parser.add_argument("--key", type=Path, required=True, help="key file to write; keep it apart from the image")


@command("fuse", "Fuse an MRI with a CT/PET/SPECT and protect the result with a visible identifier.",
         example="amif fuse mri.nii.gz pet.nrrd -o protected.nrrd --key protected.amifkey --passphrase-prompt\n"
                 "  amif fuse mri_dicom/ pet.nrrd -o protected_dicom/ --dicom --key protected.amifkey",
         arguments=(_fuse_arguments, fuse_option_arguments, identifier_option, passphrase_options, model_options,
                    force_option))
def fuse(args: argparse.Namespace) -> int:
    options = fuse_options(args)
    files = StudyFiles(args.mri, args.other, args.output, args.key)
    check_study_outputs(files, options, args.force)
    passphrase = passphrase_from(args, confirm=True)
    with progress_bar("Protecting", args.quiet) as progress:
        key = fuse_study(files, options, passphrase, Models(args.weights), args.device, args.force, progress,
                         notice(args)).key
    kind = ("8-bit RGB" if key.colour is not None else "uint16") + (" DICOM series" if args.dicom else "")
    say(args, f"Protected volume: {args.output} ({kind}, the MRI's geometry; sliced along axis {key.axis})")
    say(args, f"Key:              {args.key} ({_file_size(args.key)}, "
              f"{'encrypted' if passphrase else 'NOT encrypted'}; volume fingerprint {key.volume_fingerprint[:12]})")
    say(args, "Keep the key apart from the image: whoever holds both can recover the fusion without the identifier.")
    return EXIT_OK


def _unlock_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protected", type=Path,
                        help="the protected volume written by `amif fuse`, or a lossless copy of it: a volume file "
                             "in any integer or float type, or a DICOM series folder (as an archive gives it back)")
    parser.add_argument("--key", type=Path, required=True, help="the key written with it")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="unlocked fusion to write (.nrrd, .nii, .nii.gz or .mha)")


@command("unlock", "Recover the identifier-free fusion from a protected volume and its key.",
         example="amif unlock protected.nrrd --key protected.amifkey -o fused.nrrd",
         arguments=(_unlock_arguments, passphrase_options, model_options, force_option))
def unlock(args: argparse.Namespace) -> int:
    check_volume_path(args.output)
    check_outputs([args.output], args.force, inputs=[args.protected, args.key])
    try:
        keyfile = open_key_file(args.key)  # the one read of the key file: header, passphrase question and payload
    except KeyFormatError as error:
        if not is_key_file(args.key) and is_key_file(args.protected):
            raise InputError("The arguments look swapped: {protected} is an AMIF key file and {key} is not. Give the "
                             "protected volume first and the key after --key: amif unlock {key} --key {protected} -o "
                             "{output}", protected=args.protected, key=args.key, output=args.output) from error
        raise
    passphrase = passphrase_from(args, confirm=False)
    if keyfile.needs_passphrase and passphrase is None:
        if not sys.stdin.isatty():
            raise WrongPassphraseError("The key file {path} is encrypted; give its passphrase with "
                                       "--passphrase-prompt, --passphrase-env NAME or --passphrase-file PATH.",
                                       path=args.key)
        passphrase = prompt_passphrase(confirm=False)
    if not keyfile.needs_passphrase and passphrase is not None:
        notice(args)("The key file is not encrypted; the passphrase was not needed.")
    key = keyfile.key(passphrase)
    protected = read_volume(args.protected)
    from amif_core.inference.pipeline import unlock_volume
    from amif_core.inference.weights import weights_for_key

    args.weights = weights_for_key(key.model_id, args.weights)  # a key made by earlier shipped weights unlocks

    with progress_bar("Unlocking", args.quiet) as progress:
        fused = run_planned(args, protected.GetNumberOfPixels(), tuple(key.spatial_shape[1:]), lambda model, batch: (
            unlock_volume(model, protected, key, progress=progress, batch_size=batch)))
    write_atomically([volume_output(fused, args.output)], args.force)
    kind = "float32 RGB" if key.colour is not None else "float32"
    say(args, f"Unlocked fusion: {args.output} ({kind} in [0, 1], the protected volume's geometry)")
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
        f"  colour:             {_colour_text(header.get('colour'))}",
        f"  stored as:          {_storage_text(header.get('levels'), header.get('colour'))}",
    ]
    return "\n".join(rows)


def _storage_text(levels: int | None, colour: dict | None) -> str:
    if levels is None:
        return "float32 (a key of format 3 or older)"
    kind = "8-bit RGB" if colour is not None else "uint16"
    return f"{kind} integers 0..{levels} (a DICOM series or any lossless copy unlocks)"


def _colour_text(colour: dict | None) -> str:
    if colour is None:
        return "no (grey fusion)"
    table = colour.get("table")
    return "RGB (" + (f"colour table {table!r}" if table else "the second scan's own colours") + ")"


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
    validate_identifier(args.identifier)
    from amif_core.demo import run_demo

    model = load(args)
    titles = {"protect": "Protecting", "unlock": "Unlocking"}
    with ExitStack() as bars:
        paths = run_demo(model, args.out, args.force, args.identifier, notice=notice(args),
                         progress=lambda stage: bars.enter_context(progress_bar(titles[stage], args.quiet)))
    for role, path in paths.items():
        say(args, f"{role + ':':11s}{path}")
    return EXIT_OK
