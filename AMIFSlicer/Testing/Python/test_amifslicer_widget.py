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


class Recorder(SimpleNamespace):
    """A widget's ``self`` for one method: records the calls the method makes."""

    def __init__(self, **attributes) -> None:
        super().__init__(calls=[], **attributes)

    def record(self, name: str):
        return lambda *args: self.calls.append(name)


def test_cleanup_cancels_a_running_job_and_disconnects_the_gui():
    module = loadModuleScript()
    widget = Recorder()
    widget._actions = SimpleNamespace(cancelRunning=widget.record("cancelRunning"))
    widget.logic = SimpleNamespace(amif=SimpleNamespace(engine=SimpleNamespace(shutdown=widget.record("shutdown"))))
    widget.setParameterNode = lambda node: widget.calls.append(f"setParameterNode({node})")  # None: disconnectGui
    widget.removeObservers = widget.record("removeObservers")
    module.AMIFSlicerWidget.cleanup(widget)
    assert widget.calls == ["cancelRunning", "shutdown", "setParameterNode(None)", "removeObservers"]


def test_reload_reads_the_library_again():
    import sys

    import AMIFSlicerLib.panelstate

    module = loadModuleScript()
    before = {name: m for name, m in sys.modules.items() if name.split(".")[0] == "AMIFSlicerLib"}
    widget = Recorder()
    try:
        module.AMIFSlicerWidget.onReload(widget)
        assert widget.calls == ["ScriptedLoadableModuleWidget.onReload"]
        assert not any(name.split(".")[0] == "AMIFSlicerLib" for name in sys.modules)
        import AMIFSlicerLib.panelstate as reloaded

        assert reloaded is not before["AMIFSlicerLib.panelstate"]  # the file was read again
    finally:
        sys.modules.update(before)  # the other tests keep the classes they imported
    assert sys.modules["AMIFSlicerLib.panelstate"] is AMIFSlicerLib.panelstate
