"""Test support for AMIFSlicer: voxel digests (the clean fusion of nodes is AMIFSlicerLib.selftest.cleanFusion)."""
from __future__ import annotations

import hashlib

import numpy as np


def voxelDigest(node) -> str:
    """SHA-256 of a volume node's voxels, IJK-to-RAS matrix and name (for "input unchanged" checks)."""
    import vtk
    from vtk.util import numpy_support

    digest = hashlib.sha256(node.GetName().encode())
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    digest.update(np.array([matrix.GetElement(r, c) for r in range(4) for c in range(4)]).tobytes())
    digest.update(numpy_support.vtk_to_numpy(node.GetImageData().GetPointData().GetScalars()).tobytes())
    return digest.hexdigest()
