"""Saving and reloading scenes: outputs, display and layout survive; key material is never in the scene."""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import slicer
from AMIFSlicerLib import display
from AMIFSlicerLib.logic import PROVENANCE_ATTRIBUTES
from rendering import HeadlessViews
from AMIFSlicerLib.volumenodes import localIjkToRas, voxelArray

from amif_core.key.file import read_key


def keyMaterialNeedles(keyPath: Path) -> list[bytes]:
    """Byte strings that appear wherever key material is stored: raw chunks of the key arrays, and their text forms."""
    key = read_key(keyPath)
    chunks = []
    for array in (key.codes,):
        raw = np.ascontiguousarray(array).tobytes()
        varied = [raw[i:i + 24] for i in range(0, len(raw) - 24, 24) if len(set(raw[i:i + 24])) >= 12]
        chunks += varied[:: max(1, len(varied) // 4)][:4]  # a few distinctive pieces, spread over the array
    assert len(chunks) >= 4, "the key must hold enough material to search for"
    return [form for chunk in chunks for form in (chunk, base64.b64encode(chunk), chunk.hex().encode())]


def assertNoKeyMaterial(directory: Path, needles: list[bytes]) -> None:
    files = [path for path in directory.rglob("*") if path.is_file()]
    assert files, f"nothing was saved in {directory}"
    for path in files:
        content = path.read_bytes()
        assert not any(needle in content for needle in needles), f"key material found in {path}"


def scalarVolumes(scene: slicer.vtkMRMLScene) -> dict[str, slicer.vtkMRMLScalarVolumeNode]:
    nodes = [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
             for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]
    return {node.GetName(): node for node in nodes}


def test_scene_saved_as_mrml_reloads_without_key_material(protectedPhantom, tmp_path):
    space = protectedPhantom
    unlocked = space.logic.unlock(space.protected, space.keyPath, device="cpu")
    sceneDirectory = tmp_path / "scene"
    sceneDirectory.mkdir()
    for node in scalarVolumes(space.scene).values():
        if node.GetStorageNode() is None:
            node.AddDefaultStorageNode()
        node.GetStorageNode().SetFileName(str(sceneDirectory / f"{node.GetID()}.nrrd"))
        assert node.GetStorageNode().WriteData(node)
    space.scene.SetRootDirectory(str(sceneDirectory))
    space.scene.SetURL(str(sceneDirectory / "amif.mrml"))
    assert space.scene.Commit()

    for node in scalarVolumes(space.scene).values():
        for name in node.GetAttributeNames():
            assert "key" not in name.lower() and len(node.GetAttribute(name)) < 100
    assertNoKeyMaterial(sceneDirectory, keyMaterialNeedles(space.keyPath))

    reloaded = slicer.vtkMRMLScene()
    reloaded.SetURL(str(sceneDirectory / "amif.mrml"))
    assert reloaded.Connect()
    volumes = scalarVolumes(reloaded)
    for original in (space.protected, unlocked):
        copy = volumes[original.GetName()]
        assert np.array_equal(voxelArray(copy), voxelArray(original)), "float32 voxels survive exactly"
        assert np.allclose(localIjkToRas(copy), localIjkToRas(original), atol=1e-9)
        assert {n: copy.GetAttribute(n) for n in copy.GetAttributeNames()} == {
            n: original.GetAttribute(n) for n in PROVENANCE_ATTRIBUTES}


def test_slicer_data_bundle_keeps_layout_links_and_display(protectedPhantom, tmp_path):
    space = protectedPhantom
    space.logic.showComparison(space.mri, space.pet, space.protected)
    petWindowLevel = (space.pet.GetDisplayNode().GetWindow(), space.pet.GetDisplayNode().GetLevel())
    protectedWindowLevel = (space.protected.GetDisplayNode().GetWindow(), space.protected.GetDisplayNode().GetLevel())
    bundleDirectory = tmp_path / "bundle"
    bundleDirectory.mkdir()
    assert space.views.applicationLogic.SaveSceneToSlicerDataBundleDirectory(str(bundleDirectory), None)
    bundle = tmp_path / "amif.mrb"
    assert space.views.applicationLogic.Zip(str(bundle), str(bundleDirectory))
    assertNoKeyMaterial(bundleDirectory, keyMaterialNeedles(space.keyPath))

    scene = slicer.vtkMRMLScene()
    views = HeadlessViews(scene)
    display.registerLayouts(display.layoutNode(scene))  # as the module does at Slicer startup
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    assert views.applicationLogic.OpenSlicerDataBundle(str(bundle), str(unpacked))
    volumes = scalarVolumes(scene)

    assert display.layoutNode(scene).GetViewArrangement() == display.COMPARISON_LAYOUT_ID
    for view, name in ((display.MRI_VIEW, space.mri.GetName()), (display.OTHER_VIEW, space.pet.GetName()),
                       (display.PROTECTED_VIEW, space.protected.GetName())):
        composite = views.sliceLogic(view.name).GetSliceCompositeNode()
        assert composite.GetBackgroundVolumeID() == volumes[name].GetID()
        assert composite.GetLinkedControl()
    pet = volumes[space.pet.GetName()].GetDisplayNode()
    assert pet.GetColorNodeID() == display.PET_COLOR_IDS[0]
    assert (pet.GetWindow(), pet.GetLevel()) == petWindowLevel and not pet.GetAutoWindowLevel()
    protected = volumes[space.protected.GetName()]
    assert np.allclose((protected.GetDisplayNode().GetWindow(), protected.GetDisplayNode().GetLevel()),
                       protectedWindowLevel, rtol=1e-5)  # the scene file keeps 6 significant digits
    assert protected.GetAttribute("AMIF.role") == "protected"
    views.close()
