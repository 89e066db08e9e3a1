"""Test support for AMIFSlicer: voxel digests (the clean fusion of nodes is AMIFSlicerLib.selftest.cleanFusion),
the templates of the core's errors and the count of a file's opens (both from the core tests' folder)."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

CORE_TESTS = Path(__file__).resolve().parents[3] / "tests"
if str(CORE_TESTS) not in sys.path:
    sys.path.append(str(CORE_TESTS))

from file_opens import opens_of  # noqa: E402  (the core tests' open counter, re-exported for the Slicer tests)


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


def coreErrorTemplates() -> set[str]:
    """The templates of amif_core's errors that the panel can show, read from its source by the core tests'
    scanner (``tests/error_templates.py`` of this checkout)."""
    from error_templates import core_templates

    return core_templates(panel_only=True)
