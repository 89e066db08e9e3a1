"""The embedded demo: protect and unlock the bundled MRI/PET pair, no user data needed.

The bundled pair (amif_core/data/demo, made by scripts/make_demo_data.py) is
an MNI152 T1 MRI and a synthetic FDG-like PET on a coarser grid, so the demo
also exercises resampling.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from amif_core.constants import DEFAULT_IDENTIFIER
from amif_core.data.demo_files import DEMO_MRI, DEMO_PET
from amif_core.inference.model import AMIFModel
from amif_core.runtime.callbacks import Progress
from amif_core.inference.pipeline import protect_volume, unlock_volume
from amif_core.atomic import check_outputs, write_atomically
from amif_core.io.geometry import resample_to_reference
from amif_core.io.volumes import read_volume, volume_output
from amif_core.key.file import key_output, read_key
from amif_core.montage import MontageColumn, hottest_point, png_output, render_montage

DEMO_TABLE = "pet"  # the demo fuses in colour, the PET through the hot-iron table
OUTPUT_NAMES = {"protected": "protected.nrrd", "key": "protected.amifkey", "unlocked": "unlocked.nrrd",
                "montage": "montage.png"}


def demo_paths(out_dir: str | Path) -> dict[str, Path]:
    """The files the demo writes into ``out_dir``, by role (see ``OUTPUT_NAMES``)."""
    return {role: Path(out_dir) / name for role, name in OUTPUT_NAMES.items()}


def demo_montage(mri: sitk.Image, pet: sitk.Image, protected: sitk.Image, unlocked: sitk.Image) -> np.ndarray:
    """The demo's montage, (H, W, 3) uint8: columns MRI, PET (through the demo table), protected and unlocked (RGB,
    on the MRI grid); rows axial, coronal and sagittal through the PET's hottest point, the lesion, marked."""
    columns = [MontageColumn("MRI", mri), MontageColumn("PET", resample_to_reference(pet, mri)[0], DEMO_TABLE),
               MontageColumn("Protected", protected, "rgb"), MontageColumn("Unlocked", unlocked, "rgb")]
    return render_montage(columns, centre=hottest_point(pet))


def run_demo(model: AMIFModel, out_dir: str | Path, force: bool = False, identifier: str = DEFAULT_IDENTIFIER,
             progress: Callable[[str], Progress | None] = lambda stage: None,
             notice: Callable[[str], None] = print, mri_path: Path | None = None,
             pet_path: Path | None = None) -> dict[str, Path]:
    """Protect the demo pair in colour, unlock it from the written files, and write a montage.

    Writes into ``out_dir`` (created if needed): the protected volume, its
    key (not encrypted: demo data), the unlocked volume and a PNG montage
    (axial, coronal and sagittal rows through the PET's hottest point, the
    demo's lesion, marked by ticks; MRI, PET, protected and unlocked columns;
    the fusions are RGB, the PET's hot-iron colours on the fused luma). Refuses to replace existing files unless ``force``; after a
    failure or interruption none of them is left. ``progress(stage)`` gives the
    progress callback of stage "protect" or "unlock". ``mri_path``/``pet_path``
    replace the bundled pair. Returns the paths by role.
    """
    mri_path, pet_path = mri_path or DEMO_MRI, pet_path or DEMO_PET
    out_dir = Path(out_dir)
    paths = demo_paths(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        check_outputs(list(paths.values()), force, inputs=[mri_path, pet_path])
        mri, pet = read_volume(mri_path), read_volume(pet_path)
        protected, key = protect_volume(model, mri, pet, identifier, colour_table=DEMO_TABLE,
                                        progress=progress("protect"), notice=notice)
        write_atomically([volume_output(protected, paths["protected"]), key_output(paths["key"], key)], force)
        try:
            saved, saved_key = read_volume(paths["protected"]), read_key(paths["key"])
            unlocked = unlock_volume(model, saved, saved_key, progress=progress("unlock"))
            write_atomically([volume_output(unlocked, paths["unlocked"]),
                              png_output(demo_montage(mri, pet, protected, unlocked), paths["montage"])], force)
        except BaseException:
            paths["protected"].unlink(missing_ok=True)
            paths["key"].unlink(missing_ok=True)
            raise
    except BaseException:
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    return paths
