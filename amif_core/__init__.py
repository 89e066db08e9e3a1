"""AMIF: authorizable medical image fusion with a built-in, key-protected identifier.

    import amif_core
    model = amif_core.load_model(device="auto")
    prot = model.protect(mri, other)        # prot.image (identifier visible), prot.key
    clean = model.unlock(prot.image, prot.key)
"""
from __future__ import annotations

from pathlib import Path

from amif_core.engine.inference import AMIFModel, Protected
from amif_core.errors import (
    AMIFError,
    CancelledError,
    ImageModifiedError,
    InputError,
    KeyFormatError,
    KeyMismatchError,
    ModelMismatchError,
    WrongPassphraseError,
)
from amif_core.keys import Key

__version__ = "0.2.0"

__all__ = [
    "AMIFError", "AMIFModel", "CancelledError", "ImageModifiedError", "InputError", "Key", "KeyFormatError",
    "KeyMismatchError", "ModelMismatchError", "Protected", "WrongPassphraseError", "__version__", "load_model",
]


def load_model(device: str = "auto", weights: str | Path | None = None, batch_size: int = 4) -> AMIFModel:
    """Load the shipped weights (or ``weights``) onto ``device``.

    ``device``: "auto" (CUDA, then Apple MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
    """
    from amif_core.engine.devices import resolve_device
    from amif_core.engine.weights import load_weights

    net, model_id, metadata = load_weights(weights)
    return AMIFModel(net, resolve_device(device), model_id, metadata, batch_size=batch_size)
