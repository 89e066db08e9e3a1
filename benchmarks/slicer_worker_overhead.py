"""What running AMIF in a worker process costs the Slicer module, against running it in Slicer's own process.

On real MRML (the slicer-core wheel), the module's scene logic protects and
unlocks the same pair twice: with the in-process engine (its model already
loaded, as a Slicer that kept torch in its process would have it) and with
the worker engine the panel uses (a new ``python -m amif_core.cli.worker`` per
run: interpreter, torch import, weights, the inputs and outputs through a
temporary folder). One worker check runs first, so the first torch import of
the machine (a cold disk cache) is not counted. Pairs: the bundled demo
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


def timed(call) -> tuple[float, float | None, object]:
    """Seconds ``call(progress)`` took, seconds to its first progress report (None without one), its result."""
    started, first = time.perf_counter(), []

    def progress(done: int, total: int) -> None:
        if not first:
            first.append(time.perf_counter() - started)

    result = call(progress)
    return time.perf_counter() - started, (first[0] if first else None), result


def measure(name: str, scene: slicer.vtkMRMLScene, mri, other, device: str, repeats: int, folder: Path) -> None:
    """Print the in-process and worker times of protect and unlock on one pair, and the worker's overhead."""
    engines = {"in-process": InProcessEngine(), "worker": WorkerEngine(tempRoot=folder)}
    engines["in-process"].model(device)  # loaded once, as a long-running Slicer would keep it
    times: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
    for repeat in range(repeats):
        for label, engine in engines.items():
            logic = AMIFSceneLogic(scene, engine=engine)
            key = folder / f"{name}-{label}-{repeat}.amifkey"
            seconds, first, protected = timed(lambda progress: logic.protect(
                mri, other, key, device=device, colour="pet", progress=progress))
            times.setdefault((label, "protect"), []).append((seconds, first))
            seconds, first, unlocked = timed(lambda progress: logic.unlock(protected, key, device=device,
                                                                            progress=progress))
            times.setdefault((label, "unlock"), []).append((seconds, first))
            scene.RemoveNode(protected)
            scene.RemoveNode(unlocked)
    shape = "x".join(str(n) for n in mri.GetImageData().GetDimensions())
    for step in ("protect", "unlock"):
        inside = statistics.median(s for s, _ in times["in-process", step])
        worker = statistics.median(s for s, _ in times["worker", step])
        start = statistics.median(f for _, f in times["worker", step])
        print(f"{name:12s} {shape:12s} {step:8s} in-process {inside:7.2f} s   worker {worker:7.2f} s   "
              f"overhead {worker - inside:+6.2f} s   worker to first slice {start:5.2f} s")


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
