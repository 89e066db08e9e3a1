#!/usr/bin/env python3
"""Benchmark `amif batch` against a shell loop of `amif fuse` over the same synthetic studies.

Writes one synthetic pair (an int16 MRI and a PET on a coarser grid, as
``bench_volume.py`` makes them) and a manifest that lists it as --studies
studies, then times, from the command line, start-up included:

* a shell loop (bash ``for``) of `amif fuse`, one process per study, which
  imports torch and loads the weights every time;
* `amif batch` on a local Dask cluster of 1 worker, then of 2 workers
  (--workers), each worker loading the model once.

Prints studies per minute for each and the ratio to the loop; CPU seconds
per study (every process's user + system time, start-up included: the
figure a busy shared machine distorts least); and from the batch report
the mean wall seconds per study task and per slice (the figure
docs/batch.md scales to N workers). Then the CPU seconds of one study in
one process with and without the malloc trim threshold that Dask's nanny
sets for its workers by default. Last, the file work of one study at
--io-size, in this process: reading NRRD and a DICOM series, writing NRRD
and a DICOM series, and the fingerprint the resume check hashes. Every run inherits this process's
environment, so OMP_NUM_THREADS applies to all alike (each Dask worker
process runs torch on one thread unless OMP_NUM_THREADS says otherwise;
the loop's `amif fuse` uses what OMP_NUM_THREADS gives it).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_batch.py                       # 12 studies of 128x128x32
    python benchmarks/bench_batch.py --studies 4 --size 64 64 16 --workers 1  # a quick check
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_volume import REPO, make_pair, weights_for  # noqa: E402  (the same phantom pair and weights)


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, of every process it started and waited for) of ``command`` run
    to completion in ``cwd``; exits with its output when it fails."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"`{shlex.join(command)}` failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


_STUDY_CPU = """
import json, sys, time
from pathlib import Path
from amif_core.study import FuseOptions, Models, StudyFiles, fuse_study
folder, repeats = Path(sys.argv[1]), int(sys.argv[2])
models = Models(None)
seconds = []
for i in range(repeats + 1):  # the first study warms up and is not counted
    start = time.process_time()
    files = StudyFiles(folder / "mri.nrrd", folder / "pet.nrrd", folder / f"cpu{i}.nrrd", folder / f"cpu{i}.amifkey")
    fuse_study(files, FuseOptions(), None, models, "cpu", True, None, lambda message: None)
    seconds.append(time.process_time() - start)
print(json.dumps(sorted(seconds[1:])[repeats // 2]))
"""


def study_cpu_seconds(folder: Path, trim_threshold: str | None, repeats: int = 3) -> float:
    """Median CPU seconds of one study's `fuse_study` in a process started with MALLOC_TRIM_THRESHOLD_ set to
    ``trim_threshold`` (None: unset), as a Dask nanny sets it for its worker by default."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    if trim_threshold is not None:
        env["MALLOC_TRIM_THRESHOLD_"] = trim_threshold
    done = subprocess.run([sys.executable, "-c", _STUDY_CPU, str(folder), str(repeats)], env=env,
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def io_seconds(folder: Path, size: tuple[int, int, int]) -> dict[str, float]:
    """Wall seconds of one study's file work at ``size``, in this process: reading the MRI (NRRD) and a DICOM series
    of it, writing a protected volume (uint16) as NRRD and as a DICOM series (atomically, each file flushed), and
    the volume fingerprint the resume check hashes."""
    import SimpleITK as sitk

    from amif_core.atomic import write_atomically
    from amif_core.io.dicom import dicom_series_output
    from amif_core.io.geometry import volume_fingerprint
    from amif_core.io.volumes import read_volume, volume_output

    make_pair(folder, size)
    seconds = {}
    start = time.perf_counter()
    mri = read_volume(folder / "mri.nrrd")
    seconds["read NRRD"] = time.perf_counter() - start
    stored = sitk.Cast(sitk.RescaleIntensity(mri, 0, 32767), sitk.sitkUInt16)
    for name, output in (("write NRRD", volume_output(stored, folder / "protected.nrrd")),
                         ("write DICOM series", dicom_series_output(stored, folder / "series", "AMIF"))):
        start = time.perf_counter()
        write_atomically([output])
        seconds[name] = time.perf_counter() - start
    start = time.perf_counter()
    read_volume(folder / "series")
    seconds["read DICOM series"] = time.perf_counter() - start
    start = time.perf_counter()
    volume_fingerprint(stored)
    seconds["fingerprint"] = time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=12, help="studies in the manifest (default 12)")
    parser.add_argument("--size", type=int, nargs=3, default=(128, 128, 32), metavar=("X", "Y", "Z"),
                        help="MRI voxels of each study (default 128 128 32: 32 axial slices)")
    parser.add_argument("--workers", type=int, nargs="+", default=(1, 2), help="local cluster sizes (default 1 2)")
    parser.add_argument("--weights", type=Path, help="weights file (default: the shipped weights)")
    parser.add_argument("--device", default="cpu", help="device for amif (default cpu)")
    parser.add_argument("--io-size", type=int, nargs=3, default=(256, 256, 180), metavar=("X", "Y", "Z"),
                        help="study size for the file timings (default 256 256 180; 0 0 0 skips them)")
    args = parser.parse_args()

    amif = [sys.executable, "-m", "amif_core.cli"]
    with tempfile.TemporaryDirectory(prefix="amif-bench-batch-") as temp:
        folder = Path(temp)
        weights, described = weights_for(args)
        common = ["--weights", str(weights), "--device", args.device, "--quiet"]
        make_pair(folder, tuple(args.size))
        with (folder / "manifest.csv").open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["study_id", "mri", "other"])
            writer.writerows([f"study{i:04d}", "mri.nrrd", "pet.nrrd"] for i in range(args.studies))
        slices = args.size[2]
        print(f"AMIF batch benchmark: {args.studies} studies of {'x'.join(map(str, args.size))} voxels "
              f"({slices} slices each), device {args.device}, {os.cpu_count()} CPU cores, "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, weights {described}")

        (folder / "loop").mkdir()
        fuse = " ".join(shlex.quote(word) for word in [*amif, "fuse", "mri.nrrd", "pet.nrrd"])
        loop = (f"for i in $(seq {args.studies}); do {fuse} -o loop/$i.nrrd --key loop/$i.amifkey "
                f"{shlex.join(common)} || exit 1; done")
        seconds, cpu = timed(["bash", "-c", loop], folder)
        baseline = args.studies / seconds * 60
        print(f"shell loop of amif fuse: {seconds:6.1f} s, {baseline:6.2f} studies/min; "
              f"{cpu / args.studies:.2f} CPU s per study")

        for workers in args.workers:
            out = folder / f"batch{workers}"
            seconds, cpu = timed([*amif, "batch", "manifest.csv", "--out", out.name, "--workers", str(workers),
                                  *common], folder)
            report = json.loads((out / "batch-report.json").read_text())
            if report["counts"]["protected"] != args.studies:
                raise SystemExit(f"amif batch protected {report['counts']} of {args.studies} studies")
            task = sum(study["seconds"] for study in report["studies"]) / args.studies
            rate = args.studies / seconds * 60
            print(f"amif batch, {workers} worker{'s' if workers > 1 else ' '}: {seconds:6.1f} s, {rate:6.2f} "
                  f"studies/min ({rate / baseline:.2f}x the loop); {cpu / args.studies:.2f} CPU s per study "
                  f"(start-up included); mean task {task:.2f} s per study, {task / slices * 1000:.1f} ms per slice")

        dask_default, unset = study_cpu_seconds(folder, "65536"), study_cpu_seconds(folder, None)
        print(f"one study in one process: {dask_default:.2f} CPU s with Dask's default MALLOC_TRIM_THRESHOLD_=65536, "
              f"{unset:.2f} CPU s without it (median of 3)")

        if all(args.io_size):
            (folder / "io").mkdir()
            timings = io_seconds(folder / "io", tuple(args.io_size))
            print(f"file work of one {'x'.join(map(str, args.io_size))} study: "
                  + ", ".join(f"{name} {value:.2f} s" for name, value in timings.items()))


if __name__ == "__main__":
    main()
