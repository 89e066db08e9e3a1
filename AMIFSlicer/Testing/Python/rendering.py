"""Slice views without a GUI, for screenshots and tests (test support: not shipped with the extension).

In Slicer the layout manager creates a view (and its ``vtkMRMLSliceLogic``)
for every slice node of the layout. :class:`HeadlessViews` does the same on
a bare MRML scene (``slicer-core``), so :meth:`AMIFSceneLogic.showComparison` and
:meth:`AMIFSceneLogic.showUnlocked` work headless and their views can be rendered
to images exactly as Slicer's slice pipeline blends them.
"""
from __future__ import annotations

import weakref

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

DEFAULT_VIEW_SIZE = (320, 320)


class HeadlessViews:
    """Application, colour and layout logic plus one slice logic per slice node of ``scene``.

    Slice logics are added as the layout creates slice nodes; every slice
    view is ``viewSize`` (width, height) pixels. :meth:`close` (called at
    the latest when the object is collected, or at exit) detaches them from
    the scene, which VTK needs for a clean shutdown.
    """

    def __init__(self, scene: slicer.vtkMRMLScene, viewSize: tuple[int, int] = DEFAULT_VIEW_SIZE) -> None:
        self.scene = scene
        self.viewSize = viewSize
        self.applicationLogic = slicer.vtkMRMLApplicationLogic()
        self.applicationLogic.SetMRMLScene(scene)
        self.colorLogic = slicer.vtkMRMLColorLogic()
        self.colorLogic.SetMRMLScene(scene)
        self._sliceLogics = vtk.vtkCollection()
        self.applicationLogic.SetSliceLogics(self._sliceLogics)

        @vtk.calldata_type(vtk.VTK_OBJECT)
        def onNodeAdded(caller: vtk.vtkObject, event: str, node: slicer.vtkMRMLNode) -> None:
            if node.IsA("vtkMRMLSliceNode"):
                self._addSliceLogic(node)

        observer = scene.AddObserver(slicer.vtkMRMLScene.NodeAddedEvent, onNodeAdded)
        self._detach = weakref.finalize(self, _detachSliceLogics, scene, self._sliceLogics, observer)
        for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
            self._addSliceLogic(scene.GetNthNodeByClass(index, "vtkMRMLSliceNode"))
        self.layoutLogic = slicer.vtkMRMLLayoutLogic()
        self.layoutLogic.SetMRMLApplicationLogic(self.applicationLogic)
        self.layoutLogic.SetMRMLScene(scene)

    def _addSliceLogic(self, sliceNode: slicer.vtkMRMLSliceNode) -> None:
        if self.applicationLogic.GetSliceLogicByLayoutName(sliceNode.GetLayoutName()) is not None:
            return
        sliceNode.SetDimensions(self.viewSize[0], self.viewSize[1], 1)
        sliceLogic = slicer.vtkMRMLSliceLogic()
        sliceLogic.SetMRMLApplicationLogic(self.applicationLogic)
        sliceLogic.SetMRMLScene(self.scene)
        sliceLogic.SetSliceNode(sliceNode)
        self._sliceLogics.AddItem(sliceLogic)

    def sliceLogic(self, layoutName: str) -> slicer.vtkMRMLSliceLogic:
        """The slice logic of a view ("Red", "AMIFProtected", ...); KeyError when there is no such view."""
        sliceLogic = self.applicationLogic.GetSliceLogicByLayoutName(layoutName)
        if sliceLogic is None:
            raise KeyError(f"no slice view named {layoutName!r}")
        return sliceLogic

    def render(self, layoutName: str) -> np.ndarray:
        """The view's current image as Slicer blends it: (height, width, 3) uint8 RGB, top row first."""
        producer = self.sliceLogic(layoutName).GetImageDataConnection().GetProducer()
        producer.Update()
        image = producer.GetOutputDataObject(0)
        width, height, _ = image.GetDimensions()
        pixels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
        return np.ascontiguousarray(pixels[::-1, :, :3])

    def close(self) -> None:
        """Stop following the scene and detach the slice logics from it; the views cannot render afterwards."""
        self._detach()


def _detachSliceLogics(scene: slicer.vtkMRMLScene, sliceLogics: vtk.vtkCollection, observer: int) -> None:
    scene.RemoveObserver(observer)
    for index in range(sliceLogics.GetNumberOfItems()):
        sliceLogics.GetItemAsObject(index).SetMRMLScene(None)


def composeViews(images: list[np.ndarray], titles: list[str], gap: int = 4, titleHeight: int = 26):
    """Put rendered views (H, W, 3) uint8 side by side on a dark background, each with its title above.

    Returns a PIL image.
    """
    from PIL import Image, ImageDraw, ImageFont

    height = max(image.shape[0] for image in images)
    width = sum(image.shape[1] for image in images) + gap * (len(images) + 1)
    canvas = Image.new("RGB", (width, height + titleHeight + 2 * gap), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=int(titleHeight * 0.6))
    x = gap
    for image, title in zip(images, titles):
        canvas.paste(Image.fromarray(image), (x, titleHeight + gap))
        textWidth = draw.textlength(title, font=font)
        draw.text((x + (image.shape[1] - textWidth) / 2, gap + titleHeight * 0.15), title, fill=(235, 235, 235),
                  font=font)
        x += image.shape[1] + gap
    return canvas
