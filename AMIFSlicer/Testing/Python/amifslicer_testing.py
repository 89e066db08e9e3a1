"""Test support for AMIFSlicer: voxel digests, the clean fusion of nodes and PSNR."""
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


def cleanFusion(model, mriNode, otherNode, colourTable: str | None = "pet") -> np.ndarray:
    """The watermark-free fusion of two nodes (no parent transforms) on the MRI grid, (k, j, i) float32,
    or (k, j, i, 3) RGB through ``colourTable`` (the panel's default for a PET; None: grey).

    Built independently of the Slicer logic: both nodes as SimpleITK images,
    the other resampled onto the MRI by amif_core, sliced along the MRI's
    slice axis and fused by ``model.fuse_clean``.
    """
    import SimpleITK as sitk
    from AMIFSlicerLib.volumenodes import localIjkToRas, sitkImageFromArray, voxelArray

    from amif_core.io.geometry import resample_to_reference, slice_axis

    mri = sitkImageFromArray(voxelArray(mriNode), localIjkToRas(mriNode))
    other = sitkImageFromArray(voxelArray(otherNode), localIjkToRas(otherNode))
    onGrid, _ = resample_to_reference(other, mri)
    axis = slice_axis(mri)
    fused = model.fuse_clean(np.moveaxis(sitk.GetArrayFromImage(mri), axis, 0),
                             np.moveaxis(sitk.GetArrayFromImage(onGrid), axis, 0), colour_table=colourTable)
    return np.moveaxis(fused, 0, axis)
