"""Fixtures for the headless AMIFSlicer tests: real MRML scenes (slicer-core), the weights, a protected phantom.

The module folder goes on ``sys.path`` (as Slicer does), and ``amif_core`` is
found in the checkout the same way the module finds it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[2]
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from AMIFSlicerLib.bootstrap import ensureAmifCoreImportable  # noqa: E402

ensureAmifCoreImportable(MODULE_DIR)

import slicer  # noqa: E402
import torch  # noqa: E402
from amifslicer_testing import voxelDigest  # noqa: E402
from AMIFSlicerLib.logic import AMIFSceneLogic  # noqa: E402
from rendering import HeadlessViews  # noqa: E402
from AMIFSlicerLib.testdata import addPhantomPair  # noqa: E402

import amif_core  # noqa: E402
from amif_core.inference.weights import DEFAULT_WEIGHTS  # noqa: E402

SHARED_MRI_SHAPE = (8, 56, 48)  # (k, j, i): 8 slices of 56 x 48 voxels


@dataclass
class Workspace:
    """A fresh MRML scene with headless views and an AMIF logic on it."""

    scene: slicer.vtkMRMLScene
    views: HeadlessViews
    logic: AMIFSceneLogic
    directory: Path


@dataclass
class ProtectedPhantom(Workspace):
    """A workspace holding a phantom MRI/PET pair protected once (shared by many tests: treat as read-only)."""

    mri: slicer.vtkMRMLScalarVolumeNode
    pet: slicer.vtkMRMLScalarVolumeNode
    protected: slicer.vtkMRMLScalarVolumeNode
    keyPath: Path
    inputDigests: tuple[str, str]
    notices: list[str]


def makeWorkspace(weightsPath: Path, directory: Path) -> Workspace:
    """A new scene (also set as ``slicer.mrmlScene``) with views and logic; its data directory is ``directory``."""
    scene = slicer.vtkMRMLScene()
    scene.SetRootDirectory(str(directory))
    slicer.mrmlScene = scene
    views = HeadlessViews(scene)
    return Workspace(scene, views, AMIFSceneLogic(scene, views.applicationLogic, weightsPath), directory)


@pytest.fixture(scope="session")
def weightsPath() -> Path:
    """The shipped weights."""
    torch.set_num_threads(2)
    return DEFAULT_WEIGHTS


@pytest.fixture(scope="session")
def coreModel(weightsPath: Path) -> amif_core.AMIFModel:
    """The same weights loaded directly through amif_core, on the CPU."""
    return amif_core.load_model("cpu", weights=weightsPath)


@pytest.fixture
def workspace(weightsPath: Path, tmp_path: Path) -> Workspace:
    """A fresh scene for one test."""
    space = makeWorkspace(weightsPath, tmp_path)
    yield space
    space.views.close()


@pytest.fixture(scope="session")
def protectedPhantom(weightsPath: Path, tmp_path_factory: pytest.TempPathFactory) -> ProtectedPhantom:
    """An oblique, anisotropic phantom MRI and a PET on another grid, protected once on the CPU."""
    directory = tmp_path_factory.mktemp("protected")
    space = makeWorkspace(weightsPath, directory)
    mri, pet = addPhantomPair(space.scene, SHARED_MRI_SHAPE)
    digests = (voxelDigest(mri), voxelDigest(pet))
    keyPath = directory / "phantom.amifkey"
    notices: list[str] = []
    protected = space.logic.protect(mri, pet, keyPath, device="cpu", notice=notices.append)
    yield ProtectedPhantom(space.scene, space.views, space.logic, directory, mri, pet, protected, keyPath, digests,
                           notices)
    space.views.close()
