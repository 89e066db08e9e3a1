"""How AMIF volumes are shown: modality guess, colour and window/level presets, comparison layouts.

Two custom layouts are registered with the layout node: *AMIF comparison*
(MRI | CT/PET/SPECT | protected) and *AMIF unlock* (protected | unlocked).
Their slice views form a view group of their own with linked control, so
scrolling, zooming or panning one moves all of them, and they never take
volumes that Slicer propagates on load.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import slicer

from AMIFSlicerLib.errors import AMIFSlicerError
from AMIFSlicerLib.i18n import tr as _
from AMIFSlicerLib.volumenodes import voxelArray

MR, CT, PET, SPECT = "MR", "CT", "PET", "SPECT"
FUNCTIONAL_MODALITIES = (PET, SPECT)
DICOM_MODALITIES = {"MR": MR, "CT": CT, "PT": PET, "NM": SPECT, "ST": SPECT}
NAME_PATTERNS = (  # first match wins; tokens are matched as whole words of the node name
    (PET, re.compile(r"\b(pet|pt|fdg|suv|amyloid|psma)\b", re.IGNORECASE)),
    (SPECT, re.compile(r"\b(spect|nm|datscan|mibi|tc99m?)\b", re.IGNORECASE)),
    (CT, re.compile(r"\b(ct|cta|cbct)\b", re.IGNORECASE)),
    (MR, re.compile(r"\b(mr|mri|t1w?|t2w?|flair|dwi|mprage|swi)\b", re.IGNORECASE)),
)
HOUNSFIELD_AIR_THRESHOLD = -500.0  # a minimum below this means CT in Hounsfield units

DEFAULT_GREY_COLOR_ID = "vtkMRMLColorTableNodeGrey"
# PET-Heat first: the hot-iron look of the colour fusion (amif_core "pet" table), so PET and fusion read alike.
PET_COLOR_IDS = ("vtkMRMLPETProceduralColorNodePET-Heat", "vtkMRMLPETProceduralColorNodePET-DICOM")
SUV_UPPER = 10.0  # "PET SUV 0-10" preset
SUV_LIKE_MAXIMUM = 60.0  # robust maxima up to this look like SUV, larger ones like Bq/ml or counts

COMPARISON_LAYOUT_ID = 42501
UNLOCK_LAYOUT_ID = 42502
VIEW_GROUP = 42


@dataclass(frozen=True)
class ComparisonView:
    """One slice view of the AMIF layouts: layout (singleton) name, short label and colour."""

    name: str
    label: str
    color: str


MRI_VIEW = ComparisonView("AMIFMRI", "M", "#7F8C8D")
OTHER_VIEW = ComparisonView("AMIFOther", "O", "#C0392B")
PROTECTED_VIEW = ComparisonView("AMIFProtected", "P", "#2471A3")
UNLOCKED_VIEW = ComparisonView("AMIFUnlocked", "U", "#229954")
LAYOUT_VIEWS = {
    COMPARISON_LAYOUT_ID: (MRI_VIEW, OTHER_VIEW, PROTECTED_VIEW),
    UNLOCK_LAYOUT_ID: (PROTECTED_VIEW, UNLOCKED_VIEW),
}


def _subjectHierarchyModality(node: slicer.vtkMRMLNode) -> str | None:
    scene = node.GetScene()
    # Look the hierarchy up, never create it: reading a modality must not add nodes to the scene.
    shNode = scene.GetFirstNodeByClass("vtkMRMLSubjectHierarchyNode") if scene is not None else None
    item = shNode.GetItemByDataNode(node) if shNode is not None else 0
    if not item:
        return None
    return DICOM_MODALITIES.get(shNode.GetItemAttribute(item, "DICOM.Modality").strip().upper())


def guessModality(node: slicer.vtkMRMLScalarVolumeNode) -> str | None:
    """MR, CT, PET or SPECT for a volume node, or None when nothing tells.

    Looks at the DICOM modality of its subject hierarchy item, then at words
    of the node name ("PET", "T1", "CT", ...), then at intensities (CT in
    Hounsfield units goes well below zero).
    """
    modality = _subjectHierarchyModality(node)
    if modality is not None:
        return modality
    words = re.sub(r"[_\-.]", " ", node.GetName())
    for candidate, pattern in NAME_PATTERNS:
        if pattern.search(words):
            return candidate
    imageData = node.GetImageData()
    if imageData is not None and imageData.GetPointData().GetScalars() is not None:
        if imageData.GetScalarRange()[0] < HOUNSFIELD_AIR_THRESHOLD:
            return CT
    return None


def _sample(voxels: np.ndarray, limit: int = 2_000_000) -> np.ndarray:
    step = max(1, int(np.ceil((voxels.size / limit) ** (1 / 3))))
    return np.asarray(voxels[::step, ::step, ::step], dtype=np.float64).ravel()


def fusionWindowLevel(voxels: np.ndarray) -> tuple[float, float]:
    """(window, level) spanning the 0.5th to 99.5th percentile of a fused volume."""
    low, high = np.percentile(_sample(voxels), [0.5, 99.5])
    window = max(float(high - low), 1e-3)
    return window, float(low) + window / 2


def functionalWindowLevel(voxels: np.ndarray) -> tuple[float, float, str]:
    """(window, level, preset name) for a PET or SPECT volume, from zero upwards.

    SUV-like values get the "PET SUV 0-10" preset; raw activity or counts are
    shown from 0 to their 99.5th percentile.
    """
    sample = _sample(voxels)
    if float(np.percentile(sample, 99.9)) <= SUV_LIKE_MAXIMUM:
        upper, name = SUV_UPPER, "PET SUV 0-10"
    else:
        upper, name = max(float(np.percentile(sample, 99.5)), 1e-3), "0 to 99.5th percentile"
    return upper, upper / 2, name


RGB_WINDOW_LEVEL = (1.0, 0.5)  # float RGB in [0, 1] (an unlocked fusion), shown as it is
RGB8_WINDOW_LEVEL = (255.0, 127.5)  # 8-bit RGB (a protected fusion, as stored), shown as it is


def rgbWindowLevel(voxels: np.ndarray) -> tuple[float, float]:
    """(window, level) that shows RGB ``voxels`` as they are: 8-bit 0..255, or float in [0, 1]."""
    return RGB8_WINDOW_LEVEL if np.asarray(voxels).dtype == np.uint8 else RGB_WINDOW_LEVEL


def setWindowLevel(node: slicer.vtkMRMLScalarVolumeNode, window: float, level: float) -> None:
    """Fix a volume's window/level (automatic window/level off)."""
    displayNode = node.GetDisplayNode()
    wasModifying = displayNode.StartModify()
    displayNode.AutoWindowLevelOff()
    displayNode.SetWindowLevel(window, level)
    displayNode.EndModify(wasModifying)


def applyFunctionalDisplay(node: slicer.vtkMRMLScalarVolumeNode) -> str | None:
    """Give a PET or SPECT volume a PET colour table and window/level preset; return the preset name.

    Leaves the node alone (returns None) when it is not a scalar PET/SPECT
    (an RGB volume shows its own colours), or when its user already chose a
    colour table other than the default grey.
    """
    if node.IsA("vtkMRMLVectorVolumeNode") or guessModality(node) not in FUNCTIONAL_MODALITIES:
        return None
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    displayNode = node.GetDisplayNode()
    if displayNode.GetColorNodeID() not in (None, DEFAULT_GREY_COLOR_ID):
        return None
    scene = node.GetScene()
    colorId = next((c for c in PET_COLOR_IDS if scene.GetNodeByID(c) is not None), None)
    if colorId is None:
        return None
    window, level, preset = functionalWindowLevel(voxelArray(node))
    displayNode.SetAndObserveColorNodeID(colorId)
    setWindowLevel(node, window, level)
    return preset


def layoutDescription(layoutId: int) -> str:
    """Layout XML of one of the AMIF layouts: its views side by side, axial, in their own linked view group."""
    items = "".join(
        f'<item><view class="vtkMRMLSliceNode" singletontag="{view.name}">'
        f'<property name="orientation" action="default">Axial</property>'
        f'<property name="viewlabel" action="default">{view.label}</property>'
        f'<property name="viewcolor" action="default">{view.color}</property>'
        f'<property name="viewgroup" action="default">{VIEW_GROUP}</property>'
        "</view></item>"
        for view in LAYOUT_VIEWS[layoutId]
    )
    return f'<layout type="horizontal">{items}</layout>'


def layoutNode(scene: slicer.vtkMRMLScene) -> slicer.vtkMRMLLayoutNode:
    """The scene's layout node; raises when the scene has none (no layout logic attached)."""
    node = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    if node is None:
        raise AMIFSlicerError(_("This scene has no layout node, so the AMIF comparison views cannot be shown."))
    return node


def registerLayouts(node: slicer.vtkMRMLLayoutNode) -> None:
    """Add the AMIF layouts to a layout node (no change if they are there already)."""
    for layoutId in LAYOUT_VIEWS:
        if not node.IsLayoutDescription(layoutId):
            node.AddLayoutDescription(layoutId, layoutDescription(layoutId))


def showLayout(scene: slicer.vtkMRMLScene, applicationLogic: slicer.vtkMRMLApplicationLogic, layoutId: int,
               volumes: list[slicer.vtkMRMLScalarVolumeNode], centreOn: slicer.vtkMRMLScalarVolumeNode,
               afterLayout: Callable[[Callable[[], None]], None] | None = None) -> None:
    """Switch to an AMIF layout, put ``volumes`` in its views (in order), link them and centre them on ``centreOn``.

    Every view shows the same field of view, fitted to ``centreOn``, at the same slice position (its
    centre slice), so the views compare voxel for voxel. The fit needs each view's final size, which a
    GUI knows only once the new layout is laid out: ``afterLayout(fit)`` runs the fit then (Slicer:
    ``lambda fit: qt.QTimer.singleShot(0, fit)``); without it the fit runs at once (headless views are
    sized already).
    """
    node = layoutNode(scene)
    registerLayouts(node)
    node.SetViewArrangement(layoutId)
    views = LAYOUT_VIEWS[layoutId]
    if len(volumes) != len(views):
        raise ValueError(f"layout {layoutId} has {len(views)} views, got {len(volumes)} volumes")
    sliceLogics = []
    for view, volume in zip(views, volumes):
        sliceLogic = applicationLogic.GetSliceLogicByLayoutName(view.name)
        if sliceLogic is None:
            raise AMIFSlicerError(_("The slice view '{view}' of the AMIF layout was not created.").format(
                view=view.name))
        sliceLogics.append(sliceLogic)
        composite = sliceLogic.GetSliceCompositeNode()
        wasModifying = composite.StartModify()
        composite.SetDoPropagateVolumeSelection(False)
        composite.SetBackgroundVolumeID(volume.GetID())
        composite.SetForegroundVolumeID(None)
        composite.SetLabelVolumeID(None)
        composite.SetLinkedControl(True)
        composite.EndModify(wasModifying)

    def fit() -> None:
        for sliceLogic in sliceLogics:
            width, height = sliceLogic.GetSliceNode().GetDimensions()[:2]
            sliceLogic.FitSliceToVolume(centreOn, width, height)
        offset = sliceLogics[0].GetSliceOffset()  # fitting snaps to each view's own voxels: align them all
        for sliceLogic in sliceLogics[1:]:
            sliceLogic.SetSliceOffset(offset)

    (afterLayout or (lambda run: run()))(fit)
