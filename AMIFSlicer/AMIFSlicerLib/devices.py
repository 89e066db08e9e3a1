"""Compute devices: what can run AMIF here, how much memory a run needs, and what to do when it runs out.

Device ids are torch device strings ("cpu", "cuda:0", "mps") plus "auto".
``torch`` is imported only by the functions that need it, and only once it
is installed.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Callable, TypeVar

from AMIFSlicerLib.errors import MemoryLimitError

AUTO = "auto"
CPU = "cpu"
# Host memory per voxel of the MRI grid: copies of both inputs, the resampled
# second scan, the protected output, its node copy and the key (conservative).
HOST_BYTES_PER_VOXEL = 48
# Network activations per pixel of one padded slice (measured on the CPU in
# inference mode at 256x256 and 512x512: about 800 bytes; unlock needs less).
DEVICE_BYTES_PER_PIXEL = 900
DEVICE_MEMORY_HEADROOM = 0.8  # use at most this fraction of the free GPU memory
CPU_BATCH_SIZE = 1  # slice by slice: progress and Cancel stay responsive; CPUs gain little from batching
UNKNOWN_GPU_BATCH_SIZE = 4  # GPUs that do not report free memory (Apple MPS)
MAX_GPU_BATCH_SIZE = 16
PAD_MULTIPLE = 8  # slices are padded to multiples of 8 by the network
OUT_OF_MEMORY_PHRASES = ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory")

T = TypeVar("T")


@dataclass(frozen=True)
class DeviceOption:
    """One entry of the device list: ``deviceId`` for the logic, ``label`` for the panel."""

    deviceId: str
    label: str


@dataclass(frozen=True)
class RunPlan:
    """How a run will go: the device (resolved, e.g. "cuda:0"), slices per batch and the memory estimate."""

    device: str
    batchSize: int
    hostBytes: int
    deviceBytes: int
    notes: tuple[str, ...] = ()


def torchInstalled() -> bool:
    """True when the ``torch`` package can be imported (without importing it)."""
    return "torch" in sys.modules or importlib.util.find_spec("torch") is not None


def deviceLabel(device: str) -> str:
    """Human name of a device id: "CPU", "GPU 0", "Apple GPU (MPS)" or "automatic choice"."""
    if device == AUTO:
        return "automatic choice"
    if device.startswith("cuda"):
        return f"GPU {device.partition(':')[2] or '0'}"
    if device == "mps":
        return "Apple GPU (MPS)"
    return device.upper()


def availableDevices() -> list[DeviceOption]:
    """The device list for the panel: automatic, each CUDA GPU with its memory, Apple MPS, then the CPU.

    Before PyTorch is installed only automatic and CPU are listed.
    """
    options = [DeviceOption(AUTO, "Automatic (GPU when available, else CPU)")]
    if torchInstalled():
        import torch

        if torch.cuda.is_available():
            for index in range(torch.cuda.device_count()):
                properties = torch.cuda.get_device_properties(index)
                options.append(DeviceOption(
                    f"cuda:{index}", f"GPU {index}: {properties.name} ({properties.total_memory / 2**30:.1f} GB)"))
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            options.append(DeviceOption("mps", "Apple GPU (MPS)"))
    options.append(DeviceOption(CPU, "CPU"))
    return options


def resolveDevice(requested: str) -> str:
    """The device that ``requested`` means here, with the CUDA index made explicit ("auto" -> "cuda:0")."""
    from amif_core.engine.devices import resolve_device

    device = resolve_device(requested)
    if device.type == "cuda":
        import torch

        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return device.type


def freeHostMemory() -> int | None:
    """Bytes of RAM available to a new allocation, or None when this platform does not say."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    if hasattr(os, "sysconf") and "SC_AVPHYS_PAGES" in os.sysconf_names:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return None


def freeDeviceMemory(device: str) -> int | None:
    """Free memory of a GPU in bytes (CUDA only), or None for the CPU and devices that do not report it."""
    if not device.startswith("cuda"):
        return None
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def _gigabytes(value: int) -> str:
    return f"{value / 2**30:.1f} GB"


def _paddedPixels(rows: int, columns: int) -> int:
    return (-(-rows // PAD_MULTIPLE) * PAD_MULTIPLE) * (-(-columns // PAD_MULTIPLE) * PAD_MULTIPLE)


def planRun(voxels: int, sliceShape: tuple[int, int], device: str, automatic: bool,
            freeHostBytes: int | None, freeDeviceBytes: int | None) -> RunPlan:
    """Decide batch size and device for a run over ``voxels`` voxels in slices of ``sliceShape``.

    ``device`` is the resolved device and ``automatic`` whether the user chose
    "auto". Raises :class:`MemoryLimitError` when the volume cannot fit this
    computer's free memory, or an explicitly chosen GPU even one slice at a
    time; with "auto", a GPU too small for one slice gives way to the CPU.
    """
    perSlice = _paddedPixels(*sliceShape) * DEVICE_BYTES_PER_PIXEL
    hostBytes = voxels * HOST_BYTES_PER_VOXEL
    notes: list[str] = []
    if device != CPU and freeDeviceBytes is not None:
        batch = min(MAX_GPU_BATCH_SIZE, int(freeDeviceBytes * DEVICE_MEMORY_HEADROOM) // perSlice)
        if batch >= 1:
            return _checkedHost(RunPlan(device, batch, hostBytes, batch * perSlice), freeHostBytes)
        message = (f"{deviceLabel(device)} has {_gigabytes(freeDeviceBytes)} of memory free, but one slice needs about "
                   f"{_gigabytes(perSlice)}.")
        if not automatic:
            raise MemoryLimitError(f"{message} Choose CPU as the device, or free GPU memory, and try again.")
        notes.append(f"{message} Running on the CPU instead.")
        device = CPU
    if device != CPU:
        return _checkedHost(RunPlan(device, UNKNOWN_GPU_BATCH_SIZE, hostBytes, UNKNOWN_GPU_BATCH_SIZE * perSlice),
                            freeHostBytes)
    return _checkedHost(RunPlan(CPU, CPU_BATCH_SIZE, hostBytes + CPU_BATCH_SIZE * perSlice,
                                CPU_BATCH_SIZE * perSlice, tuple(notes)), freeHostBytes)


def _checkedHost(plan: RunPlan, freeHostBytes: int | None) -> RunPlan:
    if freeHostBytes is not None and plan.hostBytes > freeHostBytes:
        raise MemoryLimitError(
            f"This volume needs about {_gigabytes(plan.hostBytes)} of memory, but only {_gigabytes(freeHostBytes)} "
            "is free. Close other applications, or crop the volumes to the region of interest (Crop Volume module), "
            "and try again.")
    return plan


def isOutOfMemory(error: BaseException) -> bool:
    """True for out-of-memory failures of PyTorch (CUDA, MPS, CPU allocator) and numpy."""
    if isinstance(error, MemoryError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(error, getattr(torch, "OutOfMemoryError", ())):
        return True
    return isinstance(error, RuntimeError) and any(p in str(error).lower() for p in OUT_OF_MEMORY_PHRASES)


def releaseCachedMemory(device: str) -> None:
    """Give cached GPU memory back after a failed attempt (no-op on the CPU)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    elif device == "mps":
        torch.mps.empty_cache()


def runWithMemoryFallback(run: Callable[[str, int], T], plan: RunPlan, notice: Callable[[str], None]
                          ) -> tuple[T, str]:
    """Call ``run(device, batchSize)``; on out-of-memory halve the batch, then fall back to the CPU.

    Returns ``(result, device that ran)``. Each retry is announced through
    ``notice``. Raises :class:`MemoryLimitError` when even the CPU, one slice
    at a time, runs out of memory; other errors pass through at once.
    """
    device, batch = plan.device, plan.batchSize
    while True:
        try:
            return run(device, batch), device
        except Exception as error:
            if not isOutOfMemory(error):
                raise
            releaseCachedMemory(device)
            if batch > 1:
                notice(f"{deviceLabel(device)} ran out of memory with {batch} slices at a time; "
                       f"retrying with {batch // 2}.")
                batch //= 2
            elif device != CPU:
                notice(f"{deviceLabel(device)} ran out of memory even with one slice at a time; "
                       "falling back to the CPU.")
                device, batch = CPU, CPU_BATCH_SIZE
            else:
                raise MemoryLimitError(
                    "This computer ran out of memory even with one slice at a time on the CPU. Close other "
                    "applications or crop the volumes (Crop Volume module), and try again.") from error
