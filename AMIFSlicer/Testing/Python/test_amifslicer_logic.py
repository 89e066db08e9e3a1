"""AMIFSceneLogic on real MRML nodes: geometry, unlocking, untouched inputs, refusals, transforms, layouts."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import vtk
from amif_core.evaluation.psnr import psnr
from amifslicer_testing import opens_of, voxelDigest
from AMIFSlicerLib.selftest import cleanFusion
from AMIFSlicerLib import display, readiness
from AMIFSlicerLib.errors import InvalidInputError
from AMIFSlicerLib.keyfilestate import KeyFileCache, KeyFileState
from AMIFSlicerLib.logic import PROVENANCE_ATTRIBUTES, AMIFSceneLogic
from AMIFSlicerLib.testdata import addPhantomPair
from AMIFSlicerLib.volumenodes import (
    RAS_TO_LPS,
    addScalarVolumeNode,
    arrayToMatrix,
    localIjkToRas,
    sitkImageFromArray,
    voxelArray,
    worldIjkToRas,
    worldVoxels,
)
from vtk.util import numpy_support

import amif_core
from amif_core.key.file import read_key, write_key

SMALL_MRI_SHAPE = (6, 24, 20)


def nodeCount(scene: slicer.vtkMRMLScene) -> int:
    return scene.GetNumberOfNodes()


def test_protected_node_keeps_the_mri_geometry(protectedPhantom):
    mri, pet, protected = protectedPhantom.mri, protectedPhantom.pet, protectedPhantom.protected
    axes = localIjkToRas(mri)[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    assert np.abs(axes / spacing - np.diag(np.diag(axes / spacing))).max() > 0.1, "the MRI grid must be oblique"
    assert len(set(np.round(spacing, 6))) == 3, "the MRI spacing must be anisotropic"
    assert voxelArray(pet).shape != voxelArray(mri).shape
    assert not np.allclose(localIjkToRas(pet), localIjkToRas(mri))

    assert protected.GetName() == "phantom T1 AMIF protected"
    assert np.array_equal(localIjkToRas(protected), localIjkToRas(mri))
    voxels = voxelArray(protected)  # a PET is fused in colour by default: an RGB vector volume
    assert protected.IsA("vtkMRMLVectorVolumeNode")
    assert voxels.shape == voxelArray(mri).shape + (3,) and voxels.dtype == np.uint8  # 8-bit RGB, as archived
    assert any("Resampled the second scan" in notice for notice in protectedPhantom.notices)
    assert protected.GetParentTransformNode() is None
    assert not protected.GetDisplayNode().GetAutoWindowLevel()
    assert (protected.GetDisplayNode().GetWindow(), protected.GetDisplayNode().GetLevel()) == display.RGB8_WINDOW_LEVEL


def test_protected_node_carries_provenance_only(protectedPhantom, weightsPath):
    protected = protectedPhantom.protected
    attributes = {name: protected.GetAttribute(name) for name in protected.GetAttributeNames()}
    assert set(attributes) == set(PROVENANCE_ATTRIBUTES)
    assert attributes["AMIF.role"] == "protected"
    assert attributes["AMIF.version"] == amif_core.__version__
    assert attributes["AMIF.identifier"] == "AMIF \u00a9"
    assert attributes["AMIF.device"] == "CPU"
    assert attributes["AMIF.weightsSHA256"] == read_key(protectedPhantom.keyPath).model_id
    assert attributes["AMIF.modelVersion"].startswith(weightsPath.stem)


def test_unlock_restores_the_clean_fusion_and_leaves_inputs_alone(protectedPhantom, coreModel):
    space = protectedPhantom
    protectedDigest = voxelDigest(space.protected)
    unlocked = space.logic.unlock(space.protected, space.keyPath, device="cpu")

    clean = cleanFusion(coreModel, space.mri, space.pet)
    assert unlocked.GetName() == "phantom T1 AMIF unlocked"
    assert np.array_equal(localIjkToRas(unlocked), localIjkToRas(space.protected))
    assert psnr(voxelArray(unlocked), clean) >= 50.0
    protectedRgb = voxelArray(space.protected) / 255.0  # stored as 8-bit RGB
    assert psnr(protectedRgb, clean) < 40.0, "the protected volume must differ from the clean fusion"
    assert unlocked.GetAttribute("AMIF.role") == "unlocked"
    shown = [(node.GetDisplayNode().GetWindow(), node.GetDisplayNode().GetLevel()) for node in (space.protected, unlocked)]
    assert shown == [display.RGB8_WINDOW_LEVEL, display.RGB_WINDOW_LEVEL]  # both shown as they are

    assert (voxelDigest(space.mri), voxelDigest(space.pet)) == space.inputDigests
    assert voxelDigest(space.protected) == protectedDigest
    assert space.mri.GetAttributeNames() == () and space.pet.GetAttributeNames() == ()


def test_a_key_made_by_earlier_shipped_weights_unlocks_after_an_upgrade(protectedPhantom, weightsPath, monkeypatch,
                                                                        tmp_path):
    """The phantom's key was made by the shipped weights; after an upgrade they ship beside a newer default, and a
    logic with no weights of its own unlocks with the file that made the key and records its name."""
    import torch

    import amif_core.inference.weights as weights
    from amif_core.networks.amif import AMIFNet

    shipped = tmp_path / "weights"
    shipped.mkdir()
    shutil.copyfile(weightsPath, shipped / "amif_earlier.pt")
    torch.manual_seed(5)
    weights.save_weights(AMIFNet(), shipped / "amif_newer.pt", {})
    monkeypatch.setattr(weights, "SHIPPED_WEIGHTS_DIR", shipped)
    monkeypatch.setattr(weights, "DEFAULT_WEIGHTS", shipped / "amif_newer.pt")
    space = protectedPhantom
    upgraded = AMIFSceneLogic(space.scene, space.views.applicationLogic)
    unlocked = upgraded.unlock(space.protected, space.keyPath, device="cpu")
    reference = space.logic.unlock(space.protected, space.keyPath, device="cpu")
    assert np.array_equal(voxelArray(unlocked), voxelArray(reference))
    assert unlocked.GetAttribute("AMIF.modelVersion").startswith("amif_earlier")
    for node in (unlocked, reference):
        space.scene.RemoveNode(node)


def test_label_map_and_vector_volumes_get_their_own_messages(workspace):
    scene = workspace.scene
    mri, pet = addPhantomPair(scene, SMALL_MRI_SHAPE)
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "brain labels")
    labels.SetAndObserveImageData(mri.GetImageData())
    vectors = {}
    for components, name in ((2, "flow field"), (3, "photo")):
        image = vtk.vtkImageData()
        image.SetDimensions(20, 24, 6)
        image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, components)
        vectors[components] = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", name)
        vectors[components].SetAndObserveImageData(image)
    keyPath = workspace.directory / "never.amifkey"
    before = nodeCount(scene)

    with pytest.raises(InvalidInputError, match="'brain labels' is a label map"):
        workspace.logic.protect(labels, pet, keyPath, device="cpu")
    with pytest.raises(InvalidInputError, match=r"'flow field' is a colour \(RGB\) or vector volume with 2 values"):
        workspace.logic.protect(mri, vectors[2], keyPath, device="cpu")
    with pytest.raises(InvalidInputError, match=r"'photo' is a colour \(RGB\) or vector volume with 3 values"):
        workspace.logic.protect(vectors[3], pet, keyPath, device="cpu")  # an RGB MRI: no
    with pytest.raises(InvalidInputError, match="already a colour"):
        workspace.logic.protect(mri, vectors[3], keyPath, device="cpu", colour="pet")
    with pytest.raises(InvalidInputError, match="'flow field' is a colour"):
        workspace.logic.unlock(vectors[2], keyPath)
    with pytest.raises(InvalidInputError, match="same node"):
        workspace.logic.protect(mri, mri, keyPath, device="cpu")
    assert nodeCount(scene) == before
    assert not keyPath.exists()


def test_colour_choices_rgb_input_and_keep_grey(workspace, coreModel):
    scene, logic = workspace.scene, workspace.logic
    mri, pet = addPhantomPair(scene, SMALL_MRI_SHAPE)
    assert readiness.colourTable(pet) == "pet" and readiness.colourTable(pet, "spect") == "spect"
    assert readiness.colourTable(pet, "grey") is None
    ct = addScalarVolumeNode(scene, np.full((4, 8, 8), -1000, np.int16), np.eye(4), "head CT")
    assert readiness.colourTable(ct) is None and "Grey" in readiness.colourDescription(ct)
    assert "'pet' colour table" in readiness.colourDescription(pet)

    grey = logic.protect(mri, pet, workspace.directory / "grey.amifkey", device="cpu", colour="grey")
    assert not grey.IsA("vtkMRMLVectorVolumeNode") and voxelArray(grey).shape == voxelArray(mri).shape
    unlockedGrey = logic.unlock(grey, workspace.directory / "grey.amifkey", device="cpu")
    assert psnr(voxelArray(unlockedGrey), cleanFusion(coreModel, mri, pet, None)) >= 50.0

    rgbVoxels = cleanFusion(coreModel, mri, pet)  # any RGB volume on a grid: here a colour fusion itself
    rgbNode = addScalarVolumeNode(scene, np.rint(rgbVoxels * 255).astype(np.uint8), localIjkToRas(mri), "RGB PET")
    assert rgbNode.IsA("vtkMRMLVectorVolumeNode") and "own colours" in readiness.colourDescription(rgbNode)
    before = voxelDigest(rgbNode)
    protected = logic.protect(mri, rgbNode, workspace.directory / "rgb.amifkey", device="cpu")
    assert protected.IsA("vtkMRMLVectorVolumeNode")
    unlocked = logic.unlock(protected, workspace.directory / "rgb.amifkey", device="cpu")
    assert unlocked.IsA("vtkMRMLVectorVolumeNode") and voxelArray(unlocked).shape == voxelArray(mri).shape + (3,)
    assert voxelDigest(rgbNode) == before
    keptGrey = logic.protect(mri, rgbNode, workspace.directory / "rgb-grey.amifkey", device="cpu", colour="grey")
    assert voxelArray(keptGrey).shape == voxelArray(mri).shape


def test_an_existing_key_file_is_not_replaced_without_consent(workspace):
    mri, pet = addPhantomPair(workspace.scene, SMALL_MRI_SHAPE)
    keyPath = workspace.directory / "existing.amifkey"
    keyPath.write_bytes(b"someone else's key")
    with pytest.raises(InvalidInputError, match="exists already"):
        workspace.logic.protect(mri, pet, keyPath, device="cpu")
    assert keyPath.read_bytes() == b"someone else's key"


def test_wrong_keys_passphrases_and_volumes_get_clear_messages(protectedPhantom, weightsPath, tmp_path):
    space = protectedPhantom
    scene = space.scene
    otherMri, otherPet = addPhantomPair(scene, SMALL_MRI_SHAPE, seed=3)
    otherKey = tmp_path / "other.amifkey"
    space.logic.protect(otherMri, otherPet, otherKey, device="cpu")

    encryptedKey = tmp_path / "encrypted.amifkey"
    write_key(encryptedKey, read_key(space.keyPath), passphrase="correct horse")
    damagedKey = tmp_path / "damaged.amifkey"
    damaged = bytearray(space.keyPath.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    damagedKey.write_bytes(bytes(damaged))
    edited = voxelArray(space.protected).copy()
    edited[:, 10:20, 10:20] //= 2
    editedNode = addScalarVolumeNode(scene, edited, localIjkToRas(space.protected), "edited protected")
    otherWeights = tmp_path / "other-weights.pt"
    shutil.copy(weightsPath, otherWeights)
    with open(otherWeights, "ab") as file:
        file.write(b"\0")  # same network, another file: another model id
    otherModelLogic = AMIFSceneLogic(scene, weightsPath=otherWeights)

    protectedDigest = voxelDigest(space.protected)
    before = nodeCount(scene)
    cases = [
        (lambda: space.logic.unlock(space.protected, otherKey), amif_core.KeyMismatchError,
         "This key belongs to another volume"),
        (lambda: space.logic.unlock(editedNode, space.keyPath), amif_core.ImageModifiedError,
         "was modified after it was protected"),
        (lambda: space.logic.unlock(space.protected, encryptedKey), InvalidInputError,
         "protected by a passphrase. Enter it in the Passphrase field"),
        (lambda: space.logic.unlock(space.protected, encryptedKey, passphrase="wrong horse"),
         amif_core.WrongPassphraseError, "The passphrase does not open the key file"),
        (lambda: space.logic.unlock(space.protected, damagedKey), amif_core.KeyFormatError,
         "is corrupted"),
        (lambda: otherModelLogic.unlock(space.protected, space.keyPath), amif_core.ModelMismatchError,
         "another model version"),
        (lambda: space.logic.unlock(space.protected, tmp_path / "missing.amifkey"), InvalidInputError,
         "does not exist"),
    ]
    for call, errorType, message in cases:
        with pytest.raises(errorType, match=message.replace("(", r"\(").replace(")", r"\)")):
            call()
        assert nodeCount(scene) == before
    assert voxelDigest(space.protected) == protectedDigest

    unlocked = space.logic.unlock(space.protected, encryptedKey, passphrase="correct horse")
    assert unlocked.GetName().startswith("phantom T1 AMIF unlocked")


def test_linear_parent_transform_is_used_in_world_space(workspace):
    scene = workspace.scene
    mri, pet = addPhantomPair(scene, SMALL_MRI_SHAPE)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    rotation = vtk.vtkTransform()
    rotation.Translate(4.0, -3.0, 2.5)
    rotation.RotateZ(7.0)
    transform.SetMatrixTransformToParent(rotation.GetMatrix())
    pet.SetAndObserveTransformNodeID(transform.GetID())
    hardened = addScalarVolumeNode(scene, voxelArray(pet), localIjkToRas(pet), "hardened PET", transform)
    assert slicer.vtkSlicerTransformLogic.hardenTransform(hardened)
    assert hardened.GetParentTransformNode() is None
    assert np.allclose(worldIjkToRas(pet), localIjkToRas(hardened), atol=1e-9)
    digest = voxelDigest(pet)

    throughTransform = workspace.logic.protect(mri, pet, workspace.directory / "a.amifkey", device="cpu")
    fromHardened = workspace.logic.protect(mri, hardened, workspace.directory / "b.amifkey", device="cpu")
    assert np.allclose(voxelArray(throughTransform), voxelArray(fromHardened), atol=1e-6)
    assert voxelDigest(pet) == digest and pet.GetTransformNodeID() == transform.GetID()

    pet.SetAndObserveTransformNodeID(None)
    ignoringTransform = worldVoxels(pet)[1]
    assert not np.allclose(ignoringTransform, localIjkToRas(hardened), atol=1e-3)


def test_warping_parent_transform_resamples_through_it(workspace):
    scene = workspace.scene
    mri, pet = addPhantomPair(scene, SMALL_MRI_SHAPE)
    shift = np.array([4.5, -3.0, 1.5])
    grid = vtk.vtkImageData()
    grid.SetDimensions(6, 6, 6)
    grid.SetSpacing(40.0, 40.0, 40.0)
    grid.SetOrigin(-100.0, -100.0, -100.0)
    grid.AllocateScalars(vtk.VTK_DOUBLE, 3)
    numpy_support.vtk_to_numpy(grid.GetPointData().GetScalars())[:] = shift
    gridTransform = slicer.vtkOrientedGridTransform()
    gridTransform.SetDisplacementGridData(grid)
    transformNode = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "warp")
    transformNode.SetAndObserveTransformToParent(gridTransform)
    pet.SetAndObserveTransformNodeID(transformNode.GetID())

    voxels, ijkToWorld, resampled = worldVoxels(pet)
    assert resampled and worldIjkToRas(pet) is None
    assert voxels.shape != voxelArray(pet).shape, "the grid grows to hold the moved volume"
    # Independently: SimpleITK resamples the untransformed PET with the same (constant) shift.
    source = sitkImageFromArray(voxelArray(pet), localIjkToRas(pet))
    reference = sitkImageFromArray(np.zeros(voxels.shape, np.float32), ijkToWorld)
    shiftBack = sitk.TranslationTransform(3, [float(v) for v in RAS_TO_LPS @ -shift])
    expected = sitk.GetArrayFromImage(sitk.Resample(source, reference, shiftBack, sitk.sitkLinear, 0.0,
                                                    sitk.sitkFloat32))
    assert np.allclose(voxels, expected, atol=1e-4)

    notices = []
    protected = workspace.logic.protect(mri, pet, workspace.directory / "warp.amifkey", device="cpu",
                                        notice=notices.append)
    assert any("resampled through that transform" in notice for notice in notices)
    assert np.array_equal(localIjkToRas(protected), localIjkToRas(mri))


def test_volumes_that_do_not_overlap_get_a_warning_and_are_refused(workspace):
    scene = workspace.scene
    mri, pet = addPhantomPair(scene, SMALL_MRI_SHAPE)
    shifted = localIjkToRas(pet)
    shifted[:3, 3] += (60.0, 0.0, 0.0)
    pet.SetIJKToRASMatrix(arrayToMatrix(shifted))
    assert any("covers only about" in warning for warning in readiness.inputWarnings(mri, pet))

    shifted[:3, 3] += (500.0, 0.0, 0.0)
    pet.SetIJKToRASMatrix(arrayToMatrix(shifted))
    warnings = readiness.inputWarnings(mri, pet)
    assert any("do not overlap in world space" in warning for warning in warnings)
    before = nodeCount(scene)
    with pytest.raises(amif_core.InputError, match="do not overlap in physical space"):
        workspace.logic.protect(mri, pet, workspace.directory / "none.amifkey", device="cpu")
    assert nodeCount(scene) == before
    assert not (workspace.directory / "none.amifkey").exists()


def test_comparison_layout_is_linked_centred_and_coloured(protectedPhantom):
    space = protectedPhantom
    preset = space.logic.showComparison(space.mri, space.pet, space.protected)
    layoutNode = display.layoutNode(space.scene)
    assert layoutNode.GetViewArrangement() == display.COMPARISON_LAYOUT_ID

    views = [display.MRI_VIEW, display.OTHER_VIEW, display.PROTECTED_VIEW]
    logics = [space.views.sliceLogic(view.name) for view in views]
    for sliceLogic, volume in zip(logics, (space.mri, space.pet, space.protected)):
        composite = sliceLogic.GetSliceCompositeNode()
        assert composite.GetBackgroundVolumeID() == volume.GetID()
        assert composite.GetLinkedControl() and not composite.GetDoPropagateVolumeSelection()
        assert sliceLogic.GetSliceNode().GetViewGroup() == display.VIEW_GROUP
    bounds = [0.0] * 6
    space.mri.GetRASBounds(bounds)
    centre = np.mean(np.reshape(bounds, (3, 2)), axis=1)
    halfVoxel = np.linalg.norm(localIjkToRas(space.mri)[:3, :3], axis=0).max() / 2
    for sliceLogic in logics:
        sliceToRas = sliceLogic.GetSliceNode().GetSliceToRAS()
        position = np.array([sliceToRas.GetElement(r, 3) for r in range(3)])
        assert np.allclose(position[:2], centre[:2], atol=1e-6), "centred in the axial plane"
        assert abs(position[2] - centre[2]) <= halfVoxel, "at the MRI's middle slice"
    assert len({tuple(np.round(logic.GetSliceNode().GetFieldOfView(), 6)) for logic in logics}) == 1
    assert len({round(logic.GetSliceOffset(), 6) for logic in logics}) == 1

    first = logics[0].GetSliceNode()
    first.SetInteractionFlags(first.SliceToRASFlag)
    first.InteractingOn()
    logics[0].SetSliceOffset(logics[0].GetSliceOffset() + 4.0)
    first.InteractingOff()
    assert len({round(logic.GetSliceOffset(), 6) for logic in logics}) == 1, "the views must be linked"

    petDisplay = space.pet.GetDisplayNode()
    assert preset == "PET SUV 0-10"
    assert petDisplay.GetColorNodeID() == display.PET_COLOR_IDS[0]
    assert (petDisplay.GetWindow(), petDisplay.GetLevel()) == (10.0, 5.0)
    assert space.logic.showComparison(space.mri, space.pet, space.protected) is None, "a user's colours are kept"


def test_a_key_path_with_tilde_works_for_unlock_as_its_check_said(protectedPhantom, monkeypatch, tmp_path):
    space = protectedPhantom
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(space.keyPath, home / "k.amifkey")
    monkeypatch.setenv("HOME", str(home))
    assert readiness.unlockBlocker(space.protected, "~/k.amifkey") is None
    assert KeyFileCache(str).state(readiness.keyFilePath("~/k.amifkey")) == KeyFileState(needsPassphrase=False)
    unlocked = space.logic.unlock(space.protected, "~/k.amifkey", device="cpu")
    assert "AMIF unlocked" in unlocked.GetName() and unlocked.GetAttribute("AMIF.role") == "unlocked"
    space.scene.RemoveNode(unlocked)


def test_views_are_fitted_after_the_layout_has_its_final_size(protectedPhantom, weightsPath):
    space = protectedPhantom
    deferred = []
    logic = AMIFSceneLogic(space.scene, space.views.applicationLogic, weightsPath, afterLayout=deferred.append)
    logic.showComparison(space.mri, space.pet, space.protected)
    assert len(deferred) == 1, "the fit waits for the layout"
    logics = [space.views.sliceLogic(view.name) for view in (display.MRI_VIEW, display.OTHER_VIEW,
                                                             display.PROTECTED_VIEW)]
    original = [sliceLogic.GetSliceNode().GetDimensions() for sliceLogic in logics]
    for sliceLogic in logics:  # what Qt does once the three-view layout is laid out: tall, narrow views
        sliceLogic.GetSliceNode().SetDimensions(200, 600, 1)
    deferred.pop()()
    bounds = [0.0] * 6
    space.mri.GetRASBounds(bounds)
    width = bounds[1] - bounds[0]
    for sliceLogic in logics:
        fieldOfView = sliceLogic.GetSliceNode().GetFieldOfView()
        assert fieldOfView[0] >= width - 1e-6, "the whole head fits across the narrow view"
        assert fieldOfView[1] / fieldOfView[0] == pytest.approx(600 / 200, rel=1e-6)
    for sliceLogic, dimensions in zip(logics, original):  # the shared phantom's views as they were
        sliceLogic.GetSliceNode().SetDimensions(*dimensions)
    space.logic.showComparison(space.mri, space.pet, space.protected)


def test_unlock_reads_the_key_file_once(protectedPhantom, tmp_path):
    """The passphrase question and the key arrays come from one read of the key file, plain or encrypted."""
    space = protectedPhantom
    encryptedKey = tmp_path / "encrypted.amifkey"
    write_key(encryptedKey, read_key(space.keyPath), passphrase="correct horse")
    for keyPath, passphrase in ((space.keyPath, None), (encryptedKey, "correct horse")):
        with opens_of(keyPath) as opened:
            unlocked = space.logic.unlock(space.protected, keyPath, passphrase=passphrase, device="cpu")
        assert opened == ["open"], opened
        space.scene.RemoveNode(unlocked)


def test_the_panel_reads_a_key_file_again_only_when_it_changes(protectedPhantom, tmp_path):
    space = protectedPhantom
    keyPath = tmp_path / "k.amifkey"
    shutil.copy(space.keyPath, keyPath)
    cache = KeyFileCache(str)
    with opens_of(keyPath) as opened:
        for _ in range(3):
            assert cache.state(keyPath) == KeyFileState(needsPassphrase=False)
    assert opened == ["open"], "refreshes of an unchanged file read it once"
    write_key(keyPath, read_key(space.keyPath), passphrase="pw", force=True)
    assert cache.state(keyPath) == KeyFileState(needsPassphrase=True)
    keyPath.write_bytes(keyPath.read_bytes()[:-1])  # damaged: the reason is shown, not hidden
    state = cache.state(keyPath)
    assert state.needsPassphrase is False and "cannot unlock" in state.problem and "truncated" in state.problem
    assert cache.state(tmp_path / "missing.amifkey") is None
