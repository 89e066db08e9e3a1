"""The options of ``amif fuse`` and ``amif batch`` that make a :class:`~amif_core.study.FuseOptions`."""
from __future__ import annotations

import argparse

from amif_core.cli.common import owner_secret_option
from amif_core.study import FuseOptions
from amif_core.transforms.colour import table_choices


def fuse_options(args: argparse.Namespace) -> FuseOptions:
    """The options of ``amif fuse`` (or ``amif batch``) as parsed."""
    return FuseOptions(identifier=args.identifier, colour=args.colour, axis=args.axis, dicom=args.dicom,
                       owner_secret=args.owner_secret)


def fuse_option_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of :class:`FuseOptions` but the identifier (:func:`~amif_core.cli.common.identifier_option`)."""
    parser.add_argument("--dicom", action="store_true",
                        help="write the protected volume as a derived DICOM series into a new folder (patient and "
                             "study copied from the MRI's series when the MRI is a DICOM folder)")
    parser.add_argument("--axis", type=int, choices=(0, 1, 2),
                        help="numpy axis of the (z, y, x) array to slice along (default: the one closest to "
                             "superior-inferior)")
    parser.add_argument("--colour", metavar="TABLE",
                        help="fuse in colour: map a scalar PET/SPECT through this colour table ("
                             + ", ".join(f"{name}: {look}" for name, look in table_choices())
                             + ") and write RGB. An RGB second scan is fused in colour without it")
    owner_secret_option(parser)
