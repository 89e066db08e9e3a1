"""AMIF: authorizable medical image fusion with a built-in, key-protected identifier.

    import amif_core
    model = amif_core.load_model(device="auto")
    prot = model.protect(mri, other)        # prot.image (identifier visible), prot.key
    clean = model.unlock(prot.image, prot.key)
    prot = model.protect(mri, pet, colour_table="pet")   # colour fusion: RGB (..., 3)

Importing the package is light: the errors and constants load at once, while
``load_model``, ``AMIFModel`` and ``Protected`` (which need torch) load on
first use, so key files and headers can be read without torch.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amif_core.constants import DEFAULT_IDENTIFIER, PAD_MULTIPLE, VERSION
from amif_core.errors import (
    AMIFError,
    CancelledError,
    ImageModifiedError,
    InputError,
    KeyFormatError,
    KeyMismatchError,
    MemoryLimitError,
    ModelMismatchError,
    WrongPassphraseError,
)

if TYPE_CHECKING:
    import numpy as np

    from amif_core.inference.model import AMIFModel, Protected
    from amif_core.key.core import Key

    COLOUR_TABLES: dict[str, np.ndarray]

__version__ = VERSION

_LAZY = {"AMIFModel": "amif_core.inference.model", "Protected": "amif_core.inference.model",
         "Key": "amif_core.key.core", "COLOUR_TABLES": "amif_core.transforms.colour"}

__all__ = [
    "AMIFError", "AMIFModel", "COLOUR_TABLES", "CancelledError", "DEFAULT_IDENTIFIER", "ImageModifiedError", "InputError", "Key",
    "KeyFormatError", "KeyMismatchError", "MemoryLimitError", "ModelMismatchError", "PAD_MULTIPLE", "Protected",
    "WrongPassphraseError", "__version__", "load_model",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'amif_core' has no attribute {name!r}")


def load_model(device: str = "auto", weights: str | Path | None = None) -> "AMIFModel":
    """Load the shipped weights (or ``weights``) onto ``device``.

    ``device``: "auto" (CUDA, then Apple MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
    """
    from amif_core.runtime.devices import resolve_device
    from amif_core.inference.model import AMIFModel
    from amif_core.inference.weights import load_weights

    net, model_id, metadata = load_weights(weights)
    return AMIFModel(net, resolve_device(device), model_id, metadata)
