"""Device selection shared by inference, training and the command line."""
from __future__ import annotations

import torch

from amif_core.errors import InputError


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
        raise InputError("Unknown device {device!r}; devices are auto, cpu, cuda, cuda:N or mps.", device=device,
                         setting="device", value=device) from error
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = resolved.index or 0
        if index >= count:
            raise InputError("Device {device!r} is not available: this machine has {count} CUDA device(s).",
                             device=device, count=count, setting="device", value=device)
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("Device 'mps' is not available on this machine.", setting="device", value=device)
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise InputError("Unsupported device {device!r}; devices are auto, cpu, cuda, cuda:N or mps.", device=device,
                         setting="device", value=device)
    return resolved
