"""Speed and cost of the model: FLOPs per slice, CPU latency, whole-volume time.

Figures are printed, never asserted: run ``amif bench`` on an idle machine.
"""
from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from amif_core.inference.model import AMIFModel


def synthetic_pair(depth: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A head-like (depth, size, size) float32 pair: an MRI in scanner-like units with noise, and a PET blob
    (in [0, 1]) repeated on every slice."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    head = ((yy - 0.5) ** 2 / 0.18 + (xx - 0.5) ** 2 / 0.13 < 1).astype(np.float32)
    mri = head * (600 + 200 * np.sin(40 * xx) * np.cos(30 * yy))
    pet = head * np.exp(-((yy - 0.4) ** 2 + (xx - 0.6) ** 2) / 0.02)
    noise = rng.normal(0, 10, (depth, size, size)).astype(np.float32)
    return (mri[None] + noise).astype(np.float32), np.repeat(pet[None], depth, axis=0).astype(np.float32)


def flops_per_slice(model: AMIFModel, size: int = 256) -> dict[str, float]:
    """GFLOPs (torch.utils.flop_counter) of protect and unlock for one size x size slice."""
    net = model.net
    x = torch.rand(1, 1, size, size, device=model.device)
    mask = (torch.rand(1, 1, size, size, device=model.device) > 0.85).float()
    with torch.inference_mode():
        with FlopCounterMode(display=False) as protect_count:
            fused = net.fuse(x, x)
            protected, key, _ = net.protect(fused, mask)
        with FlopCounterMode(display=False) as unlock_count:
            net.unlock(protected, key, mask)
    return {"protect_gflops": protect_count.get_total_flops() / 1e9,
            "unlock_gflops": unlock_count.get_total_flops() / 1e9}


def _median_seconds(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def latency(model: AMIFModel, size: int = 256, repeats: int = 40) -> dict[str, float]:
    """Median wall seconds of one protect and one unlock call on a single size x size slice, grey and in colour
    (the PET through the "pet" colour table: RGB out)."""
    mri, pet = synthetic_pair(1, size)
    figures = {}
    for suffix, options in (("", {}), ("_rgb", {"colour_table": "pet"})):
        protected = model.protect(mri[0], pet[0], **options)
        figures[f"protect{suffix}_s_per_slice"] = _median_seconds(lambda: model.protect(mri[0], pet[0], **options),
                                                                  repeats)
        figures[f"unlock{suffix}_s_per_slice"] = _median_seconds(
            lambda: model.unlock(protected.image, protected.key), repeats)
    return figures


def volume_time(model: AMIFModel, depth: int = 180, size: int = 256) -> dict[str, float]:
    """Wall seconds to protect and unlock a depth x size x size volume held in memory."""
    mri, pet = synthetic_pair(depth, size)
    start = time.perf_counter()
    protected = model.protect(mri, pet)
    middle = time.perf_counter()
    model.unlock(protected.image, protected.key)
    end = time.perf_counter()
    return {"volume_protect_s": middle - start, "volume_unlock_s": end - middle,
            "volume_protect_s_per_slice": (middle - start) / depth}


def run_benchmark(model: AMIFModel, depth: int = 180, size: int = 256, repeats: int = 40) -> dict[str, float]:
    """All figures above, plus the device and thread count they were measured with."""
    figures: dict[str, float | str] = {"device": str(model.device), "threads": torch.get_num_threads()}
    figures.update(flops_per_slice(model, size))
    figures.update(latency(model, size, repeats))
    figures.update(volume_time(model, depth, size))
    return figures
