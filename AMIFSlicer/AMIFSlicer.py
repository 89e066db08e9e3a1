import unittest
from pathlib import Path
from typing import Optional, Union

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLVectorVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from AMIFSlicerLib.bootstrap import ensureAmifCoreImportable, forgetLibrary

ensureAmifCoreImportable(Path(__file__).resolve().parent)

from amif_core.runtime import runner  # noqa: E402
from AMIFSlicerLib import display, panelbuttons, panelstate, sampledata  # noqa: E402
from AMIFSlicerLib.dependencies import (  # noqa: E402
    TORCH_BACKENDS,
    DependencyInstaller,
    WorkerTorchCheck,
    pyTorchUtilsInstaller,
)
from AMIFSlicerLib.readiness import COLOUR_AUTO  # noqa: E402
from AMIFSlicerLib.logic import DEFAULT_IDENTIFIER, AMIFSceneLogic  # noqa: E402
from AMIFSlicerLib.pipinstall import runPip, slicerPython  # noqa: E402
from AMIFSlicerLib.worker import WorkerEngine  # noqa: E402

#
# AMIFSlicer
#


class AMIFSlicer(ScriptedLoadableModule):
    """Uses ScriptedLoadableModule base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("AMIF Protect and Unlock")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Filtering")]
        self.parent.dependencies = []
        self.parent.contributors = ["MAINTAINER NAME (AFFILIATION)"]  # placeholder: see the README's release checklist
        self.parent.helpText = _("""
Fuses a registered MRI with a CT, PET or SPECT volume into one image that carries a visible copyright
identifier, and writes a key file. Only that key recovers the watermark-free fusion.
<ul>
<li><b>Inputs</b>: the MRI and the CT/PET/SPECT volume (registered to the MRI: a volume under a registration
transform is used through it), the identifier text and the device (automatic, a GPU, or the CPU).</li>
<li><b>Protect and fuse</b> creates "&lt;MRI name&gt; AMIF protected" on the MRI's grid and writes the key
file. Keep the key apart from the image; optionally encrypt it with a passphrase (Advanced).</li>
<li><b>Show</b> switches to a linked MRI | CT/PET/SPECT | protected layout.</li>
<li><b>Unlock</b> recovers "&lt;name&gt; AMIF unlocked" from a protected volume and its key, and shows
protected | unlocked side by side.</li>
</ul>
On first use the module asks before installing PyTorch and a few small Python packages.
See the <a href="https://github.com/amif-project/amif#use-it-in-3d-slicer">AMIF Slicer documentation</a>.
""")
        self.parent.acknowledgementText = _("""
AMIF (authorizable medical image fusion) was developed by the AMIF contributors. The fusion backbone follows
Restormer/CDDFuse, the invertible coupling follows HiNet-style wavelet-domain coupling. The bundled demo volumes
derive from the MNI ICBM152 2009a template (Fonov et al., NeuroImage 2009 and 2011). The module layout follows
3D Slicer's scripted module template by Jean-Christophe Fillion-Robin (Kitware), Andras Lasso (PerkLab) and
Steve Pieper (Isomics).
""")
        slicer.app.connect("startupCompleted()", registerLayouts)
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Offer the bundled demo pair in the Sample Data module (loaded from the extension, nothing downloaded)."""
    import SampleData

    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=sampledata.SAMPLE_CATEGORY, sampleName=sampledata.SAMPLE_NAME, uris=[], fileNames=[], nodeNames=[],
        thumbnailFileName=str(Path(__file__).parent / "Resources" / "Icons" / "AMIFSlicer.png"),
        customDownloader=lambda *source: sampledata.loadDemo(slicer.util.loadVolume))


def dicomDatabaseFolders() -> list[str]:
    """The folder of Slicer's DICOM database, when there is one: no default key goes there."""
    database = getattr(slicer, "dicomDatabase", None)
    folder = database.databaseDirectory if database is not None and database.isOpen else ""
    return [folder] if folder else []


def launchWorker(command: list[str], cwd: str):
    """Start the AMIF worker the way Slicer starts console processes (no console window on Windows); stdout and
    stderr come back as one text stream."""
    return slicer.util.launchConsoleProcess(command, useStartupEnvironment=False, cwd=cwd)


def registerLayouts():
    """Register the AMIF comparison layouts, so scenes saved with them open in them."""
    layoutManager = slicer.app.layoutManager()
    if layoutManager is not None:
        display.registerLayouts(layoutManager.layoutLogic().GetLayoutNode())


#
# AMIFSlicerParameterNode
#

# The node types the selectors list: the parameter node's connector replaces the .ui's nodeTypes with the
# annotation's classes (exact classes: showChildNodeTypes is off, which keeps label maps out). A second scan may be
# RGB, and a colour protected fusion loaded from a file is a vector volume; None is listed for "nothing selected".
ScalarOrColourVolumeNode = Optional[Union[vtkMRMLScalarVolumeNode, vtkMRMLVectorVolumeNode]]


@parameterNodeWrapper
class AMIFSlicerParameterNode:
    """What the panel selects; saved with the scene. Passphrases and key material are never stored here.

    mriVolume, otherVolume - the volumes to fuse.
    colourMode - "auto" (PET/SPECT and RGB in colour, CT grey), "pet", "spect" or "grey".
    identifierText - the visible copyright text.
    device - "auto", "cpu", "cuda:N" or "mps".
    keyPath - where Protect writes the key ("" until chosen: a Path would show as ".").
    protectedVolume, unlockKeyPath - what Unlock opens.
    """

    mriVolume: vtkMRMLScalarVolumeNode
    otherVolume: ScalarOrColourVolumeNode
    colourMode: str = COLOUR_AUTO
    identifierText: str = DEFAULT_IDENTIFIER
    device: str = runner.AUTO
    keyPath: str = ""
    protectedVolume: ScalarOrColourVolumeNode
    unlockKeyPath: str = ""


#
# AMIFSlicerWidget
#


class AMIFSlicerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Uses ScriptedLoadableModuleWidget base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._actions = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/AMIFSlicer.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = AMIFSlicerLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.protectButton.connect("clicked(bool)", self.onProtectButton)
        self.ui.showButton.connect("clicked(bool)", self.onShowButton)
        self.ui.unlockButton.connect("clicked(bool)", self.onUnlockButton)
        self.ui.installDependenciesButton.connect("clicked(bool)", self.onInstallDependenciesButton)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)
        self.ui.colourComboBox.connect("currentIndexChanged(int)", self.onColourChanged)
        self.ui.keyPassphraseLineEdit.connect("textChanged(QString)", self.updateState)
        self.ui.keyPassphraseConfirmLineEdit.connect("textChanged(QString)", self.updateState)
        self.ui.protectProgressBar.hide()
        self.ui.unlockProgressBar.hide()
        reloadSection = getattr(self, "reloadCollapsibleButton", None)  # developer mode only
        self._actions = panelbuttons.PanelActions(
            self.ui, self.logic.amif, self._ensureDependencies,
            confirm=lambda question, title: slicer.util.confirmOkCancelDisplay(question, windowTitle=title),
            errorDisplay=slicer.util.tryWithErrorDisplay, processEvents=slicer.app.processEvents,
            message=panelstate.panelMessage, afterRun=self.updateState,
            otherSections=[reloadSection] if reloadSection is not None else [], avoidFolders=dicomDatabaseFolders,
            ownerSecret=lambda: slicer.app.settings().value(panelbuttons.OWNER_SECRET_SETTING, ""))
        self._actions.connectPathFields(lambda pathLineEdit: slicer.util.findChildren(pathLineEdit,
                                                                                      className="QLineEdit")[0],
                                        lambda: self._parameterNode)

        tooOld = panelstate.slicerVersionProblem(slicer.app.majorVersion, slicer.app.minorVersion)
        if tooOld:
            self.ui.dependencyStatusLabel.text = tooOld
            for section in self._actions.run.sections:
                section.enabled = section is self.ui.advancedCollapsibleButton  # it shows the device list
        self.populateDevices()
        for backend, label in TORCH_BACKENDS.items():
            self.ui.torchBackendComboBox.addItem(_(label), backend)
        for label, choice in panelstate.colourItems():
            self.ui.colourComboBox.addItem(label, choice)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """The module is unloaded (Reload, or Slicer quits): stop a run and the worker waiting for the next one,
        let go of the parameter node's GUI."""
        if self._actions is not None:
            self._actions.cancelRunning()
        if self.logic is not None:
            self.logic.amif.engine.shutdown()
        self.setParameterNode(None)
        self.removeObservers()

    def onReload(self) -> None:
        """Reload reads AMIFSlicerLib's files again too, not only this script."""
        forgetLibrary()
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateState)

    def onSceneStartClose(self, caller, event) -> None:
        self._actions.sceneClosing()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Get the parameter node and preselect suitable volumes for empty choices."""
        self.setParameterNode(self.logic.getParameterNode())
        panelstate.preselectVolumes(slicer.mrmlScene, self._parameterNode)

    def setParameterNode(self, inputParameterNode) -> None:
        """Connect the panel to a parameter node (None disconnects it)."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateState)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateState)
            self.selectDevice(self._parameterNode.device)
            panelstate.selectComboData(self.ui.colourComboBox, self._parameterNode.colourMode)
            self.updateState()

    # ------------------------------------------------------------------ panel state

    def populateDevices(self) -> None:
        """Fill the device list: automatic and CPU, and the GPUs the worker's dependency check found."""
        wasBlocked = self.ui.deviceComboBox.blockSignals(True)
        self.ui.deviceComboBox.clear()
        for label, deviceId in panelstate.deviceItems(self.logic.torchCheck.devices):
            self.ui.deviceComboBox.addItem(label, deviceId)
        self.ui.deviceComboBox.blockSignals(wasBlocked)
        self.ui.dependencyStatusLabel.text = panelstate.dependencyStatus(self.ui.dependencyStatusLabel.text)
        if self._parameterNode:
            self.selectDevice(self._parameterNode.device)

    def selectDevice(self, deviceId: str) -> None:
        """Show ``deviceId`` in the device list; a device this computer lacks becomes automatic, in the parameter
        node too (see :func:`AMIFSlicerLib.panelstate.deviceSelection`)."""
        available = [self.ui.deviceComboBox.itemData(i) for i in range(self.ui.deviceComboBox.count)]
        chosen, message = panelstate.deviceSelection(deviceId, available, runner.torch_installed())
        if message:
            self.ui.dependencyStatusLabel.text = message
        if self._parameterNode and self._parameterNode.device != chosen:
            self._parameterNode.device = chosen
        panelstate.selectComboData(self.ui.deviceComboBox, chosen)

    def onColourChanged(self, index: int) -> None:
        if self._parameterNode and index >= 0:
            self._parameterNode.colourMode = self.ui.colourComboBox.itemData(index)

    def onDeviceChanged(self, index: int) -> None:
        if self._parameterNode and index >= 0:
            self._parameterNode.device = self.ui.deviceComboBox.itemData(index)

    def updateState(self, caller=None, event=None) -> None:
        """Refresh button states, tooltips, warnings and the default key path from the parameter node."""
        if self._parameterNode is not None:
            self._actions.refresh(slicer.mrmlScene, self._parameterNode)

    # ------------------------------------------------------------------ running

    def _ensureDependencies(self) -> None:
        def status(text: str) -> None:
            self.ui.dependencyStatusLabel.text = text
            slicer.app.processEvents()

        summary = self.logic.ensureDependencies(self._parameterNode.device, self.ui.torchBackendComboBox.currentData,
                                                status)
        self.ui.dependencyStatusLabel.text = summary
        self.populateDevices()

    def onProtectButton(self) -> None:
        self._actions.protect(self._parameterNode)

    def onShowButton(self) -> None:
        parameters = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Showing the comparison failed."), waitCursor=True):
            self.logic.amif.showComparison(parameters.mriVolume, parameters.otherVolume, parameters.protectedVolume)

    def onUnlockButton(self) -> None:
        self._actions.unlock(self._parameterNode)

    def onInstallDependenciesButton(self) -> None:
        self._actions.installDependencies()


#
# AMIFSlicerLogic
#


class AMIFSlicerLogic(ScriptedLoadableModuleLogic):
    """Thin Slicer wrapper: the parameter node, the dependency dialogs and :class:`AMIFSlicerLib.logic.AMIFSceneLogic`
    on the application's scene (``self.amif``), where all the work is done. The network runs in a worker process
    started with Slicer's Python (:class:`AMIFSlicerLib.worker.WorkerEngine`), so torch never enters Slicer's own
    process; ``torchCheck`` checks PyTorch there once per device. After each run the next worker starts ahead of
    time and waits with torch imported (0.33 GB resident, measured on the CPU build), so a run does not wait
    for the import.

    Uses ScriptedLoadableModuleLogic base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        # Fit the views once Qt has laid out the new layout (its views still have their old size before that).
        engine = WorkerEngine(python=slicerPython(), launch=launchWorker, tempRoot=slicer.app.temporaryPath,
                              keepWarm=True)  # the next run finds torch imported
        self.amif = AMIFSceneLogic(slicer.mrmlScene, slicer.app.applicationLogic(),
                                   afterLayout=lambda fit: qt.QTimer.singleShot(0, fit), engine=engine)
        self.torchCheck = WorkerTorchCheck(engine.check)

    def getParameterNode(self):
        return AMIFSlicerParameterNode(super().getParameterNode())

    def ensureDependencies(self, device: str, backend: str = "auto", status=None) -> str:
        """Install what AMIF needs (asking first; never in testing mode; PyTorch as the ``backend`` build) and check
        PyTorch on ``device``; ``status(text)`` shows progress in the panel."""
        status = status or (lambda text: None)

        def launch(command: list[str]):
            return slicer.util.launchConsoleProcess(command, useStartupEnvironment=False)

        installer = DependencyInstaller(
            confirm=lambda question: slicer.util.confirmOkCancelDisplay(question, windowTitle=_("AMIF dependencies")),
            pipInstall=lambda arguments: runPip(arguments, launch, status),
            torchInstaller=pyTorchUtilsInstaller(),
            testing=slicer.app.testingEnabled(),
            backend=backend or "auto",
            status=status,
            verify=self.torchCheck,
        )
        return installer.ensure(device)


#
# AMIFSlicerTest
#


class AMIFSlicerTest(ScriptedLoadableModuleTest):
    """Self-test: synthetic volumes through protect and unlock (runs in Slicer, by "Reload and Test" and CTest).

    Uses ScriptedLoadableModuleTest base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        try:
            self.setUp()
            self.test_AMIFSlicerProtectAndUnlock()
            self.setUp()
            self.test_AMIFSlicerRejectsWrongInputs()
            self.test_AMIFSlicerSelectorsListColourVolumes()
        except unittest.SkipTest as skipped:
            self.delayDisplay(f"AMIF self-test skipped: {skipped}")

    def _requireDependencies(self) -> None:
        from AMIFSlicerLib.selftest import requireDependencies

        requireDependencies(self, slicer.app.testingEnabled(), lambda: AMIFSlicerLogic().ensureDependencies(runner.CPU))

    def test_AMIFSlicerProtectAndUnlock(self) -> None:
        """Protect an oblique, anisotropic MRI with a PET on another grid (in colour), then unlock it exactly."""
        from AMIFSlicerLib.selftest import checkProtectAndUnlock

        self._requireDependencies()
        checkProtectAndUnlock(self, AMIFSlicerLogic().amif, Path(slicer.util.tempDirectory()), self.delayDisplay,
                              show=slicer.app.layoutManager() is not None)

    def test_AMIFSlicerRejectsWrongInputs(self) -> None:
        """A label map as input and a key of another volume give their own messages and add no node."""
        from AMIFSlicerLib.selftest import checkRejectsWrongInputs

        self._requireDependencies()
        checkRejectsWrongInputs(self, AMIFSlicerLogic().amif, Path(slicer.util.tempDirectory()), self.delayDisplay)

    def test_AMIFSlicerSelectorsListColourVolumes(self) -> None:
        """Slicer's own node combo box connector gives the selectors the node types of the parameter node's
        annotations: scalar volumes for the MRI, scalar and vector (RGB) volumes for the second scan and the
        protected volume."""
        from slicer.parameterNodeWrapper.guiConnectors import createGuiConnector

        for annotation, expected in ((vtkMRMLScalarVolumeNode, ["vtkMRMLScalarVolumeNode"]),
                                     (ScalarOrColourVolumeNode, ["vtkMRMLScalarVolumeNode",
                                                                 "vtkMRMLVectorVolumeNode"])):
            comboBox = slicer.qMRMLNodeComboBox()
            createGuiConnector(comboBox, annotation)
            self.assertEqual(list(comboBox.nodeTypes), expected)
