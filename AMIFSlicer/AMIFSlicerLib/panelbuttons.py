"""What the AMIF panel's Protect and Unlock buttons do: one run at a time, with progress, cancel and errors.

Qt-free: widgets are used only through their properties (``text``,
``enabled``, ``value``, ...), and the Slicer calls (dialogs, event processing)
are passed in, so the run logic is tested headless with plain objects.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from amif_core.errors import CancelledError
from AMIFSlicerLib import panelstate, readiness
from AMIFSlicerLib.i18n import tr as _
from AMIFSlicerLib.keyfilestate import KeyFileCache

# The parameter node's text fields and the ctkPathLineEdit each is typed in.
PATH_FIELDS = (("keyPath", "keyPathLineEdit"), ("unlockKeyPath", "unlockKeyPathLineEdit"))
# The owner secret file lives in Slicer's application settings, never in the scene or the parameter node: a scene
# is shared with its data, the secret must not be (docs/tracing.md).
OWNER_SECRET_SETTING = "AMIF/OwnerSecretPath"


class PanelRun:
    """The panel's run state: which button runs, which sections and inputs wait, progress and a cancel request.

    ``sections`` are the panel's collapsible sections (and Slicer's Reload &
    Test section, in developer mode); during a run all but ``runningSection``
    are disabled, and so are the other ``buttons`` and the running section's
    ``inputs`` (its selectors and fields: the run uses what they held when it
    started). ``processEvents()`` lets Qt repaint and deliver the Cancel click.
    """

    def __init__(self, sections: Sequence[Any], buttons: Sequence[Any], processEvents: Callable[[], None],
                 cancelText: str, cancelToolTip: str, cancellingText: str) -> None:
        self.sections = list(sections)
        self.buttons = list(buttons)
        self.processEvents = processEvents
        self.cancelText, self.cancelToolTip, self.cancellingText = cancelText, cancelToolTip, cancellingText
        self.running = False
        self.cancelRequested = False
        self.button: Any = None
        self._idleText = ""
        self._frozen: list[Any] = []

    def start(self, button: Any, runningSection: Any, progressBar: Any | None, inputs: Sequence[Any] = (),
              cancellable: bool = True) -> None:
        """Mark the panel busy: ``button`` becomes Cancel (or waits, when not ``cancellable``), everything else
        waits, ``inputs`` are frozen, the progress bar (if any) shows."""
        self.running, self.cancelRequested, self.button = True, False, button
        self._idleText = button.text
        if cancellable:
            button.text, button.toolTip = self.cancelText, self.cancelToolTip
        button.enabled = cancellable
        for section in self.sections:
            if section is not runningSection:
                section.enabled = False
        self._frozen = [widget for widget in (*self.buttons, *inputs) if widget is not button and widget.enabled]
        for widget in self._frozen:
            widget.enabled = False
        if progressBar is not None:
            progressBar.value = 0
            progressBar.show()

    def end(self, progressBar: Any | None) -> None:
        """Give the panel back: the button's own text, every section and frozen input enabled, the progress bar
        hidden (the buttons' own states follow at the next refresh)."""
        self.button.text = self._idleText
        self.button.enabled = True
        if progressBar is not None:
            progressBar.hide()
        for widget in (*self.sections, *self._frozen):
            widget.enabled = True
        self.running, self.button, self._frozen = False, None, []

    def progressCallback(self, progressBar: Any) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` that fills ``progressBar`` with slices done and the time left."""
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            progressBar.maximum = max(total, 1)
            progressBar.value = done
            progressBar.format = panelstate.progressText(done, total, time.monotonic() - started)
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


class PanelActions:
    """Protect, Unlock and the dependency install for the panel ``ui`` (the widget's ``childWidgetVariables``) on
    ``sceneLogic``: one at a time.

    ``ensureDependencies()`` installs and checks what AMIF needs (asking
    first); ``confirm(question, title)`` asks the user; ``errorDisplay(text)``
    is Slicer's ``tryWithErrorDisplay``; ``message(error)`` words an error for
    the panel; ``afterRun()`` refreshes the panel once a run ends;
    ``otherSections`` (Slicer's Reload & Test section) wait during a run too;
    ``avoidFolders()`` lists folders a default key must not go into (Slicer's
    DICOM database); ``ownerSecret()`` gives the owner secret file of Slicer's
    application settings (:data:`OWNER_SECRET_SETTING`; empty: none set).
    """

    def __init__(self, ui: Any, sceneLogic: Any, ensureDependencies: Callable[[], None],
                 confirm: Callable[[str, str], bool], errorDisplay: Callable[[str], Any],
                 processEvents: Callable[[], None], message: Callable[[Exception], str],
                 afterRun: Callable[[], None], otherSections: Sequence[Any] = (),
                 avoidFolders: Callable[[], Sequence[str]] = lambda: (),
                 ownerSecret: Callable[[], str] = lambda: "") -> None:
        self.ui, self.sceneLogic = ui, sceneLogic
        self.ownerSecret = ownerSecret
        self.ensureDependencies, self.confirm, self.errorDisplay = ensureDependencies, confirm, errorDisplay
        self.message, self.afterRun = message, afterRun
        self.defaultKey = panelstate.DefaultKeyPath(avoidFolders)
        self.keyFiles = KeyFileCache(message)
        self.run = PanelRun(
            (ui.inputsCollapsibleButton, ui.protectCollapsibleButton, ui.showCollapsibleButton,
             ui.unlockCollapsibleButton, ui.advancedCollapsibleButton, *otherSections),
            (ui.protectButton, ui.unlockButton, ui.showButton, ui.installDependenciesButton), processEvents,
            cancelText=_("Cancel"), cancelToolTip=_("Stop the run; nothing is written or added."),
            cancellingText=_("Cancelling..."))

    def connectPathFields(self, lineEditOf: Callable[[Any], Any], parameters: Callable[[], Any]) -> None:
        """Pass every edit of the key path fields to the parameter node ``parameters()`` (None: none yet).

        ctkPathLineEdit emits ``currentPathChanged`` only for text that its
        name filters accept (``*.amifkey``), never for another suffix or an
        empty field; so the text of its own line edit (``lineEditOf(field)``)
        is followed instead, and any key name, or clearing it, reaches the
        parameter node.
        """
        for field, widgetName in PATH_FIELDS:
            lineEditOf(getattr(self.ui, widgetName)).connect(
                "textChanged(QString)", lambda text, field=field: self.pathChanged(parameters(), field, text))

    @staticmethod
    def pathChanged(parameters: Any, field: str, text: str) -> None:
        """The user typed ``text`` in the path field of ``field`` (a name of :data:`PATH_FIELDS`)."""
        if parameters is not None and getattr(parameters, field) != text:
            setattr(parameters, field, text)  # the node's observer refreshes the panel

    def cancelRunning(self) -> None:
        """Stop a running protect or unlock (the scene closes, or the module is unloaded): it stops at once, and
        writes or adds nothing, to the closing scene or the next one."""
        if self.run.running:
            self.run.cancelRequested = True

    def sceneClosing(self) -> None:
        """The scene starts to close: cancel a run, and forget the default key (node IDs start again)."""
        self.cancelRunning()
        self.defaultKey.forget()

    def refresh(self, scene: Any, parameters: Any) -> None:
        """Show what ``parameters`` allow: buttons on or off with the reason as tooltip, warnings, the default key
        path (set in ``parameters`` once per MRI), and the passphrase field when the chosen key is encrypted (or not
        known to be plain: :class:`AMIFSlicerLib.keyfilestate.KeyFileCache` reads it once per version of the file).
        A key file that cannot unlock turns Unlock off, its reason as the tooltip."""
        ui = self.ui
        if self.run.running:
            return
        for lineEdit, value in ((ui.keyPathLineEdit, parameters.keyPath), (ui.unlockKeyPathLineEdit,
                                                                           parameters.unlockKeyPath)):
            shown = "" if panelstate.isUnsetPath(value) else value  # text, "" when unset (older scenes saved ".")
            if lineEdit.currentPath != shown:
                lineEdit.currentPath = shown
        path, hint = self.defaultKey.update(scene, parameters.mriVolume, parameters.keyPath)
        if hint is not None:
            ui.keyPathHintLabel.text = hint
        if path is not None and parameters.keyPath != path:
            parameters.keyPath = path  # the parameter node's observer calls refresh again
            return
        state = panelstate.panelState(scene, parameters, ui.keyPassphraseLineEdit.text,
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
        keyState = self.keyFiles.state(readiness.keyFilePath(keyPath)) if keyPath else None
        if keyState is not None and keyState.problem is not None and state.unlockBlocker is None:
            ui.unlockButton.enabled = False
            ui.unlockButton.toolTip = keyState.problem
        ui.passphraseLabel.visible = ui.passphraseLineEdit.visible = (keyState is not None
                                                                       and keyState.needsPassphrase is not False)

    def installDependencies(self) -> None:
        """Check and install the dependencies (the Advanced button) with the panel busy: no second install, and no
        protect or unlock, can start meanwhile."""
        ui = self.ui
        if self.run.running:
            return
        self.run.start(ui.installDependenciesButton, ui.advancedCollapsibleButton, None,
                       inputs=(ui.torchBackendComboBox, ui.deviceComboBox), cancellable=False)
        try:
            with self._failuresShownIn(ui.dependencyStatusLabel, _("Installing the dependencies failed:")):
                self.ensureDependencies()
        finally:
            self.run.end(None)
            self.afterRun()

    def protect(self, parameters: Any) -> None:
        """Protect the parameter node's volumes (or cancel the running protect); the result goes to the panel."""
        ui = self.ui
        if self._cancelIfRunning(ui.protectButton):
            return
        mri, other = parameters.mriVolume, parameters.otherVolume  # the run's inputs, whatever happens meanwhile
        keyPath = readiness.keyFilePath(parameters.keyPath)
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
        inputs = (ui.keyPathLineEdit, ui.keyPassphraseLineEdit, ui.keyPassphraseConfirmLineEdit)

        with self._failuresShownIn(ui.protectStatusLabel, _("Protecting failed:")):
            progress = self._start(ui.protectButton, ui.protectCollapsibleButton, ui.protectProgressBar, inputs)
            try:
                node = self.sceneLogic.protect(mri, other, keyPath, parameters.identifierText, parameters.device,
                                               progress=progress, cancel=self.run.isCancelRequested,
                                               passphrase=passphrase, overwriteKey=overwrite, notice=notices.append,
                                               colour=parameters.colourMode, ownerSecret=self.ownerSecret())
            except CancelledError:
                node = None
            finally:
                self._end(ui.protectProgressBar)
            if node is None:
                ui.protectStatusLabel.text = _("Cancelled; nothing was written or added.")
                return
            parameters.protectedVolume = node
            parameters.unlockKeyPath = str(keyPath)
            preset = self.sceneLogic.showComparison(mri, other, node)
            details = notices + [_("Created '{name}' on {device}.").format(
                name=node.GetName(), device=node.GetAttribute("AMIF.device"))]
            if preset:
                details.append(_("'{name}' shown with a PET colour table, preset {preset}.").format(
                    name=other.GetName(), preset=preset))
            ui.protectStatusLabel.text = panelstate.keyResultLine(str(keyPath), passphrase is not None)
            ui.protectStatusLabel.toolTip = "\n".join(details)  # the details, on demand

    def unlock(self, parameters: Any) -> None:
        """Unlock the parameter node's protected volume with its key (or cancel the running unlock)."""
        ui = self.ui
        if self._cancelIfRunning(ui.unlockButton):
            return
        protected, keyPath = parameters.protectedVolume, parameters.unlockKeyPath  # the run's, whatever happens
        passphrase = ui.passphraseLineEdit.text or None
        notices: list[str] = []
        ui.unlockStatusLabel.text = ""
        inputs = (ui.protectedSelector, ui.unlockKeyPathLineEdit, ui.passphraseLineEdit)

        with self._failuresShownIn(ui.unlockStatusLabel, _("Unlocking failed:")):
            progress = self._start(ui.unlockButton, ui.unlockCollapsibleButton, ui.unlockProgressBar, inputs)
            try:
                node = self.sceneLogic.unlock(protected, keyPath, passphrase=passphrase, device=parameters.device,
                                              progress=progress, cancel=self.run.isCancelRequested,
                                              notice=notices.append)
            except CancelledError:
                node = None
            finally:
                self._end(ui.unlockProgressBar)
            ui.passphraseLineEdit.text = ""
            if node is None:
                ui.unlockStatusLabel.text = _("Cancelled; nothing was added.")
                return
            self.sceneLogic.showUnlocked(protected, node)
            ui.unlockStatusLabel.text = "\n".join(notices + [_("Created '{name}' on {device}.").format(
                name=node.GetName(), device=node.GetAttribute("AMIF.device"))])

    def _cancelIfRunning(self, button: Any) -> bool:
        """True when a run is going on, so a click does nothing else: on the running button it asks to cancel."""
        if not self.run.running:
            return False
        if self.run.button is button:
            self.run.requestCancel(button)
        return True

    def _start(self, button: Any, section: Any, progressBar: Any, inputs: Sequence[Any]) -> Callable[[int, int], None]:
        """Mark the panel busy for ``button``'s run, then check the dependencies (the panel is busy first, so an
        install cannot be started twice); returns the run's ``progress(done, total)``."""
        self.run.start(button, section, progressBar, inputs)
        try:
            self.ui.dependencyStatusLabel.text = _("Checking the dependencies (PyTorch is installed first if "
                                                   "needed)...")
            self.ensureDependencies()
        except BaseException:
            self._end(progressBar)
            raise
        return self.run.progressCallback(progressBar)

    def _end(self, progressBar: Any) -> None:
        """Give the panel back after a run, and refresh it."""
        self.run.end(progressBar)
        self.afterRun()

    @contextmanager
    def _failuresShownIn(self, statusLabel: Any, failure: str) -> Iterator[None]:
        """Around a button's work: an expected error (:func:`AMIFSlicerLib.panelstate.isExpectedError`) is explained
        in ``statusLabel`` only; any other is a bug: Slicer's error dialog with its traceback, and the panel line."""
        try:
            with self.errorDisplay(failure):
                try:
                    yield
                except Exception as error:
                    if not panelstate.isExpectedError(error):
                        raise
                    statusLabel.text = f"{failure} {self.message(error)}"
        except Exception as error:
            statusLabel.text = f"{failure} {self.message(error)}"
