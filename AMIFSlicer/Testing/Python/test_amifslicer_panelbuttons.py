"""The panel's Protect and Unlock buttons (AMIFSlicerLib.panelbuttons) on real MRML, with plain widget stand-ins:
busy before any install, cancel, expected errors in the panel line, and the default key path."""
from __future__ import annotations

import contextlib
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from AMIFSlicerLib import panelbuttons, readiness
from AMIFSlicerLib.testdata import addPhantomPair
from AMIFSlicerLib.volumenodes import voxelArray

UI_FILE = Path(__file__).resolve().parents[2] / "Resources" / "UI" / "AMIFSlicer.ui"

WIDGETS = ("inputsCollapsibleButton", "protectCollapsibleButton", "showCollapsibleButton", "unlockCollapsibleButton",
           "advancedCollapsibleButton", "protectButton", "unlockButton", "showButton", "protectProgressBar",
           "unlockProgressBar", "protectStatusLabel", "unlockStatusLabel", "dependencyStatusLabel",
           "keyPathHintLabel", "inputWarningLabel", "colourComboBox", "keyPassphraseLineEdit",
           "keyPassphraseConfirmLineEdit", "passphraseLineEdit", "passphraseLabel", "keyPathLineEdit",
           "unlockKeyPathLineEdit", "installDependenciesButton", "protectedSelector", "torchBackendComboBox",
           "deviceComboBox", "reloadCollapsibleButton")


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

    def __init__(self, workspace, processEvents=lambda panel: None, duringInstall=lambda panel: None,
                 avoidFolders=lambda: (), ownerSecret=lambda: "") -> None:
        self.ui = SimpleNamespace(**{name: Widget(name) for name in WIDGETS})
        self.dialogs: list[str] = []
        self.busyAtInstall: list[tuple[str, bool, bool]] = []
        self.duringInstall = duringInstall
        self.actions = panelbuttons.PanelActions(
            self.ui, workspace.logic, self.ensureDependencies, confirm=lambda question, title: True,
            errorDisplay=self.errorDisplay, processEvents=lambda: processEvents(self), message=str,
            afterRun=lambda: None, otherSections=[self.ui.reloadCollapsibleButton], avoidFolders=avoidFolders,
            ownerSecret=ownerSecret)

    def ensureDependencies(self) -> None:
        ui = self.ui
        self.busyAtInstall.append((ui.protectButton.text, ui.inputsCollapsibleButton.enabled, ui.unlockButton.enabled))
        self.duringInstall(self)

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


def panelOnPhantom(workspace) -> tuple[Panel, SimpleNamespace]:
    """A phantom pair in the workspace, a panel on it, and parameters that choose the pair and the key k.amifkey."""
    mri, pet = addPhantomPair(workspace.scene, mriShape=(4, 24, 20))
    return Panel(workspace), parametersFor(mri, pet, workspace.directory / "k.amifkey")


def test_protect_marks_the_panel_busy_before_the_install_and_gives_it_back(workspace):
    panel, parameters = panelOnPhantom(workspace)
    keyPath = Path(parameters.keyPath)
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


def test_protect_marks_the_fusion_with_the_owner_secret_of_the_settings(workspace, monkeypatch):
    """The owner secret file named in Slicer's settings chooses the trace mark (the fusion differs from the demo
    secret's, and equals the logic's own run with that file); without one the demo secret is used and said."""
    from amif_core.tracing.secret import ENVIRONMENT, new_secret, write_secret

    monkeypatch.delenv(ENVIRONMENT, raising=False)
    secretPath = workspace.directory / "owner.secret"
    write_secret(secretPath, new_secret())
    mri, pet = addPhantomPair(workspace.scene, mriShape=(4, 24, 20))
    runs = {}
    for name, setting in (("owner", str(secretPath)), ("demo", "")):
        panel = Panel(workspace, ownerSecret=lambda setting=setting: setting)
        parameters = parametersFor(mri, pet, workspace.directory / f"{name}.amifkey")
        panel.actions.protect(parameters)
        runs[name] = (voxelArray(parameters.protectedVolume).copy(), panel.ui.protectStatusLabel.toolTip)
    direct = workspace.logic.protect(mri, pet, workspace.directory / "direct.amifkey", "Clinic \u00a9", device="cpu",
                                     ownerSecret=secretPath)
    assert np.array_equal(runs["owner"][0], voxelArray(direct))
    assert not np.array_equal(runs["owner"][0], runs["demo"][0])
    assert "public demo trace mark" in runs["demo"][1] and "public demo trace mark" not in runs["owner"][1]
    assert str(secretPath) not in runs["owner"][1]  # nor the secret's place, in what the panel shows


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


class Emitter:
    """A Qt object's signals as PythonQt connects them: ``connect(signature, slot)``."""

    def __init__(self) -> None:
        self.slots: dict[str, list] = {}

    def connect(self, signature: str, slot) -> None:
        self.slots.setdefault(signature, []).append(slot)

    def emit(self, signature: str, *values) -> None:
        for slot in self.slots.get(signature, []):
            slot(*values)


class StandInPathLineEdit(Emitter):
    """ctkPathLineEdit as CTK builds it from the .ui's name filters: its line edit's QRegExpValidator is
    ctk::nameFiltersToRegExp (".*\\.ext?$" for each "*.ext", ".+" without any), and ``currentPathChanged`` is
    emitted only while that validator accepts the whole text; the line edit's ``textChanged`` comes with every edit."""

    def __init__(self, nameFilters: list[str]) -> None:
        super().__init__()
        extensions = re.findall(r"\*\.(\w+)", " ".join(nameFilters))
        self.pattern = "(" + "|".join(rf".*\.{e}?$" for e in extensions) + ")" if extensions else ".+"
        self.lineEdit = Emitter()
        self.currentPath = ""

    def type(self, text: str) -> None:
        self.currentPath = text
        self.lineEdit.emit("textChanged(QString)", text)
        if re.fullmatch(self.pattern, text):
            self.emit("currentPathChanged(QString)", text)


def test_any_key_name_and_a_cleared_field_reach_the_parameter_node(workspace, tmp_path):
    widgets = {w.get("name"): w for w in ElementTree.parse(UI_FILE).iter("widget")}
    panel = Panel(workspace)
    heard: list[str] = []
    for field, name in panelbuttons.PATH_FIELDS:
        nameFilters = [s.text for p in widgets[name].findall("property") if p.get("name") == "nameFilters"
                       for s in p.iter("string")]
        setattr(panel.ui, name, StandInPathLineEdit(nameFilters))
        getattr(panel.ui, name).connect("currentPathChanged(QString)", heard.append)  # what the module followed
    parameters = parametersFor(None, None, tmp_path / "default.amifkey")
    panel.actions.connectPathFields(lambda pathLineEdit: pathLineEdit.lineEdit, lambda: parameters)
    for text in (str(tmp_path / "patient.key"), "", str(tmp_path / "cli-key.bin")):
        panel.ui.keyPathLineEdit.type(text)
        assert parameters.keyPath == text
        panel.ui.unlockKeyPathLineEdit.type(text)
        assert parameters.unlockKeyPath == text
    assert heard == [], "ctkPathLineEdit's currentPathChanged never carries these names, nor the cleared field"
    panel.ui.keyPathLineEdit.type(str(tmp_path / "k.amifkey"))
    assert parameters.keyPath == str(tmp_path / "k.amifkey") and len(heard) == 1


def test_the_install_button_marks_the_panel_busy_so_no_second_install_starts(workspace):
    mri, pet = addPhantomPair(workspace.scene, mriShape=(4, 24, 20))
    parameters = parametersFor(mri, pet, workspace.directory / "k.amifkey")
    states = []

    def clickEverythingDuringTheInstall(panel) -> None:
        ui = panel.ui
        states.append((ui.protectButton.enabled, ui.unlockButton.enabled, ui.installDependenciesButton.enabled,
                       ui.inputsCollapsibleButton.enabled, ui.reloadCollapsibleButton.enabled,
                       ui.torchBackendComboBox.enabled))
        panel.actions.protect(parameters)  # a click that Qt would not deliver to a disabled button
        panel.actions.unlock(parameters)
        panel.actions.installDependencies()

    panel = Panel(workspace, duringInstall=clickEverythingDuringTheInstall)
    nodes = workspace.scene.GetNumberOfNodes()
    panel.actions.installDependencies()
    assert len(panel.busyAtInstall) == 1, "one install, however often the buttons are clicked meanwhile"
    assert states == [(False, False, False, False, False, False)]
    assert workspace.scene.GetNumberOfNodes() == nodes and not (workspace.directory / "k.amifkey").exists()
    ui = panel.ui
    assert not panel.actions.run.running and ui.installDependenciesButton.enabled and ui.inputsCollapsibleButton.enabled
    assert ui.reloadCollapsibleButton.enabled and ui.protectButton.enabled


def test_the_reload_section_and_the_running_sections_inputs_wait_during_a_run(workspace):
    mri, pet = addPhantomPair(workspace.scene, mriShape=(4, 24, 20))
    seen = []

    def look(panel) -> None:
        ui = panel.ui
        seen.append((ui.reloadCollapsibleButton.enabled, ui.keyPathLineEdit.enabled, ui.protectButton.enabled))

    panel = Panel(workspace, processEvents=look)
    panel.actions.protect(parametersFor(mri, pet, workspace.directory / "k.amifkey"))
    assert seen and set(seen) == {(False, False, True)}  # Cancel stays clickable
    assert panel.ui.reloadCollapsibleButton.enabled and panel.ui.keyPathLineEdit.enabled


def test_unlock_shows_the_pair_it_ran_on_when_the_selector_changes_meanwhile(workspace):
    panel, parameters = panelOnPhantom(workspace)
    panel.actions.protect(parameters)
    protected = parameters.protectedVolume
    selectorStates = []

    def changeTheSelector(panel) -> None:
        selectorStates.append(panel.ui.protectedSelector.enabled)
        parameters.protectedVolume = parameters.otherVolume  # what a click on a still-enabled selector did

    shown = []
    workspace.logic.showUnlocked = lambda protectedNode, unlockedNode: shown.append((protectedNode, unlockedNode))
    panel = Panel(workspace, processEvents=changeTheSelector)
    panel.actions.unlock(parameters)
    unlocked = workspace.scene.GetFirstNodeByName("phantom T1 AMIF unlocked")
    assert shown == [(protected, unlocked)] and set(selectorStates) == {False}


def test_a_scene_closed_at_the_last_progress_tick_writes_and_adds_nothing(workspace):
    mri, pet = addPhantomPair(workspace.scene, mriShape=(4, 24, 20))

    def closeAtTheLastTick(panel) -> None:
        bar = panel.ui.protectProgressBar
        if bar.maximum and bar.value == bar.maximum:
            panel.actions.sceneClosing()

    panel = Panel(workspace, processEvents=closeAtTheLastTick)
    keyPath = workspace.directory / "k.amifkey"
    nodes = workspace.scene.GetNumberOfNodes()
    parameters = parametersFor(mri, pet, keyPath)
    panel.actions.protect(parameters)
    assert panel.ui.protectProgressBar.value == panel.ui.protectProgressBar.maximum == 4  # it got there
    assert panel.ui.protectStatusLabel.text == "Cancelled; nothing was written or added."
    assert not keyPath.exists() and workspace.scene.GetNumberOfNodes() == nodes and not panel.dialogs


def test_after_a_scene_close_the_next_mri_gets_a_default_key_again(workspace):
    mri, pet = addPhantomPair(workspace.scene, mriShape=(4, 24, 20))
    panel = Panel(workspace)
    parameters = parametersFor(mri, pet)
    panel.actions.refresh(workspace.scene, parameters)
    assert parameters.keyPath
    panel.actions.sceneClosing()  # what the widget does on the scene's StartCloseEvent
    workspace.scene.Clear(0)
    mri, pet = addPhantomPair(workspace.scene, mriShape=(4, 24, 20))
    parameters = parametersFor(mri, pet)  # the new scene's parameter node
    panel.actions.refresh(workspace.scene, parameters)
    assert parameters.keyPath == str(workspace.directory.resolve() / "phantom T1 AMIF key.amifkey")
    panel.actions.refresh(workspace.scene, parameters)
    assert panel.ui.protectButton.enabled, panel.ui.protectButton.toolTip


def mriFileIn(mri, folder: Path) -> None:
    """Give ``mri`` a storage node naming a file in ``folder``, as loading it from there does."""
    if mri.GetStorageNode() is None:
        mri.AddDefaultStorageNode()
    mri.GetStorageNode().SetFileName(str(folder / "mri.nrrd"))


def test_the_default_key_never_goes_into_the_dicom_database_the_extension_or_a_read_only_folder(workspace, tmp_path):
    mri, pet = addPhantomPair(workspace.scene, mriShape=(4, 24, 20))
    database = tmp_path / "SlicerDICOMDatabase"
    (database / "dicom" / "study").mkdir(parents=True)
    sceneFolder = str(workspace.directory.resolve())
    demoFolder = Path(readiness.installFolders()[-1]) / "data" / "demo"
    for folder, because in ((database / "dicom" / "study", "is inside Slicer's DICOM database"),
                            (demoFolder, "belongs to the AMIF extension"),
                            (Path("/proc"), "cannot be written")):
        mriFileIn(mri, folder)
        panel = Panel(workspace, avoidFolders=lambda: [str(database)])
        parameters = parametersFor(mri, pet)
        panel.actions.refresh(workspace.scene, parameters)
        assert str(Path(parameters.keyPath).parent) == sceneFolder, folder
        assert panel.ui.keyPathHintLabel.text.startswith("The key goes in the scene's folder")
        assert f"'{folder.resolve()}' {because}" in panel.ui.keyPathHintLabel.text
    mriFileIn(mri, tmp_path)
    place = readiness.defaultKeyPlace(workspace.scene, mri, avoid=[database])
    assert place.path.parent == tmp_path and place.reason == "next to the MRI's file"


def test_protect_refuses_a_key_folder_that_cannot_be_written_before_it_runs(workspace):
    mri, pet = addPhantomPair(workspace.scene, mriShape=(4, 24, 20))
    panel = Panel(workspace)
    parameters = parametersFor(mri, pet, "/proc/patient.amifkey")
    panel.actions.refresh(workspace.scene, parameters)
    assert not panel.ui.protectButton.enabled
    assert panel.ui.protectButton.toolTip == "The folder '/proc' cannot be written; choose another place for the key file."
    panel.actions.protect(parameters)  # the logic checks it too, before any work
    assert panel.ui.protectStatusLabel.text.startswith("Protecting failed: The folder '/proc' cannot be written")
    assert panel.busyAtInstall and parameters.protectedVolume is None


def test_a_button_reaches_the_logic_in_three_calls(workspace, monkeypatch):
    """Qt calls the widget's slot (1), which calls PanelActions (2), which calls the scene logic (3)."""
    import ast
    import inspect

    module = ast.parse((Path(__file__).resolve().parents[2] / "AMIFSlicer.py").read_text(encoding="utf-8"))
    slots = {node.name: node for node in ast.walk(module) if isinstance(node, ast.FunctionDef)}
    for slot, action in (("onProtectButton", "protect"), ("onUnlockButton", "unlock")):
        body = slots[slot].body
        assert len(body) == 1 and ast.unparse(body[0]) == f"self._actions.{action}(self._parameterNode)", slot

    panel, parameters = panelOnPhantom(workspace)
    callers = {}
    for name in ("protect", "unlock"):
        def recording(*args, _name=name, _real=getattr(workspace.logic, name), **kwargs):
            callers[_name] = inspect.stack()[1]
            return _real(*args, **kwargs)

        monkeypatch.setattr(workspace.logic, name, recording)
    panel.actions.protect(parameters)
    panel.actions.unlock(parameters)
    for name in ("protect", "unlock"):
        assert callers[name].function == name and isinstance(callers[name].frame.f_locals["self"],
                                                              panelbuttons.PanelActions)
