"""Faults around a run: signals, a full disk, a read-only folder, parallel runs, repeated runs.

Whatever happens, a run leaves either all of its outputs, complete, or none
of them (no .amif-partial-* file, no truncated output), and never changes an
input. Parallel unlocks agree byte for byte; on one CPU machine the same
inputs give the same protected volume and the same key arrays.
"""
from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from test_keyfile import parts
from volume_factory import scan, sha256, snapshot

import amif_core.cli.common as common
import amif_core.cli.main as cli
import amif_core.atomic as atomic
import amif_core.key.file as keyfile
from amif_core.inference.model import AMIFModel
from amif_core.inference.pipeline import protect_volume, unlock_volume
from amif_core.io.volumes import read_volume, write_volume
from amif_core.key.file import read_key, write_key

REPO = Path(__file__).resolve().parents[1]
PASSPHRASE = "s3cret phrase"
# The child restores Python's Ctrl-C handler: a test runner started in the background inherits SIGINT ignored.
CHILD = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
         "runpy.run_module('amif_core.cli.main', run_name='__main__', alter_sys=True)")


def amif(*argv: object, cwd: Path) -> subprocess.Popen:
    """The `amif` command line as a real child process, with as many torch threads as this one."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "AMIF_TEST_PASS": PASSPHRASE, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.Popen([sys.executable, "-c", CHILD, *map(str, argv)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen, timeout: float = 180) -> tuple[int, str]:
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a small registered MRI (NIfTI) and PET (NRRD) on one grid: four slices of 24 x 32."""
    folder = tmp_path_factory.mktemp("pair")
    sitk.WriteImage(scan((32, 24, 4), (1.0, 1.0, 2.0), pixel_type=sitk.sitkInt16), str(folder / "mri.nii.gz"))
    sitk.WriteImage(scan((32, 24, 4), (1.0, 1.0, 2.0), kind="pet"), str(folder / "pet.nrrd"))
    return folder


def fuse_args(pair: Path, out: Path, weights: Path, name: str = "p.nrrd") -> list[str]:
    return ["fuse", str(pair / "mri.nii.gz"), str(pair / "pet.nrrd"), "-o", str(out / name), "--key",
            str(out / "p.amifkey"), "--weights", str(weights), "-q"]


# ---------------------------------------------------------------- signals


@pytest.fixture(scope="module")
def long_run(model: AMIFModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs large enough to interrupt a run in progress (32 slices): a pair, its protected volume and its key."""
    folder = tmp_path_factory.mktemp("long_run")
    mri, pet = scan((48, 40, 32), (1.0, 1.0, 1.0)), scan((48, 40, 32), (1.0, 1.0, 1.0), kind="pet")
    sitk.WriteImage(mri, str(folder / "mri.nrrd"))
    sitk.WriteImage(pet, str(folder / "pet.nrrd"))
    protected, key = protect_volume(model, mri, pet)
    write_volume(protected, folder / "protected.nrrd")
    write_key(folder / "protected.amifkey", key, passphrase=PASSPHRASE)
    return folder


@pytest.mark.parametrize(("command", "signum", "code", "words"), [
    ("fuse", signal.SIGINT, 130, "interrupted; no output files were written"),
    ("fuse", signal.SIGTERM, 143, "terminated; no output files were written"),
    ("unlock", signal.SIGTERM, 143, "terminated; no output files were written"),
], ids=["SIGINT during fuse", "SIGTERM during fuse", "SIGTERM during unlock"])
def test_a_signal_mid_run_leaves_no_output(long_run: Path, weights_file: Path, command: str, signum: int, code: int,
                                           words: str) -> None:
    before = snapshot(long_run)
    if command == "fuse":
        argv = ["fuse", "mri.nrrd", "pet.nrrd", "-o", "out.nrrd", "--key", "out.amifkey", "--weights", weights_file]
        marker = b"Protecting"
    else:
        argv = ["unlock", "protected.nrrd", "--key", "protected.amifkey", "-o", "out.nrrd", "--weights", weights_file,
                "--passphrase-env", "AMIF_TEST_PASS"]
        marker = b"Unlocking"
    process = amif(*argv, cwd=long_run)
    seen = bytearray()

    def read_stderr() -> None:
        for byte in iter(lambda: process.stderr.read(1), b""):
            seen.extend(byte)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while marker not in seen and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker in seen and process.poll() is None, f"no run in progress to interrupt: {bytes(seen)!r}"
    process.send_signal(signum)
    assert process.wait(timeout=60) == code, bytes(seen).decode("utf-8", "replace")
    reader.join(timeout=5)
    assert words in bytes(seen).decode("utf-8", "replace")
    assert snapshot(long_run) == before  # no output, no partial file, inputs untouched


# ---------------------------------------------------------------- a full disk


def mount(*argv: object) -> str:
    """Run mount(8); '' on success, else why it failed."""
    if shutil.which("mount") is None:
        return "no mount command"
    done = subprocess.run(["mount", *map(str, argv)], capture_output=True)
    return "" if done.returncode == 0 else (done.stderr.decode(errors="replace").strip().splitlines() or ["failed"])[0]


@contextmanager
def room_for(folder: Path, capacity: int, mechanism: str) -> Iterator[None]:
    """Writes into ``folder`` fail beyond ``capacity`` bytes.

    "tmpfs": a tmpfs of that size mounted on ``folder`` (ENOSPC, as on a full
    disk; needs root). "rlimit": this process's RLIMIT_FSIZE (EFBIG, for any
    file; works for every user).
    """
    if mechanism == "tmpfs":
        mounted = mount("-t", "tmpfs", "-o", f"size={capacity}", "tmpfs", folder)
        if mounted:
            pytest.skip(f"cannot mount a tmpfs (needs root with CAP_SYS_ADMIN): {mounted}")
        try:
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (capacity, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.parametrize("mechanism", ["tmpfs", "rlimit"])
@pytest.mark.parametrize("name", ["p.nrrd", "p.nii", "p.nii.gz", "p.mha"])
def test_a_full_disk_while_writing_the_volume_leaves_no_output(capsys, pair: Path, weights_file: Path,
                                                               tmp_path: Path, mechanism: str, name: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(pair)
    with room_for(out, 4096, mechanism):  # the protected volume needs 6 kB (uint16)
        code = cli.main(fuse_args(pair, out, weights_file, name))
        listed = os.listdir(out)
    err = capsys.readouterr().err
    assert code == 1, err
    # ITK's NIfTI writer (and, for a write cut after its first block, its NRRD writer) reports success on a full
    # disk: AMIF must notice the short file itself.
    assert ("is the disk full?" in err or (".nii" not in name and "Could not write the volume" in err))
    assert str(out / name) in err
    assert listed == [] and snapshot(pair) == before


def test_a_full_disk_in_the_middle_of_the_key_leaves_no_output(capsys, monkeypatch: pytest.MonkeyPatch, pair: Path,
                                                               weights_file: Path, tmp_path: Path) -> None:
    """The protected volume's temporary file is complete when the key's write fails half-way."""
    real_open = open
    sizes: list[int] = []

    class HalfFullDisk:
        def __init__(self, file) -> None:
            self.file, self.written = file, 0

        def write(self, data: bytes) -> int:
            if self.written + len(data) > 600:
                self.file.write(bytes(data)[: 600 - self.written])
                self.file.flush()
                sizes.append(os.fstat(self.file.fileno()).st_size)
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(data)
            return self.file.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.file.close()

    monkeypatch.setattr(keyfile, "open", lambda path, mode: HalfFullDisk(real_open(path, mode)), raising=False)
    before = snapshot(pair)
    code = cli.main(fuse_args(pair, tmp_path, weights_file))
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err, err
    assert sizes == [600]  # the key really was cut in the middle
    assert os.listdir(tmp_path) == [] and snapshot(pair) == before


# ---------------------------------------------------------------- a read-only folder


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` made read-only: by its mode, or (for root, whom modes do not stop) by a read-only bind mount."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    for step in (("--bind", folder, folder), ("-o", "remount,ro,bind", folder)):
        failed = mount(*step)
        if failed:
            subprocess.run(["umount", str(folder)], capture_output=True)
            pytest.skip(f"running as root, and cannot bind-mount read-only: {failed}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_output_folder_is_refused_before_any_work(capsys, monkeypatch: pytest.MonkeyPatch, pair: Path,
                                                              weights_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(pair)
    with read_only(out):
        with pytest.raises(OSError):
            (out / "probe").write_bytes(b"")  # the folder really is read-only
        monkeypatch.setattr(common.Models, "__call__", lambda self, device: pytest.fail("the model was loaded"))
        code = cli.main(fuse_args(pair, out, weights_file))
    err = capsys.readouterr().err
    assert code == 2 and f"The folder {out} is not writable" in err, err
    assert os.listdir(out) == [] and snapshot(pair) == before


def test_a_folder_that_turns_read_only_while_moving_outputs_into_place_keeps_none(
        capsys, monkeypatch: pytest.MonkeyPatch, pair: Path, weights_file: Path, tmp_path: Path) -> None:
    """The volume is already in place when moving the key fails: the volume must go too."""
    real_link = os.link

    def link(source, target, *args, **kwargs):
        if str(target).endswith(".amifkey"):
            raise OSError(errno.EROFS, "Read-only file system", str(target))
        return real_link(source, target, *args, **kwargs)

    def replace(source, target, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(target))

    monkeypatch.setattr(atomic.os, "link", link)
    monkeypatch.setattr(atomic.os, "replace", replace)
    before = snapshot(pair)
    code = cli.main(fuse_args(pair, tmp_path, weights_file))
    err = capsys.readouterr().err
    assert code == 1 and "Read-only file system" in err, err
    assert os.listdir(tmp_path) == [] and snapshot(pair) == before


# ---------------------------------------------------------------- parallel runs


@pytest.fixture(scope="module")
def protected(model: AMIFModel, pair: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the pair's protected volume and its encrypted key."""
    folder = tmp_path_factory.mktemp("protected")
    image, key = protect_volume(model, read_volume(pair / "mri.nii.gz"), read_volume(pair / "pet.nrrd"))
    write_volume(image, folder / "protected.nrrd")
    write_key(folder / "protected.amifkey", key, passphrase=PASSPHRASE)
    return folder


def test_parallel_unlocks_in_threads_agree_byte_for_byte(model: AMIFModel, protected: Path) -> None:
    before = snapshot(protected)

    def unlock(_: int) -> bytes:
        key = read_key(protected / "protected.amifkey", PASSPHRASE)
        fused = unlock_volume(model, read_volume(protected / "protected.nrrd"), key)
        return sitk.GetArrayFromImage(fused).tobytes()

    alone = unlock(0)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(unlock, range(4)))
    assert all(result == alone for result in results)
    assert snapshot(protected) == before


def test_parallel_unlock_processes_agree_byte_for_byte(protected: Path, weights_file: Path, tmp_path: Path) -> None:
    before = snapshot(protected)
    runs = [amif("unlock", protected / "protected.nrrd", "--key", protected / "protected.amifkey", "-o",
                 tmp_path / f"u{i}.nrrd", "--weights", weights_file, "--passphrase-env", "AMIF_TEST_PASS", "-q",
                 cwd=tmp_path) for i in range(4)]
    for process in runs:
        code, err = finish(process)
        assert code == 0, err
    assert len({sha256(tmp_path / f"u{i}.nrrd") for i in range(4)}) == 1
    assert sorted(os.listdir(tmp_path)) == [f"u{i}.nrrd" for i in range(4)]
    assert snapshot(protected) == before


def test_parallel_writers_of_one_path_leave_exactly_one_complete_file(tmp_path: Path) -> None:
    images = [scan((16, 24, 20), (1.0, 1.0, 1.0), seed=seed) for seed in range(4)]
    start = threading.Barrier(4)

    def write(image: sitk.Image) -> str:
        start.wait()
        try:
            write_volume(image, tmp_path / "out.nrrd")
        except FileExistsError:
            return "refused"
        return "written"

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(write, images))
    assert sorted(outcomes) == ["refused"] * 3 + ["written"]
    assert os.listdir(tmp_path) == ["out.nrrd"]
    winner = images[outcomes.index("written")]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_volume(tmp_path / "out.nrrd")),
                                  sitk.GetArrayViewFromImage(winner))


# ---------------------------------------------------------------- determinism


def test_the_same_inputs_give_the_same_protected_volume_and_key(capsys, model: AMIFModel, pair: Path,
                                                                weights_file: Path, tmp_path: Path) -> None:
    """Three runs: two child processes (one with a passphrase) and one in this long-lived process.

    ``model`` sets this process's torch threads, which the children copy.
    """
    a, b, encrypted = folders = [tmp_path / name for name in ("child", "here", "encrypted")]
    for folder in folders:
        folder.mkdir()
    runs = [amif(*fuse_args(pair, a, weights_file), cwd=tmp_path),
            amif(*fuse_args(pair, encrypted, weights_file), "--passphrase-env", "AMIF_TEST_PASS", cwd=tmp_path)]
    assert cli.main(fuse_args(pair, b, weights_file)) == 0, capsys.readouterr().err
    for process in runs:
        code, err = finish(process)
        assert code == 0, err
    assert sha256(a / "p.nrrd") == sha256(b / "p.nrrd") == sha256(encrypted / "p.nrrd")

    def header(folder: Path, *volatile: str) -> dict:
        fields = json.loads(parts((folder / "p.amifkey").read_bytes())[1])
        return {name: value for name, value in fields.items() if name not in volatile}

    # Plain keys differ at most in their creation time: the compressed arrays are the same bytes.
    assert header(a, "created_utc") == header(b, "created_utc")
    assert parts((a / "p.amifkey").read_bytes())[2] == parts((b / "p.amifkey").read_bytes())[2]
    if header(a)["created_utc"] == header(b)["created_utc"]:
        assert sha256(a / "p.amifkey") == sha256(b / "p.amifkey")
    # An encrypted key adds a random salt and nonce; its header otherwise matches and its arrays decrypt the same.
    assert header(encrypted, "created_utc", "encryption") == header(a, "created_utc", "encryption")
    plain, opened = read_key(a / "p.amifkey"), read_key(encrypted / "p.amifkey", PASSPHRASE)
    for name in ("codes", "code_origin", "code_step", "signature", "mask_offsets"):
        assert getattr(plain, name).tobytes() == getattr(opened, name).tobytes(), name
