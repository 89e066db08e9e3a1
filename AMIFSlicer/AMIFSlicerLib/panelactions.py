"""What the AMIF panel's Protect and Unlock buttons do: one run at a time, with progress, cancel and errors.

Qt-free: widgets are used only through their properties (``text``,
``enabled``, ``value``, ...), and the Slicer calls (dialogs, event processing)
are passed in, so the run logic is tested headless with plain objects.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from amif_core.errors import CancelledError
from AMIFSlicerLib import choices, panel
from AMIFSlicerLib.i18n import tr as _


class PanelRun:
    """The panel's run state: which button runs, which sections wait, progress and a cancel request.

    ``sections`` are the panel's collapsible sections; during a run all but
    ``runningSection`` are disabled, and so is the other run button.
    ``processEvents()`` lets Qt repaint and deliver the Cancel click.
    """

    def __init__(self, sections: Sequence[Any], buttons: Sequence[Any], processEvents: Callable[[], None],
                 cancelText: str, cancelToolTip: str, cancellingText: str) -> None:
        self.sections = list(sections)
        self.buttons = list(buttons)
        self.processEvents = processEvents
        self.cancelText, self.cancelToolTip, self.cancellingText = cancelText, cancelToolTip, cancellingText
        self.running = False
        self.cancelRequested = False
        self._idleText = ""

    def start(self, button: Any, runningSection: Any, progressBar: Any) -> None:
        """Mark the panel busy: ``button`` becomes Cancel, everything else waits, the progress bar shows."""
        self.running, self.cancelRequested = True, False
        self._idleText = button.text
        button.text, button.toolTip = self.cancelText, self.cancelToolTip
        button.enabled = True
        for section in self.sections:
            if section is not runningSection:
                section.enabled = False
        for other in self.buttons:
            if other is not button:
                other.enabled = False
        progressBar.value = 0
        progressBar.show()

    def end(self, button: Any, progressBar: Any) -> None:
        """Give the panel back: the button's own text, every section enabled, the progress bar hidden."""
        button.text = self._idleText
        progressBar.hide()
        for section in self.sections:
            section.enabled = True
        self.running = False

    def progressCallback(self, progressBar: Any) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` that fills ``progressBar`` with slices done and the time left."""
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            progressBar.maximum = max(total, 1)
            progressBar.value = done
            progressBar.format = panel.progressText(done, total, time.monotonic() - started)
            self.processEvents()

        return progress

    def requestCancel(self, button: Any) -> None:
        """The user clicked Cancel: the run stops at its next slice."""
        self.cancelRequested = True
        button.text = self.cancellingText
        button.enabled = False

    def isCancelRequested(self) -> bool:
        """The run's ``cancel()``: True once Cancel was clicked (or the scene closes)."""
        self.processEvents()
        return self.cancelRequested

    def run(self, button: Any, runningSection: Any, progressBar: Any, call: Callable[[Callable], Any]) -> Any:
        """Mark the panel busy, then return ``call(progress)``; None when the user cancelled.

        The panel is busy before ``call`` starts, so a dependency install that
        ``call`` begins with cannot be started twice.
        """
        self.start(button, runningSection, progressBar)
        try:
            return call(self.progressCallback(progressBar))
        except CancelledError:
            return None
        finally:
            self.end(button, progressBar)


class PanelActions:
    """Protect and Unlock for the panel ``ui`` (the widget's ``childWidgetVariables``) on ``sceneLogic``.

    ``ensureDependencies()`` installs and checks what AMIF needs (asking
    first); ``confirm(question, title)`` asks the user; ``errorDisplay(text)``
    is Slicer's ``tryWithErrorDisplay``; ``message(error)`` words an error for
    the panel; ``afterRun()`` refreshes the panel once a run ends.
    """

    def __init__(self, ui: Any, sceneLogic: Any, ensureDependencies: Callable[[], None],
                 confirm: Callable[[str, str], bool], errorDisplay: Callable[[str], Any],
                 processEvents: Callable[[], None], message: Callable[[Exception], str],
                 afterRun: Callable[[], None]) -> None:
        self.ui, self.sceneLogic = ui, sceneLogic
        self.ensureDependencies, self.confirm, self.errorDisplay = ensureDependencies, confirm, errorDisplay
        self.message, self.afterRun = message, afterRun
        self.defaultKey = panel.DefaultKeyPath()
        self.run = PanelRun(
            (ui.inputsCollapsibleButton, ui.protectCollapsibleButton, ui.showCollapsibleButton,
             ui.unlockCollapsibleButton, ui.advancedCollapsibleButton),
            (ui.protectButton, ui.unlockButton), processEvents, cancelText=_("Cancel"),
            cancelToolTip=_("Stop the run; nothing is written or added."), cancellingText=_("Cancelling..."))

    def sceneClosing(self) -> None:
        """The scene starts to close: a running protect or unlock stops at its next slice, and adds nothing to the
        closing scene or the next one."""
        if self.run.running:
            self.run.cancelRequested = True

    def refresh(self, scene: Any, parameters: Any) -> None:
        """Show what ``parameters`` allow: buttons on or off with the reason as tooltip, warnings, the default key
        path (set in ``parameters`` once per MRI), and the passphrase field when the chosen key is encrypted."""
        ui = self.ui
        if self.run.running:
            return
        for lineEdit, value in ((ui.keyPathLineEdit, parameters.keyPath), (ui.unlockKeyPathLineEdit,
                                                                           parameters.unlockKeyPath)):
            shown = "" if panel.isUnsetPath(value) else value  # text, "" when unset (older scenes saved ".")
            if lineEdit.currentPath != shown:
                lineEdit.currentPath = shown
        path, hint = self.defaultKey.update(scene, parameters.mriVolume, parameters.keyPath)
        if hint is not None:
            ui.keyPathHintLabel.text = hint
        if path is not None and parameters.keyPath != path:
            parameters.keyPath = path  # the parameter node's observer calls refresh again
            return
        state = panel.panelState(scene, parameters, ui.keyPassphraseLineEdit.text,
                                 ui.keyPassphraseConfirmLineEdit.text)
        ui.protectButton.enabled = state.protectBlocker is None
        ui.protectButton.toolTip = state.protectBlocker or _(
            "Fuse the two volumes, burn in the identifier and write the key.")
        ui.colourComboBox.toolTip = state.colourToolTip
        ui.inputWarningLabel.text = state.warnings
        ui.showButton.enabled = state.showReady
        ui.showButton.toolTip = (_("Show MRI | CT/PET/SPECT | protected in three linked views.") if state.showReady
                                 else _("Select the MRI, the CT/PET/SPECT volume and a protected volume."))
        ui.unlockButton.enabled = state.unlockBlocker is None
        ui.unlockButton.toolTip = state.unlockBlocker or _("Recover the watermark-free fusion with the key file.")
        keyPath = ui.unlockKeyPathLineEdit.currentPath
        ui.passphraseLabel.visible = ui.passphraseLineEdit.visible = bool(keyPath) and choices.keyNeedsPassphrase(
            keyPath)

    def protect(self, parameters: Any) -> None:
        """Protect the parameter node's volumes (or cancel the running protect); the result goes to the panel."""
        ui = self.ui
        if self.run.running:
            self.run.requestCancel(ui.protectButton)
            return
        keyPath = choices.keyFilePath(parameters.keyPath)
        overwrite = keyPath.exists()
        if overwrite and not self.confirm(_("The key file {path} exists already. Replace it? The volume it unlocks "
                                            "cannot be unlocked without it.").format(path=keyPath),
                                          _("Replace key file")):
            return
        notices: list[str] = []
        passphrase = ui.keyPassphraseLineEdit.text or None
        ui.keyPassphraseLineEdit.text = ""
        ui.keyPassphraseConfirmLineEdit.text = ""
        ui.protectStatusLabel.text = ""

        def work() -> None:
            node = self._run(ui.protectButton, ui.protectCollapsibleButton, ui.protectProgressBar,
                             lambda progress: self.sceneLogic.protect(
                                 parameters.mriVolume, parameters.otherVolume, keyPath, parameters.identifierText,
                                 parameters.device, progress=progress, cancel=self.run.isCancelRequested,
                                 passphrase=passphrase, overwriteKey=overwrite, notice=notices.append,
                                 colour=parameters.colourMode))
            if node is None:
                ui.protectStatusLabel.text = _("Cancelled; nothing was written or added.")
                return
            parameters.protectedVolume = node
            parameters.unlockKeyPath = str(keyPath)
            preset = self.sceneLogic.showComparison(parameters.mriVolume, parameters.otherVolume, node)
            details = notices + [_("Created '{name}' on {device}.").format(
                name=node.GetName(), device=node.GetAttribute("AMIF.device"))]
            if preset:
                details.append(_("'{name}' shown with a PET colour table, preset {preset}.").format(
                    name=parameters.otherVolume.GetName(), preset=preset))
            ui.protectStatusLabel.text = panel.keyResultLine(str(keyPath), passphrase is not None)
            ui.protectStatusLabel.toolTip = "\n".join(details)  # the details, on demand

        self._guarded(ui.protectStatusLabel, _("Protecting failed:"), work)

    def unlock(self, parameters: Any) -> None:
        """Unlock the parameter node's protected volume with its key (or cancel the running unlock)."""
        ui = self.ui
        if self.run.running:
            self.run.requestCancel(ui.unlockButton)
            return
        notices: list[str] = []
        ui.unlockStatusLabel.text = ""

        def work() -> None:
            node = self._run(ui.unlockButton, ui.unlockCollapsibleButton, ui.unlockProgressBar,
                             lambda progress: self.sceneLogic.unlock(
                                 parameters.protectedVolume, parameters.unlockKeyPath,
                                 passphrase=ui.passphraseLineEdit.text or None, device=parameters.device,
                                 progress=progress, cancel=self.run.isCancelRequested, notice=notices.append))
            ui.passphraseLineEdit.text = ""
            if node is None:
                ui.unlockStatusLabel.text = _("Cancelled; nothing was added.")
                return
            self.sceneLogic.showUnlocked(parameters.protectedVolume, node)
            ui.unlockStatusLabel.text = "\n".join(notices + [_("Created '{name}' on {device}.").format(
                name=node.GetName(), device=node.GetAttribute("AMIF.device"))])

        self._guarded(ui.unlockStatusLabel, _("Unlocking failed:"), work)

    def _run(self, button: Any, section: Any, progressBar: Any, call: Callable[[Callable], Any]) -> Any:
        """``call(progress)`` with the panel busy and the dependencies checked first; None when cancelled."""
        def withDependencies(progress: Callable[[int, int], None]) -> Any:
            self.ui.dependencyStatusLabel.text = _("Checking the dependencies (PyTorch is installed first if "
                                                   "needed)...")
            self.ensureDependencies()
            return call(progress)

        try:
            return self.run.run(button, section, progressBar, withDependencies)
        finally:
            self.afterRun()

    def _guarded(self, statusLabel: Any, failure: str, work: Callable[[], None]) -> None:
        """Run ``work()``. An expected error (:func:`AMIFSlicerLib.panel.isExpectedError`) is explained in
        ``statusLabel`` only; any other is a bug: Slicer's error dialog with its traceback, and the panel line."""
        try:
            with self.errorDisplay(failure):
                try:
                    work()
                except Exception as error:
                    if not panel.isExpectedError(error):
                        raise
                    statusLabel.text = f"{failure} {self.message(error)}"
        except Exception as error:
            statusLabel.text = f"{failure} {self.message(error)}"
