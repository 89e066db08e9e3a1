"""Device selection shared by inference, training and the command line."""
from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Map "auto", "cpu", "cuda", "cuda:N" or "mps" to an available torch.device.

    "auto" picks CUDA when present, then Apple MPS, else CPU. Asking for a
    device that is not available raises ValueError naming what is.
    """
    if isinstance(device, torch.device):
        device = str(device)
    name = device.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"Unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps.") from error
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = resolved.index or 0
        if index >= count:
            raise ValueError(f"Device {device!r} is not available: this machine has {count} CUDA device(s). Use --device cpu or auto.")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("Device 'mps' is not available on this machine. Use --device cpu or auto.")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"Unsupported device {device!r}; use auto, cpu, cuda, cuda:N or mps.")
    return resolved
