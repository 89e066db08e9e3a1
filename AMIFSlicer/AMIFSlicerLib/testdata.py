"""Small synthetic MRI/PET pairs for the module's self-test and the headless tests.

The phantom is analytic in world (RAS) coordinates, so each volume samples
the same head on its own voxel grid: an MRI on an oblique, anisotropic grid
and a PET on a coarser, axis-aligned one, as from two scanners.
"""
from __future__ import annotations

import numpy as np
import slicer

from AMIFSlicerLib.volumenodes import addScalarVolumeNode

HEAD_CENTRE = np.array([2.0, -3.0, 5.0])
HEAD_RADII = np.array([34.0, 40.0, 30.0])
LESION_CENTRE = HEAD_CENTRE + np.array([12.0, 10.0, 4.0])
LESION_RADIUS = 7.0


def rotationIjkToRas(spacing: tuple[float, float, float], anglesDeg: tuple[float, float, float],
                     centre: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """IJK-to-RAS of a grid of ``shape`` (k, j, i) voxels of ``spacing`` (i, j, k) mm, rotated by
    ``anglesDeg`` about R, A and S, with its centre voxel at ``centre``."""
    rotation = np.eye(3)
    for axis, angle in enumerate(np.radians(anglesDeg)):
        c, s = np.cos(angle), np.sin(angle)
        turn = np.eye(3)
        a, b = [i for i in range(3) if i != axis]
        turn[a, a], turn[a, b], turn[b, a], turn[b, b] = c, -s, s, c
        rotation = turn @ rotation
    ijkToRas = np.eye(4)
    ijkToRas[:3, :3] = rotation * np.asarray(spacing)
    centreIjk = (np.array(shape[::-1]) - 1) / 2
    ijkToRas[:3, 3] = centre - ijkToRas[:3, :3] @ centreIjk
    return ijkToRas


def _worldPoints(shape: tuple[int, int, int], ijkToRas: np.ndarray) -> np.ndarray:
    k, j, i = np.indices(shape, dtype=np.float64)
    ijk = np.stack([i, j, k, np.ones(shape)], axis=-1)
    return (ijk @ ijkToRas.T)[..., :3]


def _headRadius(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm((points - HEAD_CENTRE) / HEAD_RADII, axis=-1)


def mriPhantom(shape: tuple[int, int, int], ijkToRas: np.ndarray, seed: int = 0) -> np.ndarray:
    """T1-like int16 (k, j, i) array: dark background, bright cortex ring, grey core, dark ventricles, mild noise."""
    radius = _headRadius(_worldPoints(shape, ijkToRas))
    values = np.where(radius < 1.0, 600.0, 0.0)
    values = np.where((radius > 0.72) & (radius < 1.0), 850.0, values)
    values = np.where(radius < 0.3, 150.0, values)
    noise = np.random.default_rng(seed).normal(0.0, 15.0, shape)
    return np.clip(values + noise * (radius < 1.05), 0, None).astype(np.int16)


def petPhantom(shape: tuple[int, int, int], ijkToRas: np.ndarray) -> np.ndarray:
    """FDG-like float32 (k, j, i) array in SUV: grey matter 7, white matter 2, a lesion of 15."""
    points = _worldPoints(shape, ijkToRas)
    radius = _headRadius(points)
    values = np.where(radius < 1.0, 2.0, 0.0)
    values = np.where((radius > 0.72) & (radius < 1.0), 7.0, values)
    values = np.where(np.linalg.norm(points - LESION_CENTRE, axis=-1) < LESION_RADIUS, 15.0, values)
    return values.astype(np.float32)


def addPhantomPair(scene: slicer.vtkMRMLScene, mriShape: tuple[int, int, int] = (18, 44, 36),
                   seed: int = 0) -> tuple[slicer.vtkMRMLScalarVolumeNode, slicer.vtkMRMLScalarVolumeNode]:
    """Add "phantom T1" (oblique, 2.2 x 2.0 x 4.0 mm voxels) and "phantom PET" (3 mm, axis-aligned, larger field
    of view) volume nodes to ``scene``; returns (MRI node, PET node)."""
    mriIjkToRas = rotationIjkToRas((2.2, 2.0, 4.0), (12.0, -8.0, 20.0), HEAD_CENTRE, mriShape)
    petShape = (26, 34, 30)
    petIjkToRas = rotationIjkToRas((3.0, 3.0, 3.0), (0.0, 0.0, 0.0), HEAD_CENTRE + 1.5, petShape)
    mri = addScalarVolumeNode(scene, mriPhantom(mriShape, mriIjkToRas, seed), mriIjkToRas, "phantom T1")
    pet = addScalarVolumeNode(scene, petPhantom(petShape, petIjkToRas), petIjkToRas, "phantom PET")
    return mri, pet


def loadWithStorageNode(scene: slicer.vtkMRMLScene, files: list, className: str) -> slicer.vtkMRMLVolumeNode:
    """A new ``className`` node read from ``files`` by an archetype storage node, as Slicer reads volumes: one
    file (what *Save* wrote), or a DICOM series given file by file, as the DICOM module's scalar volume plugin
    gives it."""
    node = scene.AddNewNodeByClass(className)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(files[0]))
    if len(files) > 1:
        storage.ResetFileNameList()
        for path in files:
            storage.AddFileName(str(path))
        storage.SetSingleFile(0)
    if not storage.ReadData(node):
        raise OSError(f"Could not read {files[0]} into a {className}.")
    return node
