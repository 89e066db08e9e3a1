"""Shared pytest fixtures: the loaded model and the Harvard data location."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import amif_core
from amif_core.inference.weights import DEFAULT_WEIGHTS

HARVARD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "harvard"


@pytest.fixture(scope="session")
def weights_file() -> Path:
    """The shipped weights file."""
    return DEFAULT_WEIGHTS


@pytest.fixture(scope="session")
def model(weights_file: Path) -> amif_core.AMIFModel:
    """The model of ``weights_file`` on the CPU (2 threads, as the speed targets assume)."""
    torch.set_num_threads(2)
    return amif_core.load_model("cpu", weights=weights_file)


@pytest.fixture(scope="session")
def harvard() -> Path:
    """Path of ../shared/data/harvard, or skip the test when it is absent."""
    if not (HARVARD / "pairs.csv").is_file():
        pytest.skip(f"needs the Harvard pairs at {HARVARD} (../shared is absent on this machine)")
    return HARVARD
