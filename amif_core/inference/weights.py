"""Reading and writing the AMIF weights file.

The file is a ``torch.save`` dict that loads with ``weights_only=True``::

    format      "amif-weights"
    version     1
    config      AMIFConfig.to_dict()
    state_dict  the network parameters (float32)
    training    the TrainConfig used, as a dict
    data_manifest_sha256, git_commit, created_utc
    validation  the validation metrics measured after training

The model id used in keys is the SHA-256 of the file's bytes.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from amif_core.errors import AMIFError
from amif_core.atomic import Output, write_atomically
from amif_core.networks.amif import AMIFConfig, AMIFNet
from amif_core.networks.fusion import FusionConfig

WEIGHTS_FORMAT = "amif-weights"
SHIPPED_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = SHIPPED_WEIGHTS_DIR / "amif_v3.pt"


def model_id_of(path: Path) -> str:
    """The model id of a weights file: the SHA-256 (hex) of its bytes, as keys record it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def shipped_weights(model_id: str) -> Path | None:
    """The weights file shipped with amif_core whose model id is ``model_id``, or None when none is.

    Earlier weights stay shipped so that keys made before an upgrade still unlock.
    """
    for path in sorted(SHIPPED_WEIGHTS_DIR.glob("*.pt")):
        if model_id_of(path) == model_id:
            return path
    return None


def weights_for_key(model_id: str, chosen: Path | None) -> Path | None:
    """The weights to unlock a key made by ``model_id`` with: ``chosen`` when the user named a file, else the
    shipped file that made the key, else None (the default weights, which the key check then refuses by name)."""
    return chosen if chosen is not None else shipped_weights(model_id)


def save_weights(net: AMIFNet, path: Path, metadata: dict, overwrite: bool = False) -> str:
    """Write ``net`` with ``metadata`` atomically; returns the model id (SHA-256 hex)."""
    path = Path(path)
    buffer = io.BytesIO()
    state = {k: v.detach().cpu().float().clone() for k, v in net.state_dict().items()}
    torch.save({"format": WEIGHTS_FORMAT, "version": 1, "config": net.config.to_dict(), "state_dict": state,
                **metadata}, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically([Output(path, lambda temp: temp.write_bytes(buffer.getvalue()))], force=overwrite)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def load_weights(path: Path | None = None) -> tuple[AMIFNet, str, dict]:
    """Load a weights file -> (network on CPU in eval mode, model id, metadata dict)."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise AMIFError("AMIF weights not found at {path}. Reinstall amif-core or pass the weights path.", path=path)
    raw = path.read_bytes()
    try:
        payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as error:
        raise AMIFError("{path} is not a readable AMIF weights file: {reason}", path=path, reason=error) from error
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise AMIFError("{path} is not an AMIF weights file.", path=path)
    net = AMIFNet(AMIFConfig.from_dict(payload["config"]))
    net.load_state_dict(payload["state_dict"])
    metadata = {k: v for k, v in payload.items() if k not in ("state_dict",)}
    return net.eval(), hashlib.sha256(raw).hexdigest(), metadata


def load_backbone_state(path: Path) -> tuple[dict[str, torch.Tensor], FusionConfig]:
    """The fusion backbone of a weights file, even one whose CCWM or C-SAMIC differ from today's.

    Returns (backbone state dict, its FusionConfig); used to retrain only what
    follows the backbone.
    """
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise AMIFError("{path} is not an AMIF weights file.", path=path)
    prefix = "backbone."
    state = {k[len(prefix):]: v for k, v in payload["state_dict"].items() if k.startswith(prefix)}
    return state, FusionConfig.from_dict(payload["config"]["fusion"])
