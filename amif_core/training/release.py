"""Turning a trained network into the shipped weights file, with its provenance."""
from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path

from amif_core.data.harvard import VALIDATION_PATIENTS, manifest_hash
from amif_core.inference.weights import save_weights
from amif_core.networks.amif import AMIFNet
from amif_core.training.trainer import TrainConfig


def git_commit(repo: Path | None = None) -> str:
    """HEAD commit of the checkout holding amif_core, with "-dirty" if tracked files changed; "unknown" outside git."""
    where = repo or Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def release_weights(net: AMIFNet, config: TrainConfig, validation: dict, path: Path, overwrite: bool = False) -> str:
    """Write ``net`` to ``path`` with its training config, data manifest hash, git commit and
    validation results; returns the model id (SHA-256 of the file)."""
    metadata = {
        "training": config.to_dict(),
        "validation_patients": {k: list(v) for k, v in VALIDATION_PATIENTS.items()},
        "data_manifest_sha256": manifest_hash(Path(config.data)),
        "git_commit": git_commit(),
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "validation": validation,
    }
    return save_weights(net, path, metadata, overwrite=overwrite)
