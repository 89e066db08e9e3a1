#!/usr/bin/env python3
"""Everything AMIF needs a GPU for, in one run of under 8 minutes on one card; figures as JSON and a short summary.

Parts, in order (each one's figures are written as soon as it ends, so a run cut
short keeps what it measured; a part that fails records its error and the rest go on):

1. ``card``: the card, its memory, the driver and torch's CUDA version.
2. ``tests``: the suite's ``cuda``-marked tests (``tests/test_cuda.py``) through pytest.
3. ``compare``: the demo pair (``amif fuse``'s volume pipeline) and 20 validation slices of the
   Harvard pairs (colour for PET and SPECT) on ``--device`` and on ``--reference`` (the CPU): the
   largest absolute difference of the clean fusion and of the protected image, whether the keys are
   identical (every key array byte for byte, every other field but the creation time equal), and the unlock PSNR of each
   device's image and key unlocked on the other device.
4. ``throughput``: ``protect`` and ``unlock`` (``AMIFModel``, host work included) in slices per
   second at batch 1, 8, 32, 128 and 512 on 256 x 256 slices, the network alone at each batch
   (so the gap is host work), peak GPU memory of each, and a cProfile of one protect call at the best
   batch (where the time goes).
5. ``fuse``: ``amif fuse`` on synthetic 256x256x180 and 512x512x400 pairs
   (``benchmarks/bench_volume.py``'s phantoms), wall time of the child process from the command line,
   start-up included, and its peak GPU memory and resident memory.
6. ``candidates``: ``torch.compile`` of the fusion backbone, and bf16 autocast of the backbone only
   (coupling and unlock stay float32), each timed against float32 protect, with the released
   image's largest difference from float32 (in grey storage levels, 1/32767) and the round trip: the
   candidate's image and key unlocked by the float32 model, PSNR against the float32 clean fusion,
   where the suite's bar is 50 dB. A candidate qualifies only when it meets that bar and is faster.

``--device cpu --quick`` is the dry run: every part on small sizes on the CPU (the device and the
reference are then both the CPU, and the ``cuda`` tests skip), to show the script works before a
GPU is lent.

The script installs nothing. On the project's GPU machine (nvidia-h200, see the device tool's
KINDS.md: its ``python3`` holds torch, numpy, scipy, pillow, tqdm, pytest, hypothesis and
scikit-image, but not ptwt, PyWavelets, SimpleITK, cryptography, cffi, pycparser or pydicom, and
it reaches no registry), a later session does two steps:

1. Here, once: ``sh benchmarks/gpu_bundle.sh`` packs those missing packages (pinned wheels for
   CPython 3.12, x86-64) into ``.whl/gpu-site.tar.xz`` (about 36 MiB: the wheels alone, 62 MiB, with
   the working tree pass the device tool's 64 MiB limit).
2. One device call, ``run`` with ``carry=[".whl/gpu-site.tar.xz"]`` and ``timeout_s=480``::

       mkdir -p /tmp/site && tar -xJf .whl/gpu-site.tar.xz -C /tmp/site && export PYTHONPATH=/tmp/site:$PWD || exit; PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py $OUT/gpu --device cuda 2>&1 | tee $OUT/gpu_check.log

   Then ``give_back``; the files come back under the reply's ``files_at``: ``gpu/gpu_check.json``,
   ``gpu/summary.txt`` and ``gpu_check.log``. ``--budget-s`` (default 420) skips a part that would
   start with less of it left than the part's reserve (:data:`PARTS`), so the run ends inside the
   call; ``--parts`` reruns some parts only (for example ``--parts candidates`` after a failure there),
   into another folder.

Usage::

    python benchmarks/gpu_check.py OUT_DIR --device cuda                       # on a GPU machine
    OMP_NUM_THREADS=1 python benchmarks/gpu_check.py OUT_DIR --device cpu --quick --threads 1   # dry run
"""
from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from bench_volume import make_pair

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, installed or not

from amif_core import AMIFModel, load_model  # noqa: E402
from amif_core.atomic import json_output  # noqa: E402
from amif_core.evaluation.benchmark import synthetic_pair  # noqa: E402
from amif_core.evaluation.psnr import channel_psnr  # noqa: E402
from amif_core.runtime.runner import release_cached_memory, resolve  # noqa: E402
from amif_core.atomic import Output, write_atomically  # noqa: E402
from amif_core.key.core import Key  # noqa: E402
from amif_core.key.storage import GREY_LEVELS, levels_for  # noqa: E402

HARVARD = REPO.parent / "shared" / "data" / "harvard"
UNLOCK_PSNR_DB = 50.0  # the round trip's bar in the test suite
PROTECT_TARGET = 2000  # slices per second at the best batch on an H100/H200-class card (issue 27)


# Each part, in running order, with the seconds of budget it needs left to start: guesses for a GPU machine, where
# nothing has run yet (a part that starts may run past the budget; the device call's timeout has room for that).
PARTS = {"card": 0, "tests": 30, "compare": 30, "throughput": 30, "fuse": 60, "candidates": 120}


@dataclass(frozen=True)
class Plan:
    """Sizes of one run: the full check, or the CPU dry run's small ones."""

    slice_size: int
    batches: tuple[int, ...]
    min_slices: int  # slices per throughput run, at least two batches
    fuse_sizes: tuple[tuple[int, int, int], ...]
    demo_slices: int | None  # None: the whole demo pair
    validation_slices: int
    candidate_slices: int
    candidate_batch: int
    candidate_size: int


FULL = Plan(256, (1, 8, 32, 128, 512), 64, ((256, 256, 180), (512, 512, 400)), None, 20, 256, 64, 256)
QUICK = Plan(64, (1, 4), 8, ((48, 48, 12), (64, 64, 16)), 6, 2, 8, 4, 64)


def synchronise(device: str) -> None:
    """Wait for the GPU's queued work, so a timer reads finished work."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def peak_bytes(device: str) -> int | None:
    """Peak GPU memory allocated by torch since :func:`reset_peak`, None on the CPU."""
    return int(torch.cuda.max_memory_allocated(device)) if device.startswith("cuda") else None


def timed(device: str, run: Callable[[], object]) -> tuple[object, float]:
    """``run()``'s result and its wall seconds, queued GPU work included."""
    synchronise(device)
    start = time.perf_counter()
    result = run()
    synchronise(device)
    return result, time.perf_counter() - start


# ---------------------------------------------------------------- 1. the card


def _driver() -> str | None:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else None


def _commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=30,
                              check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def card(device: str) -> dict:
    """The machine: card name, memory, driver, torch and its CUDA version, CPU cores, Python, commit."""
    facts = {"device": device, "torch": torch.__version__, "torch_cuda": torch.version.cuda,
             "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
             "python": platform.python_version(), "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
             "commit": _commit()}
    if device.startswith("cuda"):
        properties = torch.cuda.get_device_properties(device)
        facts.update(name=properties.name, memory_gib=properties.total_memory / 2**30,
                     multiprocessors=properties.multi_processor_count,
                     capability=f"{properties.major}.{properties.minor}", driver=_driver())
    else:
        facts.update(name=f"CPU ({platform.machine()})", memory_gib=None, driver=None)
    return facts


# ---------------------------------------------------------------- 2. the cuda tests


def cuda_tests() -> dict:
    """Run ``pytest -m cuda tests/test_cuda.py``; its exit code, summary line and output's tail."""
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider",
               "tests/test_cuda.py"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return {"command": " ".join(command[1:]), "exit_code": done.returncode,
            "summary": lines[-1].strip("= ") if lines else "", "output_tail": (done.stdout + done.stderr)[-4000:]}


# ---------------------------------------------------------------- 3. CPU against GPU


def key_differences(a: Key, b: Key) -> list[str]:
    """Names of the fields where two keys differ: arrays byte for byte (dtype and shape too), the rest by ``==``;
    all but ``created_utc``, the time each was made."""
    differ = []
    for field in dataclasses.fields(Key):
        if field.name == "created_utc":
            continue
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            x, y = np.asarray(x), np.asarray(y)
            same = x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        else:
            same = x == y
        if not same:
            differ.append(field.name)
    return differ


def _largest(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


def compare_demo(models: dict[str, AMIFModel], slices: int | None) -> dict:
    """The demo pair through the volume pipeline on both devices (``slices``: its middle ones only, for the dry run)."""
    import SimpleITK as sitk

    from amif_core.data.demo_files import DEMO_MRI, DEMO_PET
    from amif_core.evaluation.archive import clean_fusion
    from amif_core.inference.pipeline import protect_volume, protected_voxels, unlock_volume
    from amif_core.io.volumes import read_volume

    mri, pet = read_volume(DEMO_MRI), read_volume(DEMO_PET)
    if slices is not None:
        middle = mri.GetSize()[2] // 2
        mri = mri[:, :, middle - slices // 2 : middle - slices // 2 + slices]
    made = {}
    for name, model in models.items():
        (protected, key), seconds = timed(model.device.type, lambda: protect_volume(model, mri, pet,
                                                                                   notice=lambda text: None))
        made[name] = {"protected": protected, "key": key, "seconds": seconds,
                      "clean": clean_fusion(model, mri, pet, key.axis)}
    (first, a), (second, b) = made.items()
    figures = {"size": list(mri.GetSize()), "protect_seconds": {n: m["seconds"] for n, m in made.items()},
               "clean_max_abs_diff": _largest(a["clean"], b["clean"]),
               "protected_max_abs_diff": _largest(protected_voxels(a["protected"], a["key"]),
                                                  protected_voxels(b["protected"], b["key"])),
               "key_fields_differing": key_differences(a["key"], b["key"])}
    figures["keys_identical"] = not figures["key_fields_differing"]
    for maker, unlocker in ((first, second), (second, first)):
        unlocked = sitk.GetArrayFromImage(unlock_volume(models[unlocker], made[maker]["protected"],
                                                        made[maker]["key"]))
        figures[f"unlock_psnr_{maker}_key_on_{unlocker}"] = channel_psnr(unlocked, made[maker]["clean"])
    return figures


def validation_records(root: Path, count: int) -> list:
    """``count`` validation records spread evenly over the split (every pair type)."""
    from amif_core.data.harvard import read_records, split_records

    records = split_records(read_records(root), "val")
    return [records[i * len(records) // count] for i in range(min(count, len(records)))]


def compare_slices(models: dict[str, AMIFModel], root: Path, count: int) -> dict:
    """``count`` validation slices, grey (CT) or in colour (PET, SPECT), as stored: protected with storage levels."""
    from amif_core.data.harvard import read_pair, read_rgb, source_paths
    from amif_core.evaluation.fusion import COLOUR_PAIRS

    rows = []
    (first, model_a), (second, model_b) = models.items()
    for record in validation_records(root, count):
        mri, other = read_pair(root, record)
        colour = record.pair in COLOUR_PAIRS
        if colour:
            other = read_rgb(source_paths(root, record)[1])
        levels = levels_for(colour)
        made = {name: (model.protect(mri, other, levels=levels), model.fuse_clean(mri, other))
                for name, model in models.items()}
        (pa, ca), (pb, cb) = made[first], made[second]
        rows.append({"pair": record.pair, "file": record.file, "colour": colour,
                     "clean_max_abs_diff": _largest(ca, cb), "protected_max_abs_diff": _largest(pa.image, pb.image),
                     "key_fields_differing": key_differences(pa.key, pb.key),
                     f"unlock_psnr_{first}_key_on_{second}": channel_psnr(model_b.unlock(pa.image, pa.key), ca),
                     f"unlock_psnr_{second}_key_on_{first}": channel_psnr(model_a.unlock(pb.image, pb.key), cb)})
    psnrs = [value for row in rows for name, value in row.items() if name.startswith("unlock_psnr")]
    return {"slices": len(rows), "clean_max_abs_diff": max(r["clean_max_abs_diff"] for r in rows),
            "protected_max_abs_diff": max(r["protected_max_abs_diff"] for r in rows),
            "keys_identical": sum(not r["key_fields_differing"] for r in rows),
            "unlock_psnr_min": min(psnrs), "per_slice": rows}


def compare(device: str, reference: str, data: Path, plan: Plan) -> dict:
    models = {"device": load_model(device), "reference": load_model(reference)}
    result = {"device": device, "reference": reference, "demo": compare_demo(models, plan.demo_slices)}
    if (data / "pairs.csv").is_file():
        result["validation"] = compare_slices(models, data, plan.validation_slices)
    else:
        result["validation"] = {"skipped": f"no Harvard pairs at {data}"}
    return result


# ---------------------------------------------------------------- 4. throughput


def network_rate(model: AMIFModel, batch: int, size: int, repeats: int = 3) -> dict:
    """Slices per second of the network alone (fuse + protect, and unlock) on random tensors already on the device."""
    device = str(model.device)
    net = model.net
    x = torch.rand(batch, 1, size, size, device=model.device).contiguous(memory_format=torch.channels_last)
    mask = (torch.rand(batch, 1, size, size, device=model.device) > 0.9).float()
    with torch.inference_mode():
        protected, key, _ = net.protect(net.fuse(x, x), mask)  # warm-up
        _, protect_s = timed(device, lambda: [net.protect(net.fuse(x, x), mask) for _ in range(repeats)])
        _, unlock_s = timed(device, lambda: [net.unlock(protected, key, mask) for _ in range(repeats)])
    return {"network_protect_slices_per_s": batch * repeats / protect_s,
            "network_unlock_slices_per_s": batch * repeats / unlock_s}


def profile_protect(model: AMIFModel, batch: int, size: int, rows: int = 15) -> list[dict]:
    """cProfile of one protect call of two batches: the functions with the most cumulative time."""
    mri, pet = synthetic_pair(2 * batch, size)
    profiler = cProfile.Profile()
    profiler.runcall(model.protect, mri, pet, batch_size=batch)
    synchronise(str(model.device))
    stats = pstats.Stats(profiler, stream=io.StringIO())
    stats.sort_stats("cumulative")
    top = []
    for (filename, line, function), (_, calls, _, cumulative, _) in list(stats.stats.items()):
        top.append({"function": f"{Path(filename).name}:{line}({function})", "calls": calls, "cumulative_s": cumulative})
    return sorted(top, key=lambda row: -row["cumulative_s"])[:rows]


def batch_rates(model: AMIFModel, batch: int, slices: int, size: int) -> dict:
    """``protect`` and ``unlock`` of ``slices`` slices at ``batch``: slices per second, peak GPU memory, and the
    network's own rates."""
    device = str(model.device)
    mri, pet = synthetic_pair(slices, size)
    model.protect(mri[:batch], pet[:batch], batch_size=batch)  # warm-up at this batch's shapes
    reset_peak(device)
    protected, protect_s = timed(device, lambda: model.protect(mri, pet, batch_size=batch))
    protect_peak = peak_bytes(device)
    reset_peak(device)
    _, unlock_s = timed(device, lambda: model.unlock(protected.image, protected.key, batch_size=batch))
    return {"batch": batch, "slices": slices, "protect_slices_per_s": slices / protect_s,
            "unlock_slices_per_s": slices / unlock_s, "protect_peak_gpu_bytes": protect_peak,
            "unlock_peak_gpu_bytes": peak_bytes(device), **network_rate(model, batch, size)}


def throughput(device: str, plan: Plan, deadline: float) -> dict:
    model = load_model(device)
    rows = []
    for batch in plan.batches:
        if time.perf_counter() > deadline:
            rows.append({"batch": batch, "skipped": "time budget spent"})
            continue
        try:
            rows.append(batch_rates(model, batch, max(2 * batch, plan.min_slices), plan.slice_size))
        except Exception as error:  # an out-of-memory batch is a figure too; the smaller ones stand
            rows.append({"batch": batch, "error": f"{type(error).__name__}: {error}"[:2000]})
            release_cached_memory(device)
    measured = [row for row in rows if "protect_slices_per_s" in row]
    result = {"slice_size": plan.slice_size, "rows": rows}
    if measured:
        best = max(measured, key=lambda row: row["protect_slices_per_s"])
        result.update(best_batch=best["batch"], best_protect_slices_per_s=best["protect_slices_per_s"],
                      protect_target_slices_per_s=PROTECT_TARGET,
                      profile_at_best_batch=profile_protect(model, best["batch"], plan.slice_size))
    return result


# ---------------------------------------------------------------- 5. amif fuse from the command line

_CHILD = """
import json, resource, sys
from amif_core.cli.main import main
code = main(sys.argv[2:])
torch = sys.modules.get("torch")
gpu = torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()
with open(sys.argv[1], "w") as report:
    json.dump({"code": code, "peak_gpu_bytes": int(torch.cuda.max_memory_allocated()) if gpu else None,
               "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}, report)
sys.exit(code)
"""


def fuse_cli(device: str, plan: Plan, deadline: float) -> list[dict]:
    """``amif fuse`` in a child process per size: wall seconds (start-up included), peak GPU and resident memory."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    rows = []
    for size in plan.fuse_sizes:
        name = "x".join(str(s) for s in size)
        if time.perf_counter() > deadline:
            rows.append({"size": name, "skipped": "time budget spent"})
            continue
        with tempfile.TemporaryDirectory(prefix="amif-gpu-check-") as temp:
            folder = Path(temp)
            make_pair(folder, size)
            command = [sys.executable, "-c", _CHILD, str(folder / "report.json"), "fuse", "mri.nrrd", "pet.nrrd",
                       "-o", "protected.nrrd", "--key", "protected.amifkey", "--device", device, "--quiet"]
            start = time.perf_counter()
            done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            row = {"size": name, "exit_code": done.returncode, "wall_s": seconds}
            if (folder / "report.json").is_file():
                row.update(json.loads((folder / "report.json").read_text()))
            if done.returncode != 0:
                row["stderr_tail"] = done.stderr[-2000:]
            rows.append(row)
    return rows


# ---------------------------------------------------------------- 6. candidates: torch.compile, bf16 backbone


class Bf16Backbone(torch.nn.Module):
    """The fusion backbone under bf16 autocast, its output back in float32 for the float32 coupling."""

    def __init__(self, backbone: torch.nn.Module, device_type: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.device_type = device_type

    def forward(self, mri: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            fused = self.backbone(mri, other)
        return fused.float()


def candidates(device: str, plan: Plan, compile_backend: str) -> dict:
    """Each candidate's protect time against float32, its released image's change and its round trip."""
    base = load_model(device)
    mri, pet = synthetic_pair(plan.candidate_slices, plan.candidate_size)
    batch = plan.candidate_batch
    base.protect(mri[:batch], pet[:batch], batch_size=batch)  # warm-up
    reference, base_s = timed(device, lambda: base.protect(mri, pet, batch_size=batch, levels=GREY_LEVELS))
    clean = base.fuse_clean(mri, pet, batch_size=batch)
    result = {"slices": plan.candidate_slices, "slice_size": plan.candidate_size, "batch": batch,
              "float32_protect_s": base_s, "round_trip_bar_db": UNLOCK_PSNR_DB, "rows": []}
    makers = {f"torch.compile(backbone, backend={compile_backend!r})":
              lambda backbone: torch.compile(backbone, backend=compile_backend),
              "bf16 autocast, backbone only": lambda backbone: Bf16Backbone(backbone, torch.device(device).type)}
    for name, wrap in makers.items():
        row: dict = {"candidate": name}
        try:
            model = load_model(device)
            model.net.backbone = wrap(model.net.backbone)
            _, row["first_call_s"] = timed(device, lambda: model.protect(mri[:batch], pet[:batch], batch_size=batch))
            made, seconds = timed(device, lambda: model.protect(mri, pet, batch_size=batch, levels=GREY_LEVELS))
            difference = np.abs(made.image.astype(np.float64) - reference.image)
            row.update(protect_s=seconds, speedup=base_s / seconds,
                       released_max_abs_diff_levels=float(difference.max() * GREY_LEVELS),
                       released_mean_abs_diff_levels=float(difference.mean() * GREY_LEVELS),
                       round_trip_psnr_db=channel_psnr(base.unlock(made.image, made.key, batch_size=batch), clean))
            row["qualifies"] = bool(row["round_trip_psnr_db"] >= UNLOCK_PSNR_DB and row["speedup"] > 1)
        except Exception as error:  # a candidate that cannot run here (no compiler, no bf16 kernels) is a finding
            row["error"] = f"{type(error).__name__}: {error}"[:2000]
        result["rows"].append(row)
    return result


# ---------------------------------------------------------------- the run


def summary(result: dict) -> str:
    """The few lines a reader needs: card, tests, cross-device figures, best throughput, fuse times, candidates."""
    lines = []
    facts = result.get("card", {})
    memory = f" ({facts['memory_gib']:.0f} GiB)" if facts.get("memory_gib") else ""
    lines.append(f"card: {facts.get('name')}{memory}, driver {facts.get('driver')}, torch {facts.get('torch')} "
                 f"CUDA {facts.get('torch_cuda')}, commit {str(facts.get('commit'))[:10]}")
    tests = result.get("tests", {})
    lines.append(f"cuda tests: {tests.get('summary', tests.get('error'))}")
    comparison = result.get("compare", {})
    demo = comparison.get("demo", {})
    if "clean_max_abs_diff" in demo:
        cross = ", ".join(f"{k[len('unlock_psnr_'):]} {v:.1f} dB" for k, v in demo.items() if k.startswith("unlock_psnr"))
        lines.append(f"demo {demo['size']}: clean max |diff| {demo['clean_max_abs_diff']:.2e}, protected "
                     f"{demo['protected_max_abs_diff']:.2e}, keys identical {demo['keys_identical']}; unlock {cross}")
    validation = comparison.get("validation", {})
    if "slices" in validation:
        lines.append(f"{validation['slices']} validation slices: clean max |diff| {validation['clean_max_abs_diff']:.2e}, "
                     f"protected {validation['protected_max_abs_diff']:.2e}, identical keys "
                     f"{validation['keys_identical']}/{validation['slices']}, lowest cross-device unlock "
                     f"{validation['unlock_psnr_min']:.1f} dB")
    for row in result.get("throughput", {}).get("rows", []):
        if "error" in row:
            lines.append(f"batch {row['batch']:4d}: {row['error'][:200]}")
        elif "protect_slices_per_s" in row:
            peak = row["protect_peak_gpu_bytes"]
            lines.append(f"batch {row['batch']:4d}: protect {row['protect_slices_per_s']:8.1f} slices/s "
                         f"(network {row['network_protect_slices_per_s']:8.1f}), unlock {row['unlock_slices_per_s']:8.1f}"
                         f", peak GPU {'-' if peak is None else f'{peak / 2**30:.2f} GiB'}")
    for row in result.get("fuse", []):
        if "wall_s" in row:
            peak = row.get("peak_gpu_bytes")
            lines.append(f"amif fuse {row['size']}: {row['wall_s']:.1f} s (exit {row['exit_code']}), peak GPU "
                         f"{'-' if peak is None else f'{peak / 2**30:.2f} GiB'}")
    for row in result.get("candidates", {}).get("rows", []):
        if "speedup" in row:
            lines.append(f"{row['candidate']}: x{row['speedup']:.2f}, released image max |diff| "
                         f"{row['released_max_abs_diff_levels']:.1f} levels, round trip "
                         f"{row['round_trip_psnr_db']:.1f} dB, qualifies {row['qualifies']}")
        elif "error" in row:
            lines.append(f"{row['candidate']}: {row['error'][:200]}")
    for part, value in result.items():
        if isinstance(value, dict) and "error" in value:
            lines.append(f"{part}: FAILED {value['error']}")
        elif isinstance(value, dict) and "skipped" in value:
            lines.append(f"{part}: skipped: {value['skipped']}")
    lines.append(f"total {result.get('seconds', 0):.0f} s")
    return "\n".join(lines) + "\n"


def save(folder: Path, result: dict) -> None:
    """Write the JSON and the summary (atomically, replacing the last part's)."""
    text = summary(result)
    write_atomically([json_output(folder / "gpu_check.json", result),
                      Output(folder / "summary.txt", lambda temp: temp.write_text(text))], force=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for gpu_check.json and summary.txt (made if absent)")
    parser.add_argument("--device", default="cuda", help="device to check (default cuda; cpu for the dry run)")
    parser.add_argument("--reference", default="cpu", help="device to compare against (default cpu)")
    parser.add_argument("--quick", action="store_true", help="small sizes: the CPU dry run")
    parser.add_argument("--data", type=Path, default=HARVARD, help=f"the Harvard pairs (default {HARVARD})")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="skip a part when fewer seconds than its reserve remain of this many (default 420)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated parts to run, for a rerun of some (default {','.join(PARTS)}; "
                             "the card is always read)")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend (default inductor)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = QUICK if args.quick else FULL
    device = resolve(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    deadline = start + args.budget_s
    result: dict = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "quick": args.quick,
                    "plan": dataclasses.asdict(plan)}
    parts: dict[str, Callable[[], object]] = {
        "card": lambda: card(device),
        "tests": cuda_tests,
        "compare": lambda: compare(device, resolve(args.reference), args.data, plan),
        "throughput": lambda: throughput(device, plan, deadline),
        "fuse": lambda: fuse_cli(device, plan, deadline),
        "candidates": lambda: candidates(device, plan, args.compile_backend),
    }
    chosen = {"card", *args.parts.split(",")}
    if chosen - set(PARTS):
        parser.error(f"unknown parts {sorted(chosen - set(PARTS))}; parts are {', '.join(PARTS)}")
    failed = False
    for name, part in parts.items():
        if name not in chosen:
            continue
        if deadline - time.perf_counter() < PARTS[name]:
            result[name] = {"skipped": f"fewer than its {PARTS[name]} s were left of the {args.budget_s:.0f} s budget"}
            continue
        print(f"[{time.perf_counter() - start:6.1f} s] {name}", flush=True)
        part_start = time.perf_counter()
        try:
            result[name] = part()
        except Exception as error:  # record it and go on: one broken part must not cost the others' figures
            result[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-3000:]}
        failed = failed or "error" in result[name] or (name == "tests" and result[name]["exit_code"] != 0)
        result.setdefault("part_seconds", {})[name] = time.perf_counter() - part_start
        result["seconds"] = time.perf_counter() - start
        save(args.out, result)
    print(summary(result), end="")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
