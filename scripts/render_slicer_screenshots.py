#!/usr/bin/env python3
"""Render the 3D Slicer screenshots of the README from real MRML slice views, headless.

Loads the bundled demo volumes (``amif_core/data/demo``) into an MRML scene
with Slicer's own reader, runs the AMIFSlicer logic (protect, then unlock)
exactly as the module does, switches to the module's comparison layouts and
renders each slice view through ``vtkMRMLSliceLogic`` (slicer-core), so the
pictures show what Slicer shows: colour tables, window/level and linked
views included. Writes:

* ``docs/images/slicer-comparison.png``: MRI | PET | AMIF protected
* ``docs/images/slicer-unlock.png``: AMIF protected | AMIF unlocked

Uses the default weights (``amif_core/weights/amif_v3.pt``) unless ``--weights`` is given.

Usage::

    python scripts/render_slicer_screenshots.py [--out DIR] [--weights PATH]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO_ROOT / "AMIFSlicer"
sys.path[:0] = [str(MODULE_DIR), str(MODULE_DIR / "Testing" / "Python"), str(REPO_ROOT)]  # rendering: test support

import slicer  # noqa: E402
from AMIFSlicerLib import display  # noqa: E402
from AMIFSlicerLib.logic import AMIFSceneLogic  # noqa: E402
from rendering import HeadlessViews, composeViews  # noqa: E402

from amif_core.inference.weights import DEFAULT_WEIGHTS  # noqa: E402

DEMO = REPO_ROOT / "amif_core" / "data" / "demo"
DEFAULT_OUT = REPO_ROOT / "docs" / "images"
VIEW_SIZE = (360, 360)
SLICE_OFFSET_MM = 30.0  # axial slice through the demo PET's lesion (see scripts/make_demo_data.py)


def loadVolume(scene: slicer.vtkMRMLScene, path: Path) -> slicer.vtkMRMLScalarVolumeNode:
    """Read a volume file with Slicer's archetype reader, named after the file as "Add data" names it."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", path.name.split(".")[0])
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        raise SystemExit(f"could not read {path}")
    node.SetAndObserveStorageNodeID(storage.GetID())
    node.CreateDefaultDisplayNodes()
    return node


def setSliceOffset(views: HeadlessViews, layoutId: int, offset: float) -> None:
    """Move every view of an AMIF layout to the same axial position."""
    for view in display.LAYOUT_VIEWS[layoutId]:
        views.sliceLogic(view.name).SetSliceOffset(offset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="weights file (default: the shipped weights)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="amif-screenshots-"))
    weights = args.weights
    if not weights.is_file():
        raise SystemExit(f"weights not found at {weights}: pass --weights")

    scene = slicer.vtkMRMLScene()
    scene.SetRootDirectory(str(work))
    slicer.mrmlScene = scene
    views = HeadlessViews(scene, VIEW_SIZE)
    logic = AMIFSceneLogic(scene, views.applicationLogic, weights)
    mri, pet = loadVolume(scene, DEMO / "mri.nrrd"), loadVolume(scene, DEMO / "pet.nrrd")
    keyPath = work / "demo.amifkey"  # never next to the bundled demo files

    start = time.time()
    protected = logic.protect(mri, pet, keyPath, device="cpu", notice=lambda text: print(f"  {text}"),
                              progress=lambda done, total: print(f"\r  protect: {done}/{total} slices", end=""))
    print(f"\nprotected in {time.time() - start:.0f} s")
    start = time.time()
    unlocked = logic.unlock(protected, keyPath, device="cpu",
                            progress=lambda done, total: print(f"\r  unlock: {done}/{total} slices", end=""))
    print(f"\nunlocked in {time.time() - start:.0f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    logic.showComparison(mri, pet, protected)
    setSliceOffset(views, display.COMPARISON_LAYOUT_ID, SLICE_OFFSET_MM)
    comparison = composeViews([views.render(view.name) for view in (display.MRI_VIEW, display.OTHER_VIEW,
                                                                     display.PROTECTED_VIEW)],
                              ["MRI", "PET (PET-Heat colours)", "AMIF protected"])
    comparison.save(args.out / "slicer-comparison.png", optimize=True)

    logic.showUnlocked(protected, unlocked)
    setSliceOffset(views, display.UNLOCK_LAYOUT_ID, SLICE_OFFSET_MM)
    unlock = composeViews([views.render(view.name) for view in (display.PROTECTED_VIEW, display.UNLOCKED_VIEW)],
                          ["AMIF protected", "AMIF unlocked (with the key)"])
    unlock.save(args.out / "slicer-unlock.png", optimize=True)
    views.close()
    print(f"wrote {args.out / 'slicer-comparison.png'} and {args.out / 'slicer-unlock.png'}")


if __name__ == "__main__":
    main()
