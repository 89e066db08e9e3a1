#!/usr/bin/env python3
"""Benchmark `amif fuse` and `amif unlock` end to end through the command line, IO included.

Prints, for a synthetic MRI (int16) and a PET on a coarser grid (so resampling
is included):

* the wall time of `amif fuse` (protect) and `amif unlock` at --size
  (default 256x256x180; target: protect under 30 s on CPU);
* the peak resident memory of each run, and of a `amif fuse` at --rss-size
  (default 512x512x400; target: under 3 GB on CPU);
* the key size ratio: key file bytes / float32 protected volume bytes (limit 0.6).

Every command runs in its own child process, measured with
resource.getrusage(RUSAGE_CHILDREN), so the numbers include Python and torch
start-up. Without --weights the shipped weights are used.

Usage::

    python benchmarks/bench_volume.py                          # the real run (needs a quiet machine)
    python benchmarks/bench_volume.py --size 64 64 24 --rss-size 96 96 32   # a quick check
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # benchmark this checkout, installed or not
_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:]).returncode
seconds = time.perf_counter() - start
kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": code, "seconds": seconds, "peak_bytes": kib * (1 if sys.platform == "darwin" else 1024)}))
"""


def phantom(size: tuple[int, int, int], spacing: tuple[float, float, float], kind: str,
            origin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> sitk.Image:
    """A head-like phantom, built one slice at a time: "mri" is int16, "pet" float32."""
    nx, ny, nz = size
    yy, xx = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    rng = np.random.default_rng(0)
    values = np.empty((nz, ny, nx), dtype=np.int16 if kind == "mri" else np.float32)
    for k, z in enumerate(np.linspace(-1, 1, nz)):
        r2 = xx**2 / 0.64 + yy**2 / 0.81 + z**2 / 0.72
        brain = r2 < 0.8
        if kind == "mri":
            plane = 180 * (r2 < 1) + brain * (450 + 120 * np.sin(9 * xx) * np.cos(7 * yy + 3 * z))
            values[k] = np.round(plane + rng.normal(0, 12, plane.shape))
        else:
            lesion = np.exp(-((xx - 0.3) ** 2 + (yy + 0.2) ** 2 + (z - 0.1) ** 2) / 0.01)
            values[k] = brain * (4 + np.cos(5 * xx) * np.sin(4 * yy)) + 9 * lesion + rng.poisson(5, xx.shape) / 10
    image = sitk.GetImageFromArray(values)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def make_pair(folder: Path, size: tuple[int, int, int]) -> tuple[Path, Path]:
    """Write mri.nrrd (size, 1x1x1.2 mm) and pet.nrrd (half the voxels per axis, twice the spacing)."""
    mri_spacing = (1.0, 1.0, 1.2)
    sitk.WriteImage(phantom(size, mri_spacing, "mri"), str(folder / "mri.nrrd"))
    pet_size = tuple(-(-s // 2) for s in size)
    pet_spacing = tuple(2 * s for s in mri_spacing)
    sitk.WriteImage(phantom(pet_size, pet_spacing, "pet", origin=tuple(s / 2 for s in mri_spacing)),
                    str(folder / "pet.nrrd"))
    return folder / "mri.nrrd", folder / "pet.nrrd"


def measure(args: list[str], cwd: Path) -> dict:
    """Run ``amif ARGS`` in a child process; its exit code, wall seconds and peak RSS bytes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "amif_core.cli", *args]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["code"] != 0:
        raise SystemExit(f"`amif {' '.join(args)}` failed (exit {result['code']}):\n{done.stderr[-2000:]}")
    return result


def weights_for(args: argparse.Namespace) -> tuple[Path, str]:
    """The weights to benchmark and how to describe them."""
    from amif_core.inference.weights import DEFAULT_WEIGHTS

    if args.weights is not None:
        return args.weights, str(args.weights)
    return DEFAULT_WEIGHTS, f"shipped ({DEFAULT_WEIGHTS.name})"


def gigabytes(count: float) -> str:
    return f"{count / 1e9:.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=3, default=(256, 256, 180), metavar=("X", "Y", "Z"),
                        help="volume for the timings and the key ratio (default 256 256 180)")
    parser.add_argument("--rss-size", type=int, nargs=3, default=(512, 512, 400), metavar=("X", "Y", "Z"),
                        help="volume for the peak memory run (default 512 512 400)")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak memory run")
    parser.add_argument("--weights", type=Path, help="weights file (default: the shipped weights)")
    parser.add_argument("--device", default="cpu", help="device for amif (default cpu)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="amif-bench-") as temp:
        folder = Path(temp)
        weights, described = weights_for(args)
        common = ["--weights", str(weights), "--device", args.device, "--quiet"]
        print(f"AMIF volume benchmark: device {args.device}, {os.cpu_count()} CPU cores, weights {described}")

        size = "x".join(str(s) for s in args.size)
        make_pair(folder, tuple(args.size))
        fuse = measure(["fuse", "mri.nrrd", "pet.nrrd", "-o", "protected.nrrd", "--key", "protected.amifkey",
                        *common], folder)
        unlock = measure(["unlock", "protected.nrrd", "--key", "protected.amifkey", "-o", "fused.nrrd", *common],
                         folder)
        volume_bytes = 4 * int(np.prod(args.size))
        key_bytes = (folder / "protected.amifkey").stat().st_size
        print(f"{size}: protect {fuse['seconds']:.1f} s (target < 30 s on CPU), peak RSS {gigabytes(fuse['peak_bytes'])}")
        print(f"{size}: unlock  {unlock['seconds']:.1f} s, peak RSS {gigabytes(unlock['peak_bytes'])}")
        print(f"key size ratio {key_bytes / volume_bytes:.3f} (key {key_bytes / 1e6:.2f} MB / float32 volume "
              f"{volume_bytes / 1e6:.2f} MB; limit 0.6)")

        if not args.no_rss:
            for name in ("mri.nrrd", "pet.nrrd", "protected.nrrd", "protected.amifkey", "fused.nrrd"):
                (folder / name).unlink()
            big = "x".join(str(s) for s in args.rss_size)
            make_pair(folder, tuple(args.rss_size))
            start = time.perf_counter()
            result = measure(["fuse", "mri.nrrd", "pet.nrrd", "-o", "protected.nrrd", "--key", "protected.amifkey",
                              *common], folder)
            print(f"{big}: protect peak RSS {gigabytes(result['peak_bytes'])} (limit 3 GB), "
                  f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
