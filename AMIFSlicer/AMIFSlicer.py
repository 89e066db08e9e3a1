import time
import unittest
from pathlib import Path

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
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

from AMIFSlicerLib.bootstrap import ensureAmifCoreImportable

ensureAmifCoreImportable(Path(__file__).resolve().parent)

from amif_core.inference import runner  # noqa: E402
from AMIFSlicerLib import display, panel, sampledata  # noqa: E402
from AMIFSlicerLib.dependencies import TORCH_BACKENDS, DependencyInstaller, pyTorchUtilsInstaller  # noqa: E402
from AMIFSlicerLib.logic import COLOUR_AUTO, COLOUR_GREY, DEFAULT_IDENTIFIER, AMIFSceneLogic, keyFilePath  # noqa: E402

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
        self.parent.contributors = ["AMIF contributors (AMIF project)"]
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


def registerLayouts():
    """Register the AMIF comparison layouts, so scenes saved with them open in them."""
    layoutManager = slicer.app.layoutManager()
    if layoutManager is not None:
        display.registerLayouts(layoutManager.layoutLogic().GetLayoutNode())


def panelMessage(error: Exception) -> str:
    """The error's message, with the panel's advice for the setting that fixes it (core errors name one)."""
    hints = {
        "axis": _("The slice axis follows the MRI's orientation; reorient or crop the MRI."),
        "device": _("Choose CPU in the Device list (Advanced)."),
        "overwrite": _("Choose another key file."),
        "passphrase": _("Enter it in the Passphrase field."),
        "identifier": _("Change the Owner / copyright text."),
        "colour": _("Change the Colour choice."),
    }
    return error.hint(hints) if hasattr(error, "hint") else str(error)


#
# AMIFSlicerParameterNode
#


@parameterNodeWrapper
class AMIFSlicerParameterNode:
    """What the panel selects; saved with the scene. Passphrases and key material are never stored here.

    mriVolume, otherVolume - the volumes to fuse.
    colourMode - "auto" (PET/SPECT and RGB in colour, CT grey), "pet", "spect" or "grey".
    identifierText - the visible copyright text.
    device - "auto", "cpu", "cuda:N" or "mps".
    keyPath - where Protect writes the key.
    protectedVolume, unlockKeyPath - what Unlock opens.
    """

    mriVolume: vtkMRMLScalarVolumeNode
    otherVolume: vtkMRMLScalarVolumeNode
    colourMode: str = COLOUR_AUTO
    identifierText: str = DEFAULT_IDENTIFIER
    device: str = runner.AUTO
    keyPath: Path
    protectedVolume: vtkMRMLScalarVolumeNode
    unlockKeyPath: Path


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
        self._autoKeyPath = None
        self._autoKeyFor = None
        self._idleButtonText = ""
        self._running = False
        self._cancelRequested = False

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
        self.ui.unlockKeyPathLineEdit.connect("currentPathChanged(QString)", self.updatePassphraseVisibility)
        self.ui.keyPassphraseLineEdit.connect("textChanged(QString)", self.updateState)
        self.ui.keyPassphraseConfirmLineEdit.connect("textChanged(QString)", self.updateState)
        self.ui.protectProgressBar.hide()
        self.ui.unlockProgressBar.hide()

        tooOld = panel.slicerVersionProblem(slicer.app.majorVersion, slicer.app.minorVersion)
        if tooOld:
            self.ui.dependencyStatusLabel.text = tooOld
            for section in (self.ui.inputsCollapsibleButton, self.ui.protectCollapsibleButton,
                            self.ui.showCollapsibleButton, self.ui.unlockCollapsibleButton):
                section.enabled = False
        self.populateDevices()
        for backend, label in TORCH_BACKENDS.items():
            self.ui.torchBackendComboBox.addItem(_(label), backend)
        for label, choice in ((_("Automatic: PET/SPECT in colour, CT grey"), COLOUR_AUTO),
                              (_("PET colours (hot iron)"), "pet"), (_("SPECT colours"), "spect"),
                              (_("Keep grey"), COLOUR_GREY)):
            self.ui.colourComboBox.addItem(label, choice)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateState)

    def onSceneStartClose(self, caller, event) -> None:
        if self._running:  # the run stops at its next slice and adds nothing to the closing (or the next) scene
            self._cancelRequested = True
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Get the parameter node and preselect the first suitable volumes when nothing is selected yet."""
        self.setParameterNode(self.logic.getParameterNode())
        parameters = self._parameterNode
        if not parameters.mriVolume or not parameters.otherVolume:
            mri, other = self.logic.amif.suggestInputs()
            if not parameters.mriVolume and mri:
                parameters.mriVolume = mri
            if not parameters.otherVolume and other and other is not parameters.mriVolume:
                parameters.otherVolume = other
        if not parameters.protectedVolume:
            protected = self.logic.amif.suggestProtectedVolume()
            if protected:
                parameters.protectedVolume = protected

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
            self._selectColour(self._parameterNode.colourMode)
            self.updateState()

    # ------------------------------------------------------------------ panel state

    def populateDevices(self) -> None:
        """Fill the device list (CUDA GPUs with their memory, Apple MPS, CPU; only auto and CPU before PyTorch)."""
        wasBlocked = self.ui.deviceComboBox.blockSignals(True)
        self.ui.deviceComboBox.clear()
        for option in runner.available_devices():
            self.ui.deviceComboBox.addItem(option.label, option.device_id)
        self.ui.deviceComboBox.blockSignals(wasBlocked)
        self.ui.dependencyStatusLabel.text = panel.dependencyStatus(self.ui.dependencyStatusLabel.text)
        if self._parameterNode:
            self.selectDevice(self._parameterNode.device)

    def selectDevice(self, deviceId: str) -> None:
        """Show ``deviceId`` in the device list; a device this computer lacks becomes automatic, in the parameter
        node too (see :func:`AMIFSlicerLib.panel.deviceSelection`)."""
        available = [self.ui.deviceComboBox.itemData(i) for i in range(self.ui.deviceComboBox.count)]
        chosen, message = panel.deviceSelection(deviceId, available, runner.torch_installed())
        if message:
            self.ui.dependencyStatusLabel.text = message
        if self._parameterNode and self._parameterNode.device != chosen:
            self._parameterNode.device = chosen
        wasBlocked = self.ui.deviceComboBox.blockSignals(True)
        self.ui.deviceComboBox.currentIndex = self.ui.deviceComboBox.findData(chosen)
        self.ui.deviceComboBox.blockSignals(wasBlocked)

    def _selectColour(self, choice: str) -> None:
        index = max(self.ui.colourComboBox.findData(choice), 0)
        wasBlocked = self.ui.colourComboBox.blockSignals(True)
        self.ui.colourComboBox.currentIndex = index
        self.ui.colourComboBox.blockSignals(wasBlocked)

    def onColourChanged(self, index: int) -> None:
        if self._parameterNode and index >= 0:
            self._parameterNode.colourMode = self.ui.colourComboBox.itemData(index)

    def onDeviceChanged(self, index: int) -> None:
        if self._parameterNode and index >= 0:
            self._parameterNode.device = self.ui.deviceComboBox.itemData(index)

    def updateState(self, caller=None, event=None) -> None:
        """Refresh button states, tooltips, warnings and the default key path from the parameter node."""
        parameters = self._parameterNode
        if parameters is None or self._running:
            return
        amif = self.logic.amif
        mriId = parameters.mriVolume.GetID() if parameters.mriVolume else None
        if mriId and mriId != self._autoKeyFor and (self._isUnset(parameters.keyPath)
                                                     or parameters.keyPath == self._autoKeyPath):
            place = amif.defaultKeyPlace(parameters.mriVolume)  # once per MRI: a default never moves silently
            self._autoKeyFor, self._autoKeyPath = mriId, place.path
            self.ui.keyPathHintLabel.text = _("The key goes {reason}.").format(reason=place.reason)
            if parameters.keyPath != place.path:
                parameters.keyPath = place.path  # triggers updateState again
                return
        if parameters.keyPath != self._autoKeyPath:
            self.ui.keyPathHintLabel.text = _("The key goes where you chose.")

        keyPath = None if self._isUnset(parameters.keyPath) else parameters.keyPath
        reason = amif.protectBlocker(parameters.mriVolume, parameters.otherVolume, parameters.identifierText, keyPath,
                                     colour=parameters.colourMode) or panel.passphraseProblem(
            self.ui.keyPassphraseLineEdit.text, self.ui.keyPassphraseConfirmLineEdit.text)
        self.ui.protectButton.enabled = reason is None
        self.ui.protectButton.toolTip = reason or _("Fuse the two volumes, burn in the identifier and write the key.")
        self.ui.colourComboBox.toolTip = amif.colourDescription(parameters.otherVolume, parameters.colourMode)
        warnings = amif.inputWarnings(parameters.mriVolume, parameters.otherVolume) + amif.volumesNotOffered()
        identifierWarning = panel.identifierWarning(parameters.identifierText)
        self.ui.inputWarningLabel.text = "\n".join(warnings + ([identifierWarning] if identifierWarning else []))

        showReady = all((parameters.mriVolume, parameters.otherVolume, parameters.protectedVolume))
        self.ui.showButton.enabled = showReady
        self.ui.showButton.toolTip = (_("Show MRI | CT/PET/SPECT | protected in three linked views.") if showReady
                                      else _("Select the MRI, the CT/PET/SPECT volume and a protected volume."))

        unlockKey = None if self._isUnset(parameters.unlockKeyPath) else parameters.unlockKeyPath
        reason = amif.unlockBlocker(parameters.protectedVolume, unlockKey)
        self.ui.unlockButton.enabled = reason is None
        self.ui.unlockButton.toolTip = reason or _("Recover the watermark-free fusion with the key file.")
        self.updatePassphraseVisibility()

    @staticmethod
    def _isUnset(path) -> bool:
        return path is None or str(path) in ("", ".")

    def updatePassphraseVisibility(self, *args) -> None:
        """Show the passphrase field only when the chosen key file is encrypted."""
        path = self.ui.unlockKeyPathLineEdit.currentPath
        needed = bool(path) and self.logic.amif.keyNeedsPassphrase(path)
        self.ui.passphraseLabel.visible = needed
        self.ui.passphraseLineEdit.visible = needed

    # ------------------------------------------------------------------ running

    def _idleSections(self, button):
        """Every section but the running one: they stay disabled during a run (the other run's too)."""
        running = self.ui.protectCollapsibleButton if button is self.ui.protectButton else self.ui.unlockCollapsibleButton
        return [section for section in (self.ui.inputsCollapsibleButton, self.ui.protectCollapsibleButton,
                                        self.ui.showCollapsibleButton, self.ui.unlockCollapsibleButton,
                                        self.ui.advancedCollapsibleButton) if section is not running]

    def _startRun(self, button, progressBar) -> None:
        self._running = True
        self._cancelRequested = False
        self._idleButtonText = button.text
        button.text = _("Cancel")
        button.toolTip = _("Stop the run; nothing is written or added.")
        button.enabled = True
        for section in self._idleSections(button):
            section.enabled = False
        for other in (self.ui.protectButton, self.ui.unlockButton):
            if other is not button:
                other.enabled = False
        progressBar.value = 0
        progressBar.show()

    def _endRun(self, button, progressBar) -> None:
        button.text = self._idleButtonText
        progressBar.hide()
        for section in self._idleSections(button):
            section.enabled = True
        self._running = False
        self.updateState()

    def _progressCallback(self, progressBar):
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            progressBar.maximum = max(total, 1)
            progressBar.value = done
            progressBar.format = panel.progressText(done, total, time.monotonic() - started)
            slicer.app.processEvents()

        return progress

    def _requestCancel(self, button) -> None:
        self._cancelRequested = True
        button.text = _("Cancelling...")
        button.enabled = False

    def _isCancelRequested(self) -> bool:
        slicer.app.processEvents()
        return self._cancelRequested

    def _ensureDependencies(self) -> None:
        def status(text: str) -> None:
            self.ui.dependencyStatusLabel.text = text
            slicer.app.processEvents()

        summary = self.logic.ensureDependencies(self._parameterNode.device, self.ui.torchBackendComboBox.currentData,
                                                status)
        self.ui.dependencyStatusLabel.text = summary
        self.populateDevices()

    @staticmethod
    def _isCancellation(error: Exception) -> bool:
        from amif_core.errors import CancelledError

        return isinstance(error, CancelledError)

    def onProtectButton(self) -> None:
        if self._running:
            self._requestCancel(self.ui.protectButton)
            return
        parameters = self._parameterNode
        keyPath = keyFilePath(parameters.keyPath)
        overwrite = keyPath.exists()
        if overwrite and not slicer.util.confirmOkCancelDisplay(
                _("The key file {path} exists already. Replace it? The volume it unlocks cannot be unlocked "
                  "without it.").format(path=keyPath), windowTitle=_("Replace key file")):
            return
        notices = []
        passphrase = self.ui.keyPassphraseLineEdit.text or None
        self.ui.keyPassphraseLineEdit.text = ""
        self.ui.keyPassphraseConfirmLineEdit.text = ""
        self.ui.protectStatusLabel.text = ""

        def work() -> None:
            node = self._run(self.ui.protectButton, self.ui.protectProgressBar, lambda progress: self.logic.amif.protect(
                parameters.mriVolume, parameters.otherVolume, keyPath, parameters.identifierText, parameters.device,
                progress=progress, cancel=self._isCancelRequested, passphrase=passphrase, overwriteKey=overwrite,
                notice=notices.append, colour=parameters.colourMode))
            if node is None:
                self.ui.protectStatusLabel.text = _("Cancelled; nothing was written or added.")
                return
            parameters.protectedVolume = node
            parameters.unlockKeyPath = keyPath
            preset = self.logic.amif.showComparison(parameters.mriVolume, parameters.otherVolume, node)
            details = notices + [_("Created '{name}' on {device}.").format(
                name=node.GetName(), device=node.GetAttribute("AMIF.device"))]
            if preset:
                details.append(_("'{name}' shown with a PET colour table, preset {preset}.").format(
                    name=parameters.otherVolume.GetName(), preset=preset))
            self.ui.protectStatusLabel.text = panel.keyResultLine(str(keyPath), passphrase is not None)
            self.ui.protectStatusLabel.toolTip = "\n".join(details)  # the details, on demand

        self._guarded(self.ui.protectStatusLabel, _("Protecting failed:"), work)

    def _run(self, button, progressBar, call):
        """Mark the panel busy (before any install can start), check the dependencies, then ``call(progress)``;
        returns its result, or None when the user cancelled."""
        self._startRun(button, progressBar)
        try:
            self.ui.dependencyStatusLabel.text = _("Checking the dependencies (PyTorch is installed first if needed)...")
            self._ensureDependencies()
            return call(self._progressCallback(progressBar))
        except Exception as error:
            if not self._isCancellation(error):
                raise
            return None
        finally:
            self._endRun(button, progressBar)

    def _guarded(self, statusLabel, failure: str, work) -> None:
        """Run ``work()``. An expected error (:func:`AMIFSlicerLib.panel.isExpectedError`) is explained in
        ``statusLabel`` only; any other is a bug: Slicer's error dialog with its traceback, and the panel line."""
        try:
            with slicer.util.tryWithErrorDisplay(failure):
                try:
                    work()
                except Exception as error:
                    if not panel.isExpectedError(error):
                        raise
                    statusLabel.text = f"{failure} {panelMessage(error)}"
        except Exception as error:
            statusLabel.text = f"{failure} {panelMessage(error)}"

    def onShowButton(self) -> None:
        parameters = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Showing the comparison failed."), waitCursor=True):
            self.logic.amif.showComparison(parameters.mriVolume, parameters.otherVolume, parameters.protectedVolume)

    def onUnlockButton(self) -> None:
        if self._running:
            self._requestCancel(self.ui.unlockButton)
            return
        parameters = self._parameterNode
        notices = []
        self.ui.unlockStatusLabel.text = ""

        def work() -> None:
            node = self._run(self.ui.unlockButton, self.ui.unlockProgressBar, lambda progress: self.logic.amif.unlock(
                parameters.protectedVolume, parameters.unlockKeyPath, passphrase=self.ui.passphraseLineEdit.text or None,
                device=parameters.device, progress=progress, cancel=self._isCancelRequested, notice=notices.append))
            self.ui.passphraseLineEdit.text = ""
            if node is None:
                self.ui.unlockStatusLabel.text = _("Cancelled; nothing was added.")
                return
            self.logic.amif.showUnlocked(parameters.protectedVolume, node)
            self.ui.unlockStatusLabel.text = "\n".join(notices + [
                _("Created '{name}' on {device}.").format(name=node.GetName(), device=node.GetAttribute("AMIF.device"))])

        self._guarded(self.ui.unlockStatusLabel, _("Unlocking failed:"), work)

    def onInstallDependenciesButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Installing the dependencies failed."), waitCursor=True):
            self._ensureDependencies()


#
# AMIFSlicerLogic
#


class AMIFSlicerLogic(ScriptedLoadableModuleLogic):
    """Thin Slicer wrapper: the parameter node, the dependency dialogs and :class:`AMIFSlicerLib.logic.AMIFSceneLogic`
    on the application's scene (``self.amif``), where all the work is done.

    Uses ScriptedLoadableModuleLogic base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        # Fit the views once Qt has laid out the new layout (its views still have their old size before that).
        self.amif = AMIFSceneLogic(slicer.mrmlScene, slicer.app.applicationLogic(),
                                   afterLayout=lambda fit: qt.QTimer.singleShot(0, fit))

    def getParameterNode(self):
        return AMIFSlicerParameterNode(super().getParameterNode())

    def ensureDependencies(self, device: str, backend: str = "auto", status=None) -> str:
        """Install what AMIF needs (asking first; never in testing mode; PyTorch as the ``backend`` build) and check
        PyTorch on ``device``; ``status(text)`` shows progress in the panel."""
        installer = DependencyInstaller(
            confirm=lambda question: slicer.util.confirmOkCancelDisplay(question, windowTitle=_("AMIF dependencies")),
            pipInstall=slicer.util.pip_install,
            torchInstaller=pyTorchUtilsInstaller(),
            testing=slicer.app.testingEnabled(),
            backend=backend or "auto",
            status=status or (lambda text: None),
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
        except unittest.SkipTest as skipped:
            self.delayDisplay(f"AMIF self-test skipped: {skipped}")

    def _requireDependencies(self) -> None:
        """Outside testing mode, install what is missing (asking first); in testing mode skip without it."""
        from AMIFSlicerLib.dependencies import missingRequirements

        missing = missingRequirements()
        if missing and slicer.app.testingEnabled():
            self.skipTest("AMIF's Python packages are not installed (" + ", ".join(r.specifier for r in missing)
                          + ") and testing mode installs nothing; install them first.")
        if missing:
            AMIFSlicerLogic().ensureDependencies(runner.CPU)

    def test_AMIFSlicerProtectAndUnlock(self) -> None:
        """Protect an oblique, anisotropic MRI with a PET on another grid (in colour), then unlock it exactly."""
        import numpy as np
        import SimpleITK as sitk

        from AMIFSlicerLib.testdata import addPhantomPair
        from AMIFSlicerLib.volumenodes import localIjkToRas, sitkImageFromArray, voxelArray

        self._requireDependencies()
        self.delayDisplay("Building synthetic MRI and PET")
        mri, pet = addPhantomPair(slicer.mrmlScene)
        mriBefore, petBefore = voxelArray(mri).copy(), voxelArray(pet).copy()
        keyPath = Path(slicer.util.tempDirectory()) / "selftest.amifkey"
        logic = AMIFSlicerLogic().amif

        self.delayDisplay("Protecting")
        protected = logic.protect(mri, pet, keyPath, identifier="Self-test \u00a9", device=runner.CPU)
        self.assertEqual(protected.GetName(), "phantom T1 AMIF protected")
        self.assertTrue(np.array_equal(localIjkToRas(protected), localIjkToRas(mri)))
        self.assertEqual(voxelArray(protected).shape, voxelArray(mri).shape + (3,))  # a PET fuses in colour
        self.assertEqual(voxelArray(protected).dtype, np.float32)
        self.assertEqual(protected.GetAttribute("AMIF.identifier"), "Self-test \u00a9")
        self.assertTrue(keyPath.is_file())
        if slicer.app.layoutManager() is not None:
            logic.showComparison(mri, pet, protected)

        self.delayDisplay("Unlocking")
        unlocked = logic.unlock(protected, keyPath, device=runner.CPU)
        self.assertEqual(unlocked.GetName(), "phantom T1 AMIF unlocked")
        self.assertTrue(np.array_equal(localIjkToRas(unlocked), localIjkToRas(mri)))
        core = logic.core()
        mriImage = sitkImageFromArray(voxelArray(mri), localIjkToRas(mri))
        onGrid, _ = core.io.geometry.resample_to_reference(
            sitkImageFromArray(voxelArray(pet), localIjkToRas(pet)), mriImage)
        axis = core.io.geometry.slice_axis(mriImage)
        clean = np.moveaxis(logic.model(runner.CPU).fuse_clean(
            np.moveaxis(sitk.GetArrayFromImage(mriImage), axis, 0), np.moveaxis(sitk.GetArrayFromImage(onGrid), axis, 0),
            colour_table="pet"), 0, axis)
        def psnr(x, y) -> float:
            return float(10 * np.log10(1.0 / max(float(np.mean((np.asarray(x, np.float64) - y) ** 2)), 1e-20)))

        self.assertGreaterEqual(psnr(voxelArray(unlocked), clean), 50.0, "unlocking must give back the clean fusion")
        self.assertLess(psnr(voxelArray(protected), clean), 40.0, "the protected volume must carry the identifier")
        self.assertTrue(np.array_equal(voxelArray(mri), mriBefore))
        self.assertTrue(np.array_equal(voxelArray(pet), petBefore))
        if slicer.app.layoutManager() is not None:
            logic.showUnlocked(protected, unlocked)
        keyPath.unlink()
        self.delayDisplay("Protect and unlock passed")

    def test_AMIFSlicerRejectsWrongInputs(self) -> None:
        """A label map as input and a key of another volume give their own messages and add no node."""
        from AMIFSlicerLib.errors import InvalidInputError
        from AMIFSlicerLib.testdata import addPhantomPair

        self._requireDependencies()
        mri, pet = addPhantomPair(slicer.mrmlScene, mriShape=(10, 32, 28))
        labels = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
        labels.SetAndObserveImageData(mri.GetImageData())
        logic = AMIFSlicerLogic().amif
        keyPath = Path(slicer.util.tempDirectory()) / "selftest-wrong.amifkey"
        nodes = slicer.mrmlScene.GetNumberOfNodes()
        with self.assertRaises(InvalidInputError) as raised:
            logic.protect(labels, pet, keyPath, device=runner.CPU)
        self.assertIn("label map", str(raised.exception))
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodes)
        self.assertFalse(keyPath.exists())

        otherMri, otherPet = addPhantomPair(slicer.mrmlScene, mriShape=(10, 30, 28), seed=1)
        protected = logic.protect(mri, pet, keyPath, device=runner.CPU)
        otherKey = Path(slicer.util.tempDirectory()) / "selftest-other.amifkey"
        logic.protect(otherMri, otherPet, otherKey, device=runner.CPU)
        nodes = slicer.mrmlScene.GetNumberOfNodes()
        with self.assertRaises(Exception) as raised:
            logic.unlock(protected, otherKey, device=runner.CPU)
        self.assertIn("belongs to another volume", str(raised.exception))
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodes)
        keyPath.unlink()
        otherKey.unlink()
        self.delayDisplay("Wrong inputs rejected")
