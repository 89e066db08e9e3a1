"""The bundled demo pair as a Sample Data entry: one click loads the MNI152 MRI and the synthetic PET.

The volumes ship inside the extension (``amif_core/data/demo``), so the
entry loads them from disk instead of downloading anything.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

SAMPLE_CATEGORY = "AMIF"
SAMPLE_NAME = "AMIF demo MRI and PET"
NODE_NAMES = ("AMIF demo MRI", "AMIF demo PET")


def demoVolumePaths() -> tuple[Path, Path]:
    """The bundled demo MRI and PET files (torch-free: usable before PyTorch is installed)."""
    from amif_core.data.demo_files import DEMO_MRI, DEMO_PET

    return DEMO_MRI, DEMO_PET


def loadDemo(loadVolume: Callable[[str, dict], object]) -> list:
    """Load the demo pair with ``loadVolume(path, properties)`` (``slicer.util.loadVolume``); returns the nodes,
    named :data:`NODE_NAMES`."""
    return [loadVolume(str(path), {"name": name}) for path, name in zip(demoVolumePaths(), NODE_NAMES)]
