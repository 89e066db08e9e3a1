"""Test support for AMIFSlicer: the weights to test with, and voxel digests.

Until the shipped weights (``amif_core/weights/amif_v1.pt``) exist, tests run
on a *visible stand-in*: an untrained AMIFNet whose first coupling block
adds the watermark to the image (its ``phi`` is set to the identity) and
whose CCWM inks strokes bright. Like trained weights, it burns a visible
identifier in and unlocks exactly (the coupling stays invertible); unlike
them its fusion is flat grey. Once the real weights exist they are used.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

STAND_IN_INK_BIAS = 3.0  # CCWM logit bias: ink ~ 0.9, bright strokes on the ~0.5 grey untrained fusion
LEAKY_SLOPE = 0.1


def _identitySubnet(subnet: torch.nn.Sequential) -> None:
    """Set a conv-leaky-conv-leaky-conv subnet (4 -> h -> h -> 4 channels, 3x3) to compute exactly x -> x.

    Channels c and c+4 carry x and -x through both LeakyReLUs; their
    difference is (1 + slope**2) * x whatever the sign, so the last conv
    divides by that.
    """
    first, _, middle, _, last = subnet
    for conv in (first, middle, last):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    gain = 1.0 + LEAKY_SLOPE**2
    with torch.no_grad():
        for c in range(4):
            first.weight[c, c, 1, 1], first.weight[c + 4, c, 1, 1] = 1.0, -1.0
            middle.weight[c, c, 1, 1], middle.weight[c + 4, c + 4, 1, 1] = 1.0, 1.0
            last.weight[c, c, 1, 1], last.weight[c, c + 4, 1, 1] = 1.0 / gain, -1.0 / gain


def saveStandInWeights(path: Path) -> Path:
    """Write the visible stand-in weights file to ``path`` (deterministic) and return the path."""
    from amif_core.engine.weights import save_weights
    from amif_core.networks.amif import AMIFNet

    torch.manual_seed(0)
    net = AMIFNet()
    _identitySubnet(net.csamic.blocks[0].phi)
    with torch.no_grad():
        net.ccwm.body[-1].bias.fill_(STAND_IN_INK_BIAS)
    save_weights(net, path, {"note": "visible stand-in for tests, until the shipped weights exist"}, overwrite=True)
    return path


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


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two images in [0, 1]."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def cleanFusion(model, mriNode, otherNode) -> np.ndarray:
    """The watermark-free fusion of two nodes (no parent transforms) on the MRI grid, (k, j, i) float32.

    Built independently of the Slicer logic: both nodes as SimpleITK images,
    the other resampled onto the MRI by amif_core, sliced along the MRI's
    slice axis and fused by ``model.fuse_clean``.
    """
    from amif_core.volumes import resample_to_reference, slice_axis
    import SimpleITK as sitk

    from AMIFSlicerLib.volumenodes import localIjkToRas, sitkImageFromArray, voxelArray

    mri = sitkImageFromArray(voxelArray(mriNode), localIjkToRas(mriNode))
    other = sitkImageFromArray(voxelArray(otherNode), localIjkToRas(otherNode))
    onGrid, _ = resample_to_reference(other, mri)
    axis = slice_axis(mri)
    fused = model.fuse_clean(np.moveaxis(sitk.GetArrayFromImage(mri), axis, 0),
                             np.moveaxis(sitk.GetArrayFromImage(onGrid), axis, 0))
    return np.moveaxis(fused, 0, axis)
