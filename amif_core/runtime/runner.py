"""The run policy shared by every front end: devices, the memory plan, and what to do when memory runs out.

Device ids are torch device strings ("cpu", "cuda:0", "mps") plus "auto".
:func:`plan_run` picks the batch size from the free memory;
:func:`run_with_memory_fallback` retries an out-of-memory run with half the
batch, then on the CPU, and says so through ``notice``; :func:`trimming`
wraps a progress callback so that each batch's freed memory goes back to the
system. ``torch`` is imported only by the functions that need it, and only
once it is installed, so a front end can list devices before PyTorch is.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, TypeVar

from amif_core.constants import padded
from amif_core.errors import MemoryLimitError
from amif_core.runtime.callbacks import Progress
from amif_core.runtime.heap import trim_heap

AUTO = "auto"
CPU = "cpu"
# Host memory per voxel of the MRI grid: copies of both inputs, the resampled
# second scan, the protected output, a front end's copy of it and the key (conservative).
HOST_BYTES_PER_VOXEL = 48
# Network activations per pixel of one padded slice (measured on the CPU in
# inference mode at 256x256 and 512x512: about 800 bytes; unlock needs less).
DEVICE_BYTES_PER_PIXEL = 900
DEVICE_MEMORY_HEADROOM = 0.8  # use at most this fraction of the free GPU memory
CPU_BATCH_SIZE = 1  # the panel's default: slice by slice, so progress and Cancel stay responsive
UNKNOWN_GPU_BATCH_SIZE = 4  # GPUs that do not report free memory (Apple MPS)
MAX_GPU_BATCH_SIZE = 16
OUT_OF_MEMORY_PHRASES = ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory")

T = TypeVar("T")


@dataclass(frozen=True)
class DeviceOption:
    """One entry of the device list: ``device_id`` for the core, ``label`` for people."""

    device_id: str
    label: str


@dataclass(frozen=True)
class RunPlan:
    """How a run will go: the device (resolved, e.g. "cuda:0"), slices per batch and the memory estimate."""

    device: str
    batch_size: int
    host_bytes: int
    device_bytes: int
    notes: tuple[str, ...] = ()
    cpu_batch_size: int = CPU_BATCH_SIZE  # the batch size if the run falls back to the CPU


def torch_installed() -> bool:
    """True when the ``torch`` package can be imported (without importing it)."""
    return "torch" in sys.modules or importlib.util.find_spec("torch") is not None


def device_label(device: str) -> str:
    """Human name of a device id: "CPU", "GPU 0", "Apple GPU (MPS)" or "automatic choice"."""
    if device == AUTO:
        return "automatic choice"
    if device.startswith("cuda"):
        return f"GPU {device.partition(':')[2] or '0'}"
    if device == "mps":
        return "Apple GPU (MPS)"
    return device.upper()


def torch_import_problem() -> str | None:
    """Why an installed ``torch`` fails to import (e.g. a missing CUDA DLL), or None when it imports or is absent."""
    if not torch_installed():
        return None
    try:
        import torch  # noqa: F401
    except Exception as error:  # any failure of a broken install: OSError, ImportError, RuntimeError
        return f"PyTorch is installed but cannot be imported ({type(error).__name__}: {error})."
    return None


def available_devices(probe: bool = True) -> list[DeviceOption]:
    """Automatic, each CUDA GPU with its memory, Apple MPS, then the CPU.

    Only automatic and CPU without ``probe`` (nothing is imported: a front end
    that keeps torch out of its process), before torch is installed, and when
    an installed torch fails to import (:func:`torch_import_problem` says why):
    listing devices never raises.
    """
    options = [DeviceOption(AUTO, "Automatic (GPU when available, else CPU)")]
    if probe and torch_installed() and torch_import_problem() is None:
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


def resolve(requested: str) -> str:
    """The device that ``requested`` means here, with the CUDA index made explicit ("auto" -> "cuda:0")."""
    from amif_core.runtime.devices import resolve_device

    device = resolve_device(requested)
    if device.type == "cuda":
        import torch

        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return device.type


def meminfo_available(text: str) -> int | None:
    """Bytes of ``MemAvailable`` in the text of Linux's /proc/meminfo (free memory plus reclaimable cache), or None."""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "MemAvailable":
            number, _, unit = value.strip().partition(" ")
            return int(number) * (1024 if unit.strip().lower() == "kb" else 1)
    return None


def vm_stat_available(text: str) -> int | None:
    """Bytes of free, inactive, speculative and purgeable pages in the output of macOS's ``vm_stat``, or None."""
    page = 4096
    first = text.splitlines()[0] if text else ""
    if "page size of" in first:
        page = int(first.split("page size of")[1].split()[0])
    counts = {}
    for line in text.splitlines()[1:]:
        name, _, value = line.partition(":")
        if value.strip().rstrip(".").isdigit():
            counts[name.strip()] = int(value.strip().rstrip("."))
    wanted = ("Pages free", "Pages inactive", "Pages speculative", "Pages purgeable")
    return page * sum(counts.get(name, 0) for name in wanted) if any(name in counts for name in wanted) else None


def _windows_available() -> int | None:
    import ctypes

    class MemoryStatus(ctypes.Structure):
        _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                    ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                    ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                    ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                    ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

    status = MemoryStatus()
    status.dwLength = ctypes.sizeof(MemoryStatus)
    if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
        return None
    return int(status.ullAvailPhys)


def free_host_memory() -> int | None:
    """Bytes of RAM available to a new allocation, or None when this platform does not say.

    psutil when present; else Linux's MemAvailable (free plus reclaimable
    page cache, not MemFree), Windows' GlobalMemoryStatusEx and macOS's
    ``vm_stat`` (free, inactive, speculative and purgeable pages).
    """
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        if sys.platform.startswith("linux"):
            with open("/proc/meminfo", encoding="ascii") as file:
                return meminfo_available(file.read())
        if sys.platform == "win32":
            return _windows_available()
        if sys.platform == "darwin":
            output = subprocess.run(["vm_stat"], capture_output=True, text=True, timeout=5, check=True).stdout
            return vm_stat_available(output)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return None


def free_device_memory(device: str) -> int | None:
    """Free memory of a GPU in bytes (CUDA only), or None for the CPU and devices that do not report it."""
    if not device.startswith("cuda"):
        return None
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def _gigabytes(value: int) -> str:
    return f"{value / 2**30:.1f} GB"


def plan_run(voxels: int, slice_shape: tuple[int, int], device: str, automatic: bool,
             free_host_bytes: int | None, free_device_bytes: int | None,
             cpu_batch_size: int = CPU_BATCH_SIZE) -> RunPlan:
    """Decide batch size and device for a run over ``voxels`` voxels in slices of ``slice_shape``.

    ``device`` is the resolved device and ``automatic`` whether the user chose
    "auto". Raises :class:`MemoryLimitError` (setting "device" when another
    device would do) when the volume cannot fit this computer's free memory,
    or an explicitly chosen GPU even one slice at a time; with "auto", a GPU
    too small for one slice gives way to the CPU. ``cpu_batch_size``: slices
    per batch on the CPU (the panel runs one at a time to stay responsive;
    the command line runs :data:`~amif_core.constants.DEFAULT_BATCH_SIZE`).
    """
    per_slice = padded(slice_shape[0]) * padded(slice_shape[1]) * DEVICE_BYTES_PER_PIXEL
    host_bytes = voxels * HOST_BYTES_PER_VOXEL
    notes: list[str] = []
    if device != CPU and free_device_bytes is not None:
        batch = min(MAX_GPU_BATCH_SIZE, int(free_device_bytes * DEVICE_MEMORY_HEADROOM) // per_slice)
        if batch >= 1:
            return _checked_host(RunPlan(device, batch, host_bytes, batch * per_slice,
                                         cpu_batch_size=cpu_batch_size), free_host_bytes)
        if not automatic:
            raise MemoryLimitError("{device} has {free:.1f} GB of memory free, but one slice needs about "
                                   "{needed:.1f} GB. Run on the CPU, or free GPU memory, and try again.",
                                   device=device_label(device), free=free_device_bytes / 2**30,
                                   needed=per_slice / 2**30, setting="device", value=device)
        notes.append(f"{device_label(device)} has {_gigabytes(free_device_bytes)} of memory free, but one slice needs "
                     f"about {_gigabytes(per_slice)}. Running on the CPU instead.")
        device = CPU
    if device != CPU:
        return _checked_host(RunPlan(device, UNKNOWN_GPU_BATCH_SIZE, host_bytes, UNKNOWN_GPU_BATCH_SIZE * per_slice,
                                     cpu_batch_size=cpu_batch_size), free_host_bytes)
    return _checked_host(RunPlan(CPU, cpu_batch_size, host_bytes + cpu_batch_size * per_slice,
                                 cpu_batch_size * per_slice, tuple(notes), cpu_batch_size), free_host_bytes)


def _checked_host(plan: RunPlan, free_host_bytes: int | None) -> RunPlan:
    if free_host_bytes is not None and plan.host_bytes > free_host_bytes:
        raise MemoryLimitError(
            "This volume needs about {needed:.1f} GB of memory, but only {free:.1f} GB is free. Close other "
            "applications, or crop the volumes to the region of interest, and try again.",
            needed=plan.host_bytes / 2**30, free=free_host_bytes / 2**30)
    return plan


def plan_for(voxels: int, slice_shape: tuple[int, int], requested: str, cpu_batch_size: int = CPU_BATCH_SIZE
             ) -> RunPlan:
    """:func:`plan_run` for the ``requested`` device ("auto", "cpu", ...), with this computer's free memory."""
    device = resolve(requested)
    return plan_run(voxels, slice_shape, device, requested == AUTO, free_host_memory(), free_device_memory(device),
                    cpu_batch_size)


def is_out_of_memory(error: BaseException) -> bool:
    """True for out-of-memory failures of PyTorch (CUDA, MPS, CPU allocator) and numpy."""
    if isinstance(error, MemoryError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(error, getattr(torch, "OutOfMemoryError", ())):
        return True
    return isinstance(error, RuntimeError) and any(p in str(error).lower() for p in OUT_OF_MEMORY_PHRASES)


def release_cached_memory(device: str) -> None:
    """Give cached GPU memory back after a failed attempt (no-op on the CPU)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    elif device == "mps":
        torch.mps.empty_cache()


def plan_and_run(voxels: int, slice_shape: tuple[int, int], requested: str, run: Callable[[str, int], T],
                 notice: Callable[[str], None], cpu_batch_size: int = CPU_BATCH_SIZE) -> tuple[T, str]:
    """Plan a run for the ``requested`` device (:func:`plan_for`), tell ``notice`` the plan's notes, and call
    ``run(device, batch_size)`` with the out-of-memory fallback (:func:`run_with_memory_fallback`).

    ``voxels``: of the grid the run covers; ``slice_shape``: (rows, cols) of
    one slice. Returns ``(result, device that ran)``, e.g. "cuda:0".
    """
    plan = plan_for(voxels, slice_shape, requested, cpu_batch_size)
    for note in plan.notes:
        notice(note)
    return run_with_memory_fallback(run, plan, notice)


def run_with_memory_fallback(run: Callable[[str, int], T], plan: RunPlan, notice: Callable[[str], None]
                             ) -> tuple[T, str]:
    """Call ``run(device, batch_size)``; on out-of-memory halve the batch, then fall back to the CPU.

    Returns ``(result, device that ran)``. Each retry is announced through
    ``notice``. Raises :class:`MemoryLimitError` when even the CPU, one slice
    at a time, runs out of memory; other errors pass through at once.
    """
    device, batch = plan.device, plan.batch_size
    while True:
        try:
            return run(device, batch), device
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            release_cached_memory(device)
            if batch > 1:
                notice(f"{device_label(device)} ran out of memory with {batch} slices at a time; "
                       f"retrying with {batch // 2}.")
                batch //= 2
            elif device != CPU:
                notice(f"{device_label(device)} ran out of memory even with one slice at a time; "
                       "falling back to the CPU.")
                device, batch = CPU, plan.cpu_batch_size
            else:
                raise MemoryLimitError(
                    "This computer ran out of memory even with one slice at a time on the CPU. Close other "
                    "applications or crop the volumes, and try again.") from error


def trimming(progress: Progress | None) -> Progress:
    """A progress callback that first hands each finished batch's freed memory back to the system, then calls ``progress``."""

    def update(done: int, total: int) -> None:
        trim_heap()
        if progress is not None:
            progress(done, total)

    return update
