"""Scalar and RGB volume nodes and SimpleITK images, in world space.

MRML keeps a volume as IJK voxels (``vtkImageData``, origin 0, spacing 1)
plus an IJK-to-RAS matrix, optionally under a parent transform (for example a
registration result). SimpleITK keeps size, spacing, origin and direction in
LPS. A node is converted *in world space*: a linear parent transform is
folded into the geometry exactly; any other transform (warping, or a linear
one that shears the voxel grid) is applied by resampling, as Slicer's
"Harden transform" does. Input nodes are only read, never changed.
"""
from __future__ import annotations

import itertools

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtk.util import numpy_support

from AMIFSlicerLib.i18n import tr as _

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
ORTHOGONALITY_TOLERANCE = 1e-6
# A warped volume is resampled on a grid at most this much larger (per axis) than the original.
MAX_RESAMPLED_GROWTH = 2.0
BOUNDARY_SAMPLES = 5


def isRgbNode(node: slicer.vtkMRMLNode | None) -> bool:
    """True for a vector volume node of 3 components per voxel (an RGB colour volume)."""
    imageData = node.GetImageData() if node is not None and node.IsA("vtkMRMLVectorVolumeNode") else None
    return imageData is not None and imageData.GetNumberOfScalarComponents() == 3


def volumeProblem(node: slicer.vtkMRMLNode | None, role: str, rgb: bool = False) -> str | None:
    """Why ``node`` cannot be used as the ``role`` volume (e.g. "MRI"), or None when it can.

    Label maps, colour (RGB) volumes (unless ``rgb``) or other multi-component
    volumes, tensor volumes and empty volumes each get their own sentence,
    saying what to select instead.
    """
    if node is None:
        return _("Select the {role}.").format(role=role)
    name = node.GetName()
    if node.IsA("vtkMRMLLabelMapVolumeNode"):
        return _("'{name}' is a label map (segment labels), not an image, so it cannot be the {role}. Select the "
                 "image volume itself.").format(name=name, role=role)
    if node.IsA("vtkMRMLDiffusionTensorVolumeNode"):
        return _("'{name}' is a diffusion tensor volume; the {role} must be a single-component (greyscale) image, "
                 "such as a scalar map computed from it.").format(name=name, role=role)
    imageData = node.GetImageData() if node.IsA("vtkMRMLVolumeNode") else None
    if node.IsA("vtkMRMLMultiVolumeNode") or (imageData is not None and imageData.GetNumberOfScalarComponents() > 3):
        frames = imageData.GetNumberOfScalarComponents() if imageData is not None else _("several")
        return _("'{name}' is a 4D (multi-frame) volume with {frames} frames, such as a dynamic PET; the {role} must "
                 "be one 3D frame. Pick a frame first: in the Sequences module (or Multivolume Explorer) show the "
                 "frame you want and clone it, or use 'Vector to Scalar Volume' with that component.").format(
            name=name, frames=frames, role=role)
    if rgb and isRgbNode(node):
        return None if imageData.GetPointData().GetScalars() is not None else _emptyVolume(name)
    if node.IsA("vtkMRMLVectorVolumeNode") or (imageData is not None and imageData.GetNumberOfScalarComponents() > 1):
        components = imageData.GetNumberOfScalarComponents() if imageData is not None else 3
        return _("'{name}' is a colour (RGB) or vector volume with {components} values per voxel; the {role} must be "
                 "a single-component (greyscale) image. Convert it with the 'Vector to Scalar Volume' module "
                 "first.").format(name=name, components=components, role=role)
    if not node.IsA("vtkMRMLScalarVolumeNode"):
        return _("'{name}' is not a scalar volume; select an image volume as the {role}.").format(name=name, role=role)
    if imageData is None or imageData.GetPointData().GetScalars() is None or min(imageData.GetDimensions()) < 1:
        return _emptyVolume(name)
    return None


def _emptyVolume(name: str) -> str:
    return _("'{name}' has no voxels (its image data is empty); load the image first.").format(name=name)


def matrixToArray(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    """A ``vtkMatrix4x4`` as a (4, 4) float64 array."""
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def arrayToMatrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    """A (4, 4) array as a ``vtkMatrix4x4``."""
    matrix = vtk.vtkMatrix4x4()
    for r, c in itertools.product(range(4), range(4)):
        matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def localIjkToRas(node: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """The node's own IJK-to-RAS matrix, ignoring any parent transform."""
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return matrixToArray(matrix)


def isOrthogonalGrid(ijkToRas: np.ndarray) -> bool:
    """True when the voxel axes of ``ijkToRas`` are mutually perpendicular (spacing may differ per axis)."""
    axes = ijkToRas[:3, :3] / np.linalg.norm(ijkToRas[:3, :3], axis=0)
    return bool(np.abs(axes.T @ axes - np.eye(3)).max() < ORTHOGONALITY_TOLERANCE)


def worldIjkToRas(node: slicer.vtkMRMLVolumeNode) -> np.ndarray | None:
    """The node's IJK-to-world matrix when its parent transforms keep a regular grid, else None.

    None means the node is under a warping transform, or under a linear one
    that shears the voxel grid, and must be resampled to be used in world space.
    """
    ijkToRas = localIjkToRas(node)
    parent = node.GetParentTransformNode()
    if parent is None:
        return ijkToRas
    if not parent.IsTransformToWorldLinear():
        return None
    toWorld = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(toWorld)
    world = matrixToArray(toWorld) @ ijkToRas
    return world if isOrthogonalGrid(world) else None


def voxelArray(node: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """Read-only (k, j, i) view of a node's voxels, (k, j, i, 3) for RGB (the layout SimpleITK uses); copy before
    changing."""
    imageData = node.GetImageData()
    columns, rows, slices = imageData.GetDimensions()
    components = imageData.GetNumberOfScalarComponents()
    view = numpy_support.vtk_to_numpy(imageData.GetPointData().GetScalars()).reshape(
        (slices, rows, columns) + ((components,) if components > 1 else ()))
    view.flags.writeable = False
    return view


def sitkImageFromArray(array: np.ndarray, ijkToRas: np.ndarray) -> sitk.Image:
    """A SimpleITK image (a copy of ``array``, (k, j, i) order, or (k, j, i, 3) RGB) with the geometry of ``ijkToRas``."""
    spacing = np.linalg.norm(ijkToRas[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=np.ndim(array) == 4)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(v) for v in RAS_TO_LPS @ ijkToRas[:3, 3]])
    image.SetDirection([float(v) for v in (RAS_TO_LPS @ (ijkToRas[:3, :3] / spacing)).ravel()])
    return image


def _boundaryIjk(dimensions: np.ndarray) -> np.ndarray:
    """Points on the six faces of a voxel box (a small lattice per face), (N, 3) in IJK."""
    axes = [np.linspace(-0.5, d - 0.5, BOUNDARY_SAMPLES) for d in dimensions]
    points = []
    for fixed in range(3):
        for value in (-0.5, dimensions[fixed] - 0.5):
            free = [axes[a] for a in range(3) if a != fixed]
            for u, v in itertools.product(*free):
                point = [u, v]
                point.insert(fixed, value)
                points.append(point)
    return np.array(points)


def _resampleThroughTransform(node: slicer.vtkMRMLScalarVolumeNode) -> tuple[np.ndarray, np.ndarray]:
    """Resample ``node`` through its parent transforms -> (float32 (k, j, i) voxels, IJK-to-world matrix).

    The new grid keeps the node's voxel axes and spacing and grows to hold the
    transformed volume (at most :data:`MAX_RESAMPLED_GROWTH` times per axis);
    voxels outside the original volume take its minimum value.
    """
    parent = node.GetParentTransformNode()
    ijkToRas = localIjkToRas(node)
    rasToIjk = np.linalg.inv(ijkToRas)
    toWorld, fromWorld = vtk.vtkGeneralTransform(), vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(parent, None, toWorld)
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(None, parent, fromWorld)

    dimensions = np.array(node.GetImageData().GetDimensions())
    boundary = _boundaryIjk(dimensions)
    local = (ijkToRas @ np.c_[boundary, np.ones(len(boundary))].T).T[:, :3]
    world = np.array([toWorld.TransformPoint(*p) for p in local])
    worldIjk = (rasToIjk @ np.c_[world, np.ones(len(world))].T).T[:, :3]
    low = np.floor(worldIjk.min(axis=0) + 0.5)
    high = np.ceil(worldIjk.max(axis=0) - 0.5)
    limit = np.ceil(dimensions * MAX_RESAMPLED_GROWTH)
    size = np.minimum(high - low + 1, limit).astype(int)
    low = np.where(high - low + 1 > limit, np.round((low + high - limit + 1) / 2), low)
    outputIjkToRas = ijkToRas.copy()
    outputIjkToRas[:3, 3] = (ijkToRas @ np.r_[low, 1.0])[:3]

    outputToInput = vtk.vtkGeneralTransform()
    outputToInput.PostMultiply()
    outputToInput.Concatenate(arrayToMatrix(outputIjkToRas))
    outputToInput.Concatenate(fromWorld)
    outputToInput.Concatenate(arrayToMatrix(rasToIjk))

    source = vtk.vtkImageData()
    source.ShallowCopy(node.GetImageData())
    source.SetOrigin(0.0, 0.0, 0.0)
    source.SetSpacing(1.0, 1.0, 1.0)
    reslice = vtk.vtkImageReslice()
    reslice.SetInputData(source)
    reslice.SetResliceTransform(outputToInput)
    reslice.SetInterpolationModeToLinear()
    reslice.SetOutputScalarType(vtk.VTK_FLOAT)
    reslice.SetBackgroundLevel(float(source.GetScalarRange()[0]))
    reslice.SetOutputOrigin(0.0, 0.0, 0.0)
    reslice.SetOutputSpacing(1.0, 1.0, 1.0)
    reslice.SetOutputExtent(0, size[0] - 1, 0, size[1] - 1, 0, size[2] - 1)
    reslice.Update()
    output = reslice.GetOutput()
    components = output.GetNumberOfScalarComponents()
    voxels = numpy_support.vtk_to_numpy(output.GetPointData().GetScalars()).reshape(
        (size[2], size[1], size[0]) + ((components,) if components > 1 else ()))
    return voxels.copy(), outputIjkToRas


def worldVoxels(node: slicer.vtkMRMLScalarVolumeNode) -> tuple[np.ndarray, np.ndarray, bool]:
    """The node's voxels on a world-space grid -> ((k, j, i) voxels, IJK-to-world matrix, was_resampled).

    Without a parent transform, or under a grid-preserving linear one, the
    voxels are the node's own (read-only view) and only the matrix changes.
    Under any other transform they are resampled (float32).
    """
    ijkToWorld = worldIjkToRas(node)
    if ijkToWorld is not None:
        return voxelArray(node), ijkToWorld, False
    voxels, ijkToWorld = _resampleThroughTransform(node)
    return voxels, ijkToWorld, True


def addScalarVolumeNode(scene: slicer.vtkMRMLScene, voxels: np.ndarray, ijkToRas: np.ndarray, name: str,
                        parentTransformNode: slicer.vtkMRMLTransformNode | None = None
                        ) -> slicer.vtkMRMLScalarVolumeNode:
    """Add a new volume node holding a copy of ``voxels`` with ``ijkToRas``: a scalar volume node for a
    (k, j, i) array, an RGB vector volume node for (k, j, i, 3).

    The name is made unique in the scene; display nodes are created.
    ``parentTransformNode``, when given, becomes the new node's parent transform.
    """
    voxels = np.ascontiguousarray(voxels)
    rgb = voxels.ndim == 4
    imageData = vtk.vtkImageData()
    imageData.SetDimensions(voxels.shape[2], voxels.shape[1], voxels.shape[0])
    scalars = numpy_support.numpy_to_vtk(voxels.reshape(-1, 3) if rgb else voxels.ravel(), deep=True,
                                         array_type=numpy_support.get_vtk_array_type(voxels.dtype))
    imageData.GetPointData().SetScalars(scalars)
    nodeClass = "vtkMRMLVectorVolumeNode" if rgb else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(nodeClass, scene.GenerateUniqueName(name))
    node.SetIJKToRASMatrix(arrayToMatrix(ijkToRas))
    node.SetAndObserveImageData(imageData)
    node.CreateDefaultDisplayNodes()
    if parentTransformNode is not None:
        node.SetAndObserveTransformNodeID(parentTransformNode.GetID())
    return node


def worldBounds(node: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """World-space bounding box of a volume, (3, 2) array of [min, max] per R, A, S axis (transforms included)."""
    bounds = [0.0] * 6
    node.GetRASBounds(bounds)
    return np.array(bounds).reshape(3, 2)
