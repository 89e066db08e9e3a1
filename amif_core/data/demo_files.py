"""Where the bundled demo pair lies (made by scripts/make_demo_data.py); torch-free, for the Slicer sample data too."""
from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_MRI = DEMO_DIR / "mri.nrrd"
DEMO_PET = DEMO_DIR / "pet.nrrd"
