"""AMIFSlicer.py itself (imported with only Slicer's application layer stood in, see modulescript.py): the node
types its selectors get, and the widget's cleanup and reload."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from modulescript import comboBoxNodeTypes, loadModuleScript
from AMIFSlicerLib.volumenodes import addScalarVolumeNode


def test_the_selectors_offer_colour_volumes_where_a_colour_volume_can_be_chosen(workspace):
    module = loadModuleScript()
    annotations = module.AMIFSlicerParameterNode.__annotations__
    nodeTypes = {name: comboBoxNodeTypes(annotations[name]) for name in ("mriVolume", "otherVolume",
                                                                           "protectedVolume")}
    assert nodeTypes == {"mriVolume": ("vtkMRMLScalarVolumeNode",),
                         "otherVolume": ("vtkMRMLScalarVolumeNode", "vtkMRMLVectorVolumeNode"),
                         "protectedVolume": ("vtkMRMLScalarVolumeNode", "vtkMRMLVectorVolumeNode")}
    # What a real scene holds: an RGB PET and a colour protected fusion are vector volumes, listed (the selectors
    # show exact classes); a label map is not.
    rgb = addScalarVolumeNode(workspace.scene, np.zeros((2, 4, 4, 3), np.uint8), np.eye(4), "rgb pet")
    labels = workspace.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    assert rgb.GetClassName() in nodeTypes["otherVolume"] and rgb.GetClassName() not in nodeTypes["mriVolume"]
    assert labels.GetClassName() not in nodeTypes["otherVolume"] + nodeTypes["protectedVolume"]
