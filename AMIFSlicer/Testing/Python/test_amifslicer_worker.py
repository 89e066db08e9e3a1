"""The panel's engine on real MRML with a real worker process (``python -m amif_core.cli.worker``): the demo pair
and a colour pair protected and unlocked as in this process, a cancel mid-run and a killed worker that leave
nothing behind, the core's errors passed on, and torch never imported by the process that drives the worker."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from AMIFSlicerLib.dependencies import WorkerTorchCheck
from AMIFSlicerLib.errors import DependencyError
from AMIFSlicerLib.sampledata import demoVolumePaths
from AMIFSlicerLib.testdata import addPhantomPair, loadWithStorageNode
from AMIFSlicerLib.volumenodes import addScalarVolumeNode, localIjkToRas, voxelArray
from AMIFSlicerLib.worker import WorkerEngine, launchSubprocess
from test_amifslicer_panelbuttons import Panel, parametersFor

from amif_core.errors import CancelledError, ImageModifiedError
from amif_core.transforms.colour import apply_table, colour_table

MODULE_DIR = Path(__file__).resolve().parents[2]


class Launcher:
    """:func:`launchSubprocess`, keeping the processes it started (to check that none outlives its run)."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []

    def __call__(self, command: list[str], cwd: str) -> subprocess.Popen:
        self.processes.append(launchSubprocess(command, cwd))
        return self.processes[-1]


@pytest.fixture
def worker(workspace, tmp_path):
    """The workspace's logic on a worker engine whose temporary folders go into ``tmp_path / "temp"``."""
    launcher, temp = Launcher(), tmp_path / "temp"
    temp.mkdir()
    workspace.logic.engine = WorkerEngine(launch=launcher, weightsPath=workspace.logic.weightsPath, tempRoot=temp)
    yield launcher, temp
    assert all(process.poll() is not None for process in launcher.processes), "a worker outlived its run"


def test_the_worker_protects_and_unlocks_the_demo_pair(workspace, worker, tmp_path):
    launcher, temp = worker
    mri, pet = (loadWithStorageNode(workspace.scene, [path], "vtkMRMLScalarVolumeNode") for path in demoVolumePaths())
    ticks: list[tuple[int, int]] = []
    keyPath = tmp_path / "demo.amifkey"
    protected = workspace.logic.protect(mri, pet, keyPath, device="cpu", colour="pet",
                                        progress=lambda *t: ticks.append(t))
    assert ticks == [(done, 112) for done in range(113)]  # a line per slice reached the bar
    assert voxelArray(protected).shape == voxelArray(mri).shape + (3,)  # the PET fused in colour
    assert protected.GetAttribute("AMIF.device") == "CPU" and keyPath.is_file()
    unlocked = workspace.logic.unlock(protected, keyPath, device="cpu")
    assert unlocked.GetAttribute("AMIF.role") == "unlocked"
    assert not np.array_equal(voxelArray(unlocked), voxelArray(protected))
    assert list(temp.iterdir()) == [] and len(launcher.processes) == 2


def test_the_worker_gives_what_this_process_gives_on_a_colour_pair(workspace, worker, tmp_path):
    mri, pet = addPhantomPair(workspace.scene, (6, 40, 36))
    rgb = apply_table(np.clip(voxelArray(pet) / 15.0, 0, 1), colour_table("spect"))
    rgbPet = addScalarVolumeNode(workspace.scene, (rgb * 255).round().astype(np.uint8), localIjkToRas(pet),
                                 "phantom RGB PET")
    viaWorker = workspace.logic.protect(mri, rgbPet, tmp_path / "w.amifkey", device="cpu")
    workerEngine, workspace.logic.engine = workspace.logic.engine, type(workspace.logic)(workspace.scene).engine
    here = workspace.logic.protect(mri, rgbPet, tmp_path / "h.amifkey", device="cpu")
    assert voxelArray(viaWorker).dtype == np.uint8 and voxelArray(viaWorker).shape[-1] == 3
    assert np.array_equal(voxelArray(viaWorker), voxelArray(here))
    unlockedHere = workspace.logic.unlock(viaWorker, tmp_path / "w.amifkey", device="cpu")  # the worker's key
    workspace.logic.engine = workerEngine
    unlockedThere = workspace.logic.unlock(here, tmp_path / "h.amifkey", device="cpu")
    assert np.array_equal(voxelArray(unlockedHere), voxelArray(unlockedThere))


def test_the_worker_marks_the_fusion_with_the_owner_secret_it_is_given(workspace, worker, tmp_path):
    from amif_core.tracing.secret import new_secret, write_secret

    secretPath = tmp_path / "owner.secret"
    write_secret(secretPath, new_secret())
    mri, pet = addPhantomPair(workspace.scene, (6, 40, 36))
    viaWorker = workspace.logic.protect(mri, pet, tmp_path / "w.amifkey", device="cpu", ownerSecret=secretPath)
    demo = workspace.logic.protect(mri, pet, tmp_path / "d.amifkey", device="cpu")
    workspace.logic.engine = type(workspace.logic)(workspace.scene).engine
    here = workspace.logic.protect(mri, pet, tmp_path / "h.amifkey", device="cpu", ownerSecret=secretPath)
    assert np.array_equal(voxelArray(viaWorker), voxelArray(here))
    assert not np.array_equal(voxelArray(viaWorker), voxelArray(demo))


def test_a_cancel_mid_run_stops_the_worker_and_leaves_nothing(workspace, worker, tmp_path):
    launcher, temp = worker
    mri, pet = addPhantomPair(workspace.scene, (12, 40, 36))
    done: list[int] = []
    keyPath = tmp_path / "k.amifkey"
    nodes = workspace.scene.GetNumberOfNodes()
    with pytest.raises(CancelledError):
        workspace.logic.protect(mri, pet, keyPath, device="cpu", progress=lambda d, total: done.append(d),
                                cancel=lambda: bool(done))
    assert done and done[-1] < 12, "cancelled mid-run"
    assert launcher.processes[0].returncode == -signal.SIGTERM
    assert not keyPath.exists() and workspace.scene.GetNumberOfNodes() == nodes and list(temp.iterdir()) == []


def test_a_killed_worker_is_a_panel_message_and_leaves_nothing(workspace, worker):
    launcher, temp = worker
    mri, pet = addPhantomPair(workspace.scene, (8, 40, 36))

    def killAtTheFirstSlice(panel) -> None:
        bar = panel.ui.protectProgressBar
        if bar.value >= 1 and launcher.processes[-1].poll() is None:
            os.kill(launcher.processes[-1].pid, signal.SIGKILL)  # as the kernel's out-of-memory killer does

    panel = Panel(workspace, processEvents=killAtTheFirstSlice)
    keyPath = workspace.directory / "k.amifkey"
    nodes = workspace.scene.GetNumberOfNodes()
    parameters = parametersFor(mri, pet, keyPath)
    panel.actions.protect(parameters)
    status = panel.ui.protectStatusLabel.text
    assert status.startswith("Protecting failed: The AMIF worker process failed (it was stopped by SIGKILL); "
                             "nothing was written or added."), status
    assert not panel.dialogs, "a crash of the worker is a message, not a traceback"
    assert not keyPath.exists() and workspace.scene.GetNumberOfNodes() == nodes and list(temp.iterdir()) == []


def test_the_workers_amif_errors_arrive_as_the_cores_errors(workspace, worker, tmp_path):
    mri, pet = addPhantomPair(workspace.scene, (4, 40, 36))
    keyPath = tmp_path / "k.amifkey"
    protected = workspace.logic.protect(mri, pet, keyPath, "-Clinic \u00a9", device="cpu", colour="grey")
    assert protected.GetAttribute("AMIF.identifier") == "-Clinic \u00a9"  # one argument, though it starts with "-"
    edited = voxelArray(protected).copy()
    edited[2, 20, 18] += 1
    copy = addScalarVolumeNode(workspace.scene, edited, localIjkToRas(protected), "edited")
    with pytest.raises(ImageModifiedError) as caught:
        workspace.logic.unlock(copy, keyPath, device="cpu")
    assert caught.value.template.startswith("The protected volume was modified")


def test_the_process_that_drives_the_worker_never_imports_torch(tmp_path):
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(MODULE_DIR)!r})\n"
        "from AMIFSlicerLib.bootstrap import ensureAmifCoreImportable\n"
        f"ensureAmifCoreImportable({str(MODULE_DIR)!r})\n"
        "import slicer\n"
        "from AMIFSlicerLib.logic import AMIFSceneLogic\n"
        "from AMIFSlicerLib.testdata import addPhantomPair\n"
        "from AMIFSlicerLib.worker import WorkerEngine\n"
        "scene = slicer.vtkMRMLScene()\n"
        "logic = AMIFSceneLogic(scene, engine=WorkerEngine())\n"
        "mri, pet = addPhantomPair(scene, (4, 40, 36))\n"
        f"protected = logic.protect(mri, pet, {str(tmp_path / 'k.amifkey')!r}, device='cpu')\n"
        f"logic.unlock(protected, {str(tmp_path / 'k.amifkey')!r}, device='cpu')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch')[:3])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_dependency_check_runs_in_the_worker_once_per_device():
    launcher = Launcher()
    check = WorkerTorchCheck(WorkerEngine(launch=launcher).check)
    summary = check("cpu")
    assert re.fullmatch(r"PyTorch \S+ runs on cpu\.", summary) and ["CPU", "cpu"] in check.devices
    assert check("cpu") == summary and len(launcher.processes) == 1  # checked once
    with pytest.raises(DependencyError, match="could not run on the cuda:7 device: Device 'cuda:7' is not available"):
        check("cuda:7")


def test_a_worker_started_ahead_of_time_runs_the_next_job_and_shutdown_stops_it(workspace, worker, tmp_path):
    launcher, temp = worker
    workspace.logic.engine.keepWarm = True
    mri, pet = addPhantomPair(workspace.scene, (4, 40, 36))
    keyPath = tmp_path / "k.amifkey"
    protected = workspace.logic.protect(mri, pet, keyPath, device="cpu")
    assert len(launcher.processes) == 2 and launcher.processes[1].poll() is None  # the next one waits
    standbyFolders = [p.name for p in temp.iterdir()]
    assert len(standbyFolders) == 1 and standbyFolders[0].startswith("amif-standby-")
    unlocked = workspace.logic.unlock(protected, keyPath, device="cpu")
    assert launcher.processes[1].returncode == 0, "the unlock ran in the worker started ahead of time"
    assert unlocked.GetAttribute("AMIF.role") == "unlocked" and len(launcher.processes) == 3
    workspace.logic.engine.shutdown()
    assert launcher.processes[2].poll() is not None and list(temp.iterdir()) == []


def test_a_waiting_worker_exits_when_its_folder_goes(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    process = launchSubprocess([sys.executable, "-m", "amif_core.cli.worker", "serve", "--jobs", str(jobs)],
                               str(MODULE_DIR.parent))
    assert process.stdout.readline().startswith('AMIF:{"ready": true}')
    jobs.rmdir()
    assert process.wait(timeout=10) == 0 and process.stdout.read() == ""
