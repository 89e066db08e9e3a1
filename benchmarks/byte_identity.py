"""Print the SHA-256 of the bytes ``amif fuse`` and ``amif unlock`` write for fixed inputs, to compare two commits.

Run it on each commit and diff the output: a refactor that changes no behaviour
prints the same lines. The cases are the bundled demo pair in colour (no
passphrase), and two small stacks of Harvard slices (CT-MRI grey and PET-MRI
with an RGB PET), protected with a passphrase; each protected volume is then
unlocked from the written files, so the key-reading path is covered too.

A key file holds its creation time and, when encrypted, a random scrypt salt and
AES-GCM nonce. Both are fixed here (the clock reads 2000-01-01T00:00:00Z and
``os.urandom`` gives a counter's SHA-256 stream) so the key bytes are
comparable; nothing else is changed. Harvard cases are skipped, and say so,
when the data is absent.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/byte_identity.py [--harvard ../shared/data/harvard]
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

import numpy as np
import SimpleITK as sitk
import torch
from PIL import Image

from amif_core.cli.main import main as amif
from amif_core.data.demo_files import DEMO_MRI, DEMO_PET
from amif_core.key.core import Key

PASSPHRASE_ENV = "AMIF_BYTE_IDENTITY_PASSPHRASE"
HARVARD_STACKS = {"CT-MRI": ("CT", ["20005.png", "20006.png", "20007.png"]),
                  "PET-MRI": ("PET", ["25015.png", "25016.png", "25017.png"])}


class FrozenClock(datetime):
    """``datetime`` whose ``now`` is always 2000-01-01T00:00:00Z (the key's ``created_utc``)."""

    @classmethod
    def now(cls, tz: object = None) -> datetime:  # noqa: D102
        return datetime(2000, 1, 1, tzinfo=timezone.utc)


def counter_bytes() -> object:
    """A stand-in for ``os.urandom``: successive bytes of SHA-256(counter) for counter 0, 1, ..."""
    counter = itertools.count()

    def urandom(size: int) -> bytes:
        out = b""
        while len(out) < size:
            out += hashlib.sha256(str(next(counter)).encode()).digest()
        return out[:size]

    return urandom


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stack(root: Path, pair: str, modality: str, files: list[str], out: Path) -> None:
    """Write the Harvard slices ``files`` of ``pair`` as a (D, 256, 256) MRI and second-scan NRRD pair in ``out``."""
    for name, folder in (("mri", "MRI"), ("other", modality)):
        arrays = [np.asarray(Image.open(root / pair / folder / file)) for file in files]
        if arrays[0].ndim == 3:
            arrays = [a[..., :3] for a in arrays]
        volume = np.stack(arrays).astype(np.uint8)
        image = sitk.GetImageFromArray(volume, isVector=volume.ndim == 4)
        image.SetSpacing((1.0, 1.0, 3.0))
        sitk.WriteImage(image, str(out / f"{name}.nrrd"))


def run_case(name: str, mri: Path, other: Path, extra: list[str], passphrase: bool, work: Path) -> list[str]:
    """Fuse and unlock one case with the CLI; the lines "name file sha256"."""
    out = work / name
    out.mkdir()
    secret = ["--passphrase-env", PASSPHRASE_ENV] if passphrase else []
    code = amif(["fuse", str(mri), str(other), "-o", str(out / "protected.nrrd"), "--key",
                 str(out / "protected.amifkey"), "--device", "cpu", "-q", *secret, *extra])
    if code:
        raise SystemExit(f"{name}: amif fuse exited {code}")
    code = amif(["unlock", str(out / "protected.nrrd"), "--key", str(out / "protected.amifkey"), "-o",
                 str(out / "unlocked.nrrd"), "--device", "cpu", "-q", *secret])
    if code:
        raise SystemExit(f"{name}: amif unlock exited {code}")
    return [f"{name:18s} {file:18s} {sha256(out / file)}"
            for file in ("protected.nrrd", "protected.amifkey", "unlocked.nrrd")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--harvard", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/data/harvard")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ[PASSPHRASE_ENV] = "correct horse battery staple"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    print(f"commit {commit}")
    lines = []
    with tempfile.TemporaryDirectory() as temp, \
            mock.patch.object(sys.modules[Key.__module__], "datetime", FrozenClock), \
            mock.patch("os.urandom", counter_bytes()):
        work = Path(temp)
        lines += run_case("demo-colour", DEMO_MRI, DEMO_PET, ["--colour", "pet"], False, work)
        for pair, (modality, files) in HARVARD_STACKS.items():
            if not (args.harvard / pair).is_dir():
                lines.append(f"harvard-{pair}: skipped, no Harvard data at {args.harvard}")
                continue
            inputs = work / f"inputs-{pair}"
            inputs.mkdir()
            stack(args.harvard, pair, modality, files, inputs)
            lines += run_case(f"harvard-{pair}", inputs / "mri.nrrd", inputs / "other.nrrd", [], True, work)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
