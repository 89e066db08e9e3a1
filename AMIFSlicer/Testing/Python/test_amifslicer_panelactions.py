"""The panel's Protect and Unlock buttons (AMIFSlicerLib.panelactions) on real MRML, with plain widget stand-ins:
busy before any install, cancel, expected errors in the panel line, and the default key path."""
from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np
from AMIFSlicerLib import panelactions
from AMIFSlicerLib.testdata import addPhantomPair
from AMIFSlicerLib.volumenodes import voxelArray

WIDGETS = ("inputsCollapsibleButton", "protectCollapsibleButton", "showCollapsibleButton", "unlockCollapsibleButton",
           "advancedCollapsibleButton", "protectButton", "unlockButton", "showButton", "protectProgressBar",
           "unlockProgressBar", "protectStatusLabel", "unlockStatusLabel", "dependencyStatusLabel",
           "keyPathHintLabel", "inputWarningLabel", "colourComboBox", "keyPassphraseLineEdit",
           "keyPassphraseConfirmLineEdit", "passphraseLineEdit", "passphraseLabel", "keyPathLineEdit",
           "unlockKeyPathLineEdit")


class Widget(SimpleNamespace):
    """The properties the panel sets on a Qt widget, as plain attributes."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name, text="Protect" if name == "protectButton" else "", toolTip="", enabled=True,
                         visible=True, value=0, maximum=0, format="", currentPath="", shown=False)

    def show(self) -> None:
        self.shown = True

    def hide(self) -> None:
        self.shown = False


class Panel:
    """A panel of widget stand-ins with PanelActions on a workspace's scene logic; records what it was asked."""

    def __init__(self, workspace, processEvents=lambda panel: None) -> None:
        self.ui = SimpleNamespace(**{name: Widget(name) for name in WIDGETS})
        self.dialogs: list[str] = []
        self.busyAtInstall: list[tuple[str, bool, bool]] = []
        self.actions = panelactions.PanelActions(
            self.ui, workspace.logic, self.ensureDependencies, confirm=lambda question, title: True,
            errorDisplay=self.errorDisplay, processEvents=lambda: processEvents(self), message=str,
            afterRun=lambda: None)

    def ensureDependencies(self) -> None:
        ui = self.ui
        self.busyAtInstall.append((ui.protectButton.text, ui.inputsCollapsibleButton.enabled, ui.unlockButton.enabled))

    @contextlib.contextmanager
    def errorDisplay(self, text: str):
        try:
            yield
        except Exception as error:
            self.dialogs.append(f"{text} {error}")
            raise


def parametersFor(mri, pet, keyPath="") -> SimpleNamespace:
    return SimpleNamespace(mriVolume=mri, otherVolume=pet, colourMode="auto", identifierText="Clinic \u00a9",
                           device="cpu", keyPath=str(keyPath), protectedVolume=None,
                           unlockKeyPath=".")  # as a scene saved with an older AMIF (a Path) holds it


def test_refresh_proposes_the_key_path_once_and_enables_protect(workspace):
    mri, pet = addPhantomPair(workspace.scene, mriShape=(4, 24, 20))
    panel = Panel(workspace)
    parameters = parametersFor(mri, pet)
    panel.actions.refresh(workspace.scene, parameters)
    assert parameters.keyPath == str(workspace.directory.resolve() / "phantom T1 AMIF key.amifkey")
    assert panel.ui.keyPathLineEdit.currentPath == ""  # shown at the next refresh, which the node's observer runs
    assert panel.ui.keyPathHintLabel.text.startswith("The key goes in the scene's folder")
    panel.actions.refresh(workspace.scene, parameters)
    assert panel.ui.keyPathLineEdit.currentPath == parameters.keyPath
    assert panel.ui.unlockKeyPathLineEdit.currentPath == ""  # unset reads as empty, never as "."
    assert panel.ui.protectButton.enabled and panel.ui.protectButton.toolTip.startswith("Fuse the two volumes")
    assert not panel.ui.unlockButton.enabled and panel.ui.unlockButton.toolTip == "Select the protected volume."
    parameters.keyPath = str(workspace.directory / "mine.amifkey")
    panel.actions.refresh(workspace.scene, parameters)
    assert parameters.keyPath == str(workspace.directory / "mine.amifkey")  # the user's choice is never replaced
    assert panel.ui.keyPathHintLabel.text == "The key goes where you chose."


def test_protect_marks_the_panel_busy_before_the_install_and_gives_it_back(workspace):
    mri, pet = addPhantomPair(workspace.scene, mriShape=(4, 24, 20))
    panel = Panel(workspace)
    keyPath = workspace.directory / "k.amifkey"
    parameters = parametersFor(mri, pet, keyPath)
    panel.actions.protect(parameters)
    assert panel.busyAtInstall == [("Cancel", False, False)]  # a second click could only cancel
    assert parameters.protectedVolume is not None and voxelArray(parameters.protectedVolume).shape[-1] == 3
    assert parameters.unlockKeyPath == str(keyPath) and keyPath.is_file()
    assert "(not encrypted)" in panel.ui.protectStatusLabel.text and not panel.dialogs
    ui = panel.ui
    assert ui.protectButton.text == "Protect" and ui.inputsCollapsibleButton.enabled and not ui.protectProgressBar.shown
    assert ui.protectProgressBar.value == ui.protectProgressBar.maximum == 4  # one step per slice

    panel.actions.unlock(parameters)
    unlocked = workspace.scene.GetFirstNodeByName("phantom T1 AMIF unlocked")
    assert unlocked is not None and ui.unlockStatusLabel.text.startswith("Created 'phantom T1 AMIF unlocked'")
    assert not np.array_equal(voxelArray(unlocked), voxelArray(parameters.protectedVolume))


def test_a_second_click_cancels_and_nothing_is_written_or_added(workspace):
    mri, pet = addPhantomPair(workspace.scene, mriShape=(4, 24, 20))

    def clickAgainOnce(panel) -> None:  # Qt delivers the Cancel click while the run processes events
        if not panel.actions.run.cancelRequested and panel.actions.run.running:
            panel.actions.protect(parameters)

    panel = Panel(workspace, processEvents=clickAgainOnce)
    keyPath = workspace.directory / "k.amifkey"
    parameters = parametersFor(mri, pet, keyPath)
    nodes = workspace.scene.GetNumberOfNodes()
    panel.actions.protect(parameters)
    assert panel.ui.protectStatusLabel.text == "Cancelled; nothing was written or added."
    assert not keyPath.exists() and workspace.scene.GetNumberOfNodes() == nodes
    assert parameters.protectedVolume is None and panel.ui.protectButton.text == "Protect"


def test_an_expected_error_goes_to_the_panel_line_only(workspace):
    mri, pet = addPhantomPair(workspace.scene, mriShape=(4, 24, 20))
    labels = workspace.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    labels.SetAndObserveImageData(mri.GetImageData())
    panel = Panel(workspace)
    panel.actions.protect(parametersFor(labels, pet, workspace.directory / "k.amifkey"))
    assert panel.ui.protectStatusLabel.text.startswith("Protecting failed:")
    assert "label map" in panel.ui.protectStatusLabel.text and not panel.dialogs


def test_closing_the_scene_cancels_the_run_and_adds_nothing(workspace):
    mri, pet = addPhantomPair(workspace.scene, mriShape=(4, 24, 20))
    panel = Panel(workspace, processEvents=lambda panel: panel.actions.sceneClosing())  # the close arrives mid-run
    keyPath = workspace.directory / "k.amifkey"
    nodes = workspace.scene.GetNumberOfNodes()
    panel.actions.protect(parametersFor(mri, pet, keyPath))
    assert panel.ui.protectStatusLabel.text == "Cancelled; nothing was written or added."
    assert not keyPath.exists() and workspace.scene.GetNumberOfNodes() == nodes
    assert not panel.actions.run.running and panel.ui.inputsCollapsibleButton.enabled  # the panel is given back
