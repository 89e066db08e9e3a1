"""What running AMIF in a worker process costs the Slicer module, against running it in Slicer's own process.

On real MRML (the slicer-core wheel), the module's scene logic protects and
unlocks the same pair with the in-process engine (its model already loaded,
as a Slicer that kept torch in its process would have it), with a new worker
per run ("worker, cold": ``python -m amif_core.cli.worker``, its interpreter,
torch import, weights, the inputs and outputs through a temporary folder), and
as the panel runs it ("worker, warm": the worker started ahead of time after
the previous run, waiting with torch imported; the benchmark gives it a few
seconds to get there). One worker check runs first, so the first torch import
of the machine (a cold disk cache) is not counted. Pairs: the bundled demo
(105 x 129 x 112) and a 256 x 256 x 180 phantom. Each figure is the median of
``--repeats`` runs (``--large-repeats`` on the large pair); "to first slice" is how long the worker took to report
its first progress line (start-up: process, torch, weights, inputs).

    OMP_NUM_THREADS=1 python benchmarks/slicer_worker_overhead.py [--threads 1] [--repeats 3] [--large-repeats 1]
        [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parents[1] / "AMIFSlicer"
sys.path.insert(0, str(MODULE_DIR))

import slicer  # noqa: E402
import torch  # noqa: E402
from AMIFSlicerLib.engines import InProcessEngine  # noqa: E402
from AMIFSlicerLib.logic import AMIFSceneLogic  # noqa: E402
from AMIFSlicerLib.sampledata import demoVolumePaths  # noqa: E402
from AMIFSlicerLib.testdata import addPhantomPair, loadWithStorageNode  # noqa: E402
from AMIFSlicerLib.worker import WorkerEngine  # noqa: E402


WARM_UP_SECONDS = 4.0


def timed(call) -> tuple[float, float | None, object]:
    """Seconds ``call(progress)`` took, seconds to its first progress report (None without one), its result.

    It starts after :data:`WARM_UP_SECONDS`: a warm worker started after the previous run has imported torch by
    then (as between two clicks in the panel), and no run races that import for the CPU."""
    time.sleep(WARM_UP_SECONDS)
    started, first = time.perf_counter(), []

    def progress(done: int, total: int) -> None:
        if not first:
            first.append(time.perf_counter() - started)

    result = call(progress)
    return time.perf_counter() - started, (first[0] if first else None), result


def measure(name: str, scene: slicer.vtkMRMLScene, mri, other, device: str, repeats: int, folder: Path) -> None:
    """Print the in-process and worker times of protect and unlock on one pair, and the worker's overhead."""
    engines = {"in-process": InProcessEngine(), "worker, cold": WorkerEngine(tempRoot=folder),
               "worker, warm": WorkerEngine(tempRoot=folder, keepWarm=True)}
    engines["in-process"].model(device)  # loaded once, as a long-running Slicer would keep it
    engines["worker, warm"].startStandby()
    times: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
    for repeat in range(repeats):
        for label, engine in engines.items():
            logic = AMIFSceneLogic(scene, engine=engine)
            key = folder / f"{name}-{label.replace(', ', '-')}-{repeat}.amifkey"
            seconds, first, protected = timed(lambda progress: logic.protect(
                mri, other, key, device=device, colour="pet", progress=progress))
            times.setdefault((label, "protect"), []).append((seconds, first))
            seconds, first, unlocked = timed(lambda progress: logic.unlock(protected, key, device=device,
                                                                            progress=progress))
            times.setdefault((label, "unlock"), []).append((seconds, first))
            scene.RemoveNode(protected)
            scene.RemoveNode(unlocked)
    engines["worker, warm"].shutdown()
    shape = "x".join(str(n) for n in mri.GetImageData().GetDimensions())
    for step in ("protect", "unlock"):
        inside = statistics.median(s for s, _ in times["in-process", step])
        line = f"{name:8s} {shape:12s} {step:8s} in-process {inside:6.2f} s"
        for label in ("worker, cold", "worker, warm"):
            worker = statistics.median(s for s, _ in times[label, step])
            start = statistics.median(f for _, f in times[label, step])
            line += f" | {label} {worker:6.2f} s, overhead {worker - inside:+5.2f} s, to first slice {start:5.2f} s"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the in-process run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure on the demo pair")
    parser.add_argument("--large-repeats", type=int, default=1, help="runs per figure on 256 x 256 x 180")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        WorkerEngine(tempRoot=folder).check(args.device)  # the machine's first torch import, not counted
        scene = slicer.vtkMRMLScene()
        mri, pet = (loadWithStorageNode(scene, [path], "vtkMRMLScalarVolumeNode") for path in demoVolumePaths())
        measure("demo", scene, mri, pet, args.device, args.repeats, folder)
        scene = slicer.vtkMRMLScene()
        mri, pet = addPhantomPair(scene, (180, 256, 256))
        measure("phantom", scene, mri, pet, args.device, args.large_repeats, folder)
    print(f"torch {torch.__version__}, {args.threads} thread(s) in process, worker OMP_NUM_THREADS as inherited, "
          f"device {args.device}")


if __name__ == "__main__":
    main()
