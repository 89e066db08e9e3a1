"""The panel's engine: AMIF's network in a worker process, so that torch never enters Slicer's own process.

:class:`WorkerEngine` writes the inputs into a private temporary folder, starts
``python -m amif_core.cli.worker`` (in Slicer through
``slicer.util.launchConsoleProcess`` in Slicer's Python, as the deep-learning
extensions that users trust do), follows its output lines (progress for the
bar, notices, the result or an AMIF error, see :mod:`amif_core.cli.worker`)
and reads the outputs back. While it waits it asks ``cancel()`` every
:data:`POLL_SECONDS`, which in the panel also lets Qt run, so Slicer stays
responsive through the torch import, CUDA start-up and the run; a cancel
terminates the process. The temporary folder is removed in every case, and
nothing reaches the scene or the key's place from a cancelled or failed run.

With ``keepWarm``, each run ends by starting the next worker ahead of time
(``serve``: it imports torch and waits for a job file), so the next run does
not wait for the torch import; :meth:`WorkerEngine.shutdown` stops it.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Protocol

import SimpleITK as sitk

from amif_core.cli.worker import JOB_FILE, error_from_message, parse_message
from amif_core.errors import CancelledError
from amif_core.runtime.callbacks import Cancel, Notice, Progress
from AMIFSlicerLib.engines import EngineResult
from AMIFSlicerLib.errors import AMIFSlicerError
from AMIFSlicerLib.i18n import tr as _

POLL_SECONDS = 0.05  # how often the wait asks cancel() (and so lets Slicer repaint)
STOP_SECONDS = 5.0  # a terminated worker gets this long to exit before it is killed
TAIL_LINES = 15  # the worker's last lines quoted when it fails
WORKER_MODULE = "amif_core.cli.worker"


class WorkerProcess(Protocol):
    """What :class:`WorkerEngine` needs of a started process (a ``subprocess.Popen`` with text stdout)."""

    stdout: IO[str]

    def wait(self, timeout: float | None = None) -> int: ...

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


Launch = Callable[[list[str], str], WorkerProcess]


@dataclass
class StartedWorker:
    """A started worker: the process, the queue its output lines arrive in (None at the end) from a reader thread,
    and for a worker started ahead of time the folder it waits in for its job."""

    process: WorkerProcess
    lines: queue.Queue
    reader: threading.Thread
    jobs: tempfile.TemporaryDirectory | None = None

    def end(self) -> None:
        """Stop the process if it still runs, and remove its job folder."""
        if self.process.poll() is None:
            _stop(self.process)
        self.reader.join(timeout=STOP_SECONDS)
        if self.jobs is not None:
            self.jobs.cleanup()


class WorkerError(AMIFSlicerError):
    """The worker process failed without an AMIF error: it crashed, was killed, or hit a bug; nothing was added."""


def coreRoot() -> Path:
    """The folder that holds the ``amif_core`` package (the worker runs there, so ``-m`` finds it)."""
    import amif_core

    return Path(amif_core.__file__).resolve().parents[1]


def launchSubprocess(command: list[str], cwd: str) -> WorkerProcess:
    """Start ``command`` in ``cwd`` with stdout and stderr as one text stream (outside Slicer; in Slicer,
    ``slicer.util.launchConsoleProcess`` does the same and hides the console window on Windows)."""
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            encoding="utf-8", errors="replace")


def exitDescription(code: int) -> str:
    """Words for a worker's exit status: the signal that killed it (POSIX: negative codes), or the code."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return _("it was stopped by {signal}").format(signal=name)
    return _("it exited with code {code}").format(code=code)


class WorkerEngine:
    """Runs protect and unlock in ``python -m amif_core.cli.worker``.

    ``python``: the interpreter (Slicer's ``PythonSlicer``; default this
    one); ``launch(command, cwd)``: starts it (default
    :func:`launchSubprocess`); ``weightsPath``: weights other than the
    shipped default; ``tempRoot``: where the private temporary folders go
    (default the system's); ``log(line)``: where the worker's other lines go;
    ``keepWarm``: after each run, start the next worker ahead of time.
    """

    def __init__(self, python: str | None = None, launch: Launch = launchSubprocess,
                 weightsPath: str | Path | None = None, tempRoot: str | Path | None = None,
                 log: Callable[[str], None] = logging.info, keepWarm: bool = False) -> None:
        self.python = python or sys.executable
        self.launch = launch
        self.weightsPath = Path(weightsPath) if weightsPath is not None else None
        self.tempRoot = str(tempRoot) if tempRoot is not None else None
        self.log = log
        self.keepWarm = keepWarm
        self.standby: StartedWorker | None = None

    def startStandby(self) -> None:
        """Start a worker ahead of time (``serve``), unless one is waiting already."""
        if self.standby is not None and self.standby.process.poll() is None:
            return
        self.shutdown()
        jobs = tempfile.TemporaryDirectory(prefix="amif-standby-", dir=self.tempRoot)
        self.standby = self._start(["serve", "--jobs", jobs.name])
        self.standby.jobs = jobs

    def shutdown(self) -> None:
        """Stop the worker started ahead of time, if any, and remove its folder."""
        standby, self.standby = self.standby, None
        if standby is not None:
            standby.end()

    def _start(self, arguments: list[str]) -> StartedWorker:
        process = self.launch([self.python, "-m", WORKER_MODULE, *arguments], str(coreRoot()))
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_readLines, args=(process.stdout, lines), daemon=True)
        reader.start()
        return StartedWorker(process, lines, reader)

    def _startJob(self, arguments: list[str]) -> StartedWorker:
        """The worker for one job: the one started ahead of time, given the job, when it still waits; else a new
        one."""
        standby, self.standby = self.standby, None
        if standby is not None and standby.process.poll() is None:
            job = Path(standby.jobs.name) / JOB_FILE
            job.with_suffix(".tmp").write_text(json.dumps(arguments), encoding="utf-8")
            os.replace(job.with_suffix(".tmp"), job)  # whole, or not there: the worker polls for it
            return standby
        if standby is not None:
            standby.end()
        return self._start(arguments)

    def protect(self, mri: sitk.Image, other: sitk.Image, identifier: str, colourTable: str | None, device: str,
                progress: Progress | None, cancel: Cancel | None, notice: Notice,
                ownerSecret: str | Path | None = None) -> EngineResult:
        """Write both images, run the worker's ``protect``, read the protected image and the key back; the worker
        reads the owner secret file ``ownerSecret`` itself (None: ``$AMIF_OWNER_SECRET``, else the demo secret)."""
        from amif_core.key.file import read_key

        with tempfile.TemporaryDirectory(prefix="amif-", dir=self.tempRoot) as folder:
            work = Path(folder)
            sitk.WriteImage(mri, str(work / "mri.mha"))
            sitk.WriteImage(other, str(work / "other.mha"))
            arguments = ["protect", "--mri", str(work / "mri.mha"), "--other", str(work / "other.mha"),
                         f"--identifier={identifier}",  # one argument, even for a text that starts with "-"
                         "--out", str(work / "protected.mha"),
                         "--key", str(work / "key.amifkey")]
            if colourTable:
                arguments += ["--colour-table", colourTable]
            if ownerSecret:
                arguments += ["--owner-secret", str(ownerSecret)]
            provenance = self.run(arguments, device, progress, cancel, notice)
            return EngineResult(sitk.ReadImage(str(work / "protected.mha")), read_key(work / "key.amifkey"),
                                provenance)

    def unlock(self, protected: sitk.Image, key: Any, device: str, progress: Progress | None,
               cancel: Cancel | None, notice: Notice) -> EngineResult:
        """Write the image and the key (decrypted, into the private folder only), run the worker's ``unlock``,
        read the unlocked image back."""
        from amif_core.key.file import write_key

        with tempfile.TemporaryDirectory(prefix="amif-", dir=self.tempRoot) as folder:
            work = Path(folder)
            sitk.WriteImage(protected, str(work / "protected.mha"))
            write_key(work / "key.amifkey", key)
            provenance = self.run(["unlock", "--protected", str(work / "protected.mha"), "--key",
                                   str(work / "key.amifkey"), "--out", str(work / "unlocked.mha")],
                                  device, progress, cancel, notice)
            return EngineResult(sitk.ReadImage(str(work / "unlocked.mha")), None, provenance)

    def check(self, device: str, cancel: Cancel | None = None) -> dict[str, Any]:
        """Run the worker's ``check``: torch imports and computes on ``device``; returns its version and the
        devices this computer offers (``{"torch", "device", "devices": [[label, id], ...]}``)."""
        return self.run(["check"], device, None, cancel, lambda text: None)

    def run(self, arguments: list[str], device: str, progress: Progress | None, cancel: Cancel | None,
            notice: Notice) -> dict[str, Any]:
        """Run the worker with ``arguments`` on ``device`` and return its result.

        Raises the AMIF error it reported, :class:`CancelledError` when
        ``cancel()`` turned True (the process is terminated first), or
        :class:`WorkerError` when it failed otherwise (a crash, a signal),
        quoting its last lines.
        """
        arguments = [*arguments, "--device", device]
        if self.weightsPath is not None and arguments[0] != "check":
            arguments += ["--weights", str(self.weightsPath)]
        worker = self._startJob(arguments)
        result, error, tail = None, None, deque(maxlen=TAIL_LINES)
        try:
            while True:
                if cancel is not None and cancel():
                    raise CancelledError("Cancelled by the user; nothing was written.")
                try:
                    line = worker.lines.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
                if line is None:  # its output ended: it is exiting, let it finish rather than stop it
                    try:
                        worker.process.wait(timeout=STOP_SECONDS)
                    except subprocess.TimeoutExpired:
                        pass
                    break
                message = parse_message(line)
                if message is None:
                    self.log(line)
                    tail.append(line)
                elif "progress" in message and progress is not None:
                    progress(*message["progress"])
                elif "notice" in message:
                    notice(message["notice"])
                elif "result" in message:
                    result = message["result"]
                elif "error" in message:
                    error = error_from_message(message["error"])
        finally:
            worker.end()
            if self.keepWarm:
                self._keepWarm()
        code = worker.process.wait()
        if error is not None:
            raise error
        if code != 0 or result is None:
            raise WorkerError(_("The AMIF worker process failed ({how}); nothing was written or added. A crash like "
                                "this is often a lack of memory or a GPU fault: try the CPU as the device, or a "
                                "smaller volume. Its last lines:\n{tail}").format(
                how=exitDescription(code), tail="\n".join(tail)))
        return result

    def _keepWarm(self) -> None:
        try:
            self.startStandby()
        except OSError as error:  # the next run starts its own worker, and reports a failure to start there
            self.log(f"Could not start the next AMIF worker ahead of time: {error}")


def _readLines(stream: IO[str], lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line.rstrip("\r\n"))
    lines.put(None)


def _stop(process: WorkerProcess) -> None:
    """Terminate the worker and wait for it (kill it when it does not exit in :data:`STOP_SECONDS`), so that its
    files are closed before its temporary folder is removed."""
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

