"""`amif batch` and `amif_core.batch.protect_manifest` on real Dask clusters: an in-process `LocalCluster`, and
worker processes from distributed's own test utilities for the killed worker."""
from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from volume_factory import scan

distributed = pytest.importorskip("distributed", reason="amif batch needs the 'batch' extra (dask[distributed])")
from distributed import Client, LocalCluster  # noqa: E402
from distributed.utils_test import cluster  # noqa: E402

import amif_core
import amif_core.cli.main as cli  # noqa: E402
from amif_core.batch import FuseOptions, protect_manifest, read_manifest  # noqa: E402
from amif_core.batch.report import sha256_of  # noqa: E402
from amif_core.inference.pipeline import check_key_fits_volume, unlock_volume  # noqa: E402
from amif_core.inference.weights import DEFAULT_WEIGHTS, model_id_of  # noqa: E402
from amif_core.io.volumes import read_volume  # noqa: E402
from amif_core.key.file import read_key  # noqa: E402

SIZE = (32, 32, 8)  # x, y, z: 8 axial slices of 32x32
SPACING = (1.5, 1.5, 3.0)
GOOD = ["grey", "grey-resampled", "colour", "colour-spect"]


def _write(image: sitk.Image, path: Path) -> Path:
    sitk.WriteImage(image, str(path))
    return path


def _manifest(folder: Path, rows: list[dict[str, str]]) -> Path:
    path = folder / "manifest.csv"
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, ["study_id", "mri", "other", "colour", "identifier"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six small studies, grey and colour: four good, one whose PET is missing, one whose PET lies elsewhere."""
    folder = tmp_path_factory.mktemp("archive")
    (folder / "inputs").mkdir()
    mri = _write(scan(SIZE, SPACING, kind="mri", pixel_type=sitk.sitkInt16), folder / "inputs" / "mri.nrrd")
    ct = _write(scan(SIZE, SPACING, kind="pet", seed=1), folder / "inputs" / "ct.nii.gz")
    coarse = _write(scan((20, 20, 6), (2.5, 2.5, 4.5), kind="pet", seed=2), folder / "inputs" / "pet.mha")
    far = _write(scan(SIZE, SPACING, centre=(500.0, 0.0, 0.0), kind="pet"), folder / "inputs" / "far.nrrd")
    rows = [
        {"study_id": "grey", "mri": "inputs/mri.nrrd", "other": "inputs/ct.nii.gz"},
        {"study_id": "grey-resampled", "mri": "inputs/mri.nrrd", "other": str(coarse), "identifier": "Trial 7 ©"},
        {"study_id": "colour", "mri": str(mri), "other": "inputs/pet.mha", "colour": "pet"},
        {"study_id": "missing", "mri": "inputs/mri.nrrd", "other": "inputs/gone.nrrd"},
        {"study_id": "elsewhere", "mri": "inputs/mri.nrrd", "other": str(far)},
        {"study_id": "colour-spect", "mri": "inputs/mri.nrrd", "other": str(ct), "colour": "spect"},
    ]
    _manifest(folder, rows)
    return folder


@pytest.fixture(scope="module")
def client() -> Client:
    """A real in-process LocalCluster of two single-threaded workers."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as local, \
            Client(local, set_as_default=False) as connected:
        yield connected


def _report(out: Path) -> dict[str, dict[str, str]]:
    with (out / "batch-report.csv").open(newline="", encoding="utf-8") as file:
        return {row["study_id"]: row for row in csv.DictReader(file)}


def test_killing_a_worker_mid_run_still_protects_every_study(archive: Path, tmp_path: Path):
    """Two worker processes (distributed.utils_test.cluster, no nanny to restart them); the first worker seen
    holding a study is killed with SIGKILL. Dask reruns its studies on the other; every study ends protected.

    It runs before the module's in-process cluster starts: utils_test.cluster checks at its end that no comm of
    the process is left open, and that cluster's comms would count."""
    mri = _write(scan((64, 64, 16), SPACING, kind="mri"), tmp_path / "mri.nrrd")  # about a second per study
    ct = _write(scan((64, 64, 16), SPACING, kind="pet"), tmp_path / "ct.nrrd")
    manifest = _manifest(tmp_path, [{"study_id": f"s{i}", "mri": str(mri), "other": str(ct)} for i in range(4)])
    with cluster(nworkers=2) as (scheduler, workers), Client(scheduler["address"]) as client:
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                outcome["report"] = protect_manifest(manifest, tmp_path / "out", client, device="cpu", progress=False)
            except BaseException as error:  # shown by the assertion below
                outcome["error"] = error

        thread = threading.Thread(target=run)
        thread.start()
        deadline, busy = time.monotonic() + 60, {}
        while not busy and time.monotonic() < deadline:
            busy = {address: [str(k) for k in keys] for address, keys in client.processing().items()
                    if any(str(k).startswith("amif-study") for k in keys)}
            time.sleep(0.005)
        assert busy, "no worker took a study"
        victim, keys = next(iter(busy.items()))
        os.kill(next(w for w in workers if w["address"] == victim)["proc"]().pid, signal.SIGKILL)
        thread.join(timeout=120)
        assert "error" not in outcome, outcome.get("error")
        report = outcome["report"]
        assert victim not in client.scheduler_info()["workers"]
    assert report.counts == {"protected": 4, "skipped": 0, "failed": 0, "invalid": 0}
    assert any(r.worker != victim for r in report.studies)
    model_id = model_id_of(DEFAULT_WEIGHTS)
    for result in report.studies:
        check_key_fits_volume(read_volume(result.protected), read_key(result.key), model_id)


@pytest.fixture(scope="module")
def first_run(archive: Path, client: Client, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """`amif batch` once, on the in-process cluster by its scheduler address: (out folder, exit code, stderr)."""
    out = tmp_path_factory.mktemp("batch") / "out"
    import contextlib
    import io

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = cli.main(["batch", str(archive / "manifest.csv"), "--out", str(out), "--device", "cpu",
                         "--scheduler", client.scheduler.address])
    return out, code, stderr.getvalue()


def test_first_run_protects_the_four_good_studies_and_reports_the_two_bad(first_run: tuple[Path, int, str]):
    out, code, stderr = first_run
    assert code == 1
    report = _report(out)
    assert {sid: row["status"] for sid, row in report.items()} == {
        "grey": "protected", "grey-resampled": "protected", "colour": "protected", "colour-spect": "protected",
        "missing": "invalid", "elsewhere": "failed"}
    assert "row 5 (missing): other" in stderr and "gone.nrrd does not exist" in stderr  # listed before the work
    assert "not protected: missing, elsewhere" in stderr
    assert "do not overlap in physical space" in report["elsewhere"]["error"]
    for sid in GOOD:
        row = report[sid]
        assert row["error"] == "" and row["device"] == "cpu" and float(row["seconds"]) > 0
        assert Path(row["protected"]) == out / sid / "protected.nrrd"
        assert Path(row["key"]) == out / sid / "protected.amifkey"
        assert row["sha256"] == sha256_of(out / sid / "protected.nrrd")
    assert "Resampled the second scan" in report["grey-resampled"]["notes"]
    assert not (out / "missing").exists() and not any((out / "elsewhere").iterdir())
    summary = json.loads((out / "batch-report.json").read_text())
    assert summary["counts"] == {"protected": 4, "skipped": 0, "failed": 1, "invalid": 1}
    assert summary["failed"] == ["missing", "elsewhere"] and summary["workers"] == 2


def test_every_protected_volume_unlocks_with_its_key(first_run: tuple[Path, int, str], model):
    out, _, _ = first_run
    for sid in GOOD:
        protected = read_volume(out / sid / "protected.nrrd")
        key = read_key(out / sid / "protected.amifkey")
        fused = sitk.GetArrayFromImage(unlock_volume(model, protected, key))
        assert key.colour is None if sid.startswith("grey") else key.colour is not None
        assert fused.shape == sitk.GetArrayViewFromImage(protected).shape and np.isfinite(fused).all()
    assert read_key(out / "grey-resampled" / "protected.amifkey").identifier == "Trial 7 ©"


def test_a_batch_study_is_what_amif_fuse_writes(first_run: tuple[Path, int, str], archive: Path, tmp_path: Path):
    out, _, _ = first_run
    code = cli.main(["fuse", str(archive / "inputs" / "mri.nrrd"), str(archive / "inputs" / "pet.mha"), "--colour",
                     "pet", "-o", str(tmp_path / "p.nrrd"), "--key", str(tmp_path / "p.amifkey"), "--device", "cpu",
                     "-q"])
    assert code == 0
    batch, single = read_volume(out / "colour" / "protected.nrrd"), read_volume(tmp_path / "p.nrrd")
    assert np.array_equal(sitk.GetArrayViewFromImage(batch), sitk.GetArrayViewFromImage(single))
    assert read_key(tmp_path / "p.amifkey").volume_fingerprint == \
        read_key(out / "colour" / "protected.amifkey").volume_fingerprint


def test_a_second_run_does_nothing_and_a_deleted_output_is_redone(first_run: tuple[Path, int, str], archive: Path,
                                                                   client: Client):
    out, _, _ = first_run
    written = {sid: (out / sid / "protected.nrrd").stat().st_mtime_ns for sid in GOOD}
    report = protect_manifest(archive / "manifest.csv", out, client, device="cpu", progress=False,
                              notice=lambda message: None)
    assert report.counts == {"protected": 0, "skipped": 4, "failed": 1, "invalid": 1} and not report.ok
    assert {sid: (out / sid / "protected.nrrd").stat().st_mtime_ns for sid in GOOD} == written

    (out / "colour" / "protected.amifkey").unlink()
    report = protect_manifest(archive / "manifest.csv", out, client, device="cpu", progress=False,
                              notice=lambda message: None)
    statuses = {result.study_id: result.status for result in report.studies}
    assert statuses == {"grey": "skipped", "grey-resampled": "skipped", "colour": "protected",
                        "colour-spect": "skipped", "missing": "invalid", "elsewhere": "failed"}
    assert {sid: (out / sid / "protected.nrrd").stat().st_mtime_ns for sid in GOOD if sid != "colour"} == \
        {sid: t for sid, t in written.items() if sid != "colour"}
    assert read_key(out / "colour" / "protected.amifkey")  # written again, and it fits (the next test unlocks)


def test_bad_rows_are_all_reported_with_their_row_and_reason(tmp_path: Path):
    (tmp_path / "a.nrrd").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    path = _manifest(tmp_path, [
        {"study_id": "s1", "mri": "a.nrrd", "other": "a.nrrd"},
        {"study_id": "S1", "mri": "a.nrrd", "other": "a.nrrd"},
        {"study_id": "s2", "mri": "nope.nrrd", "other": "notes.txt"},
        {"study_id": "s3", "mri": "a.nrrd", "other": "a.nrrd", "colour": "rainbow"},
        {"study_id": "../up", "mri": "a.nrrd", "other": "a.nrrd", "identifier": "名前"},
        {"study_id": "s5", "mri": "a.nrrd", "other": "a.nrrd"},
        {"study_id": "Batch-Report.csv", "mri": "a.nrrd", "other": "a.nrrd"},
    ])
    studies, rejected = read_manifest(path, FuseOptions())
    assert [s.study_id for s in studies] == ["s5"]
    text = {problem.row: str(problem) for problem in rejected}
    assert "also on row(s) 3" in text[2] and "also on row(s) 2" in text[3]
    assert "mri" in text[4] and "nope.nrrd does not exist" in text[4] and "notes.txt is not a volume" in text[4]
    assert "Unknown colour table 'rainbow'" in text[5]
    assert "cannot name a folder" in text[6] and "characters the built-in font cannot draw" in text[6]
    assert "the name of the batch report" in text[8]


def test_a_manifest_without_the_columns_is_refused_before_any_work(tmp_path: Path, capsys):
    (tmp_path / "m.csv").write_text("id,mri,pet\nx,a,b\n")
    assert cli.main(["batch", str(tmp_path / "m.csv"), "--out", str(tmp_path / "out")]) == 2
    assert "lacks the column(s) study_id, other" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_each_worker_loads_the_model_once_for_all_its_studies(archive: Path, client: Client, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch):
    import amif_core

    loads = []
    real = amif_core.load_model
    monkeypatch.setattr(amif_core, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    report = protect_manifest(archive / "manifest.csv", tmp_path / "out", client, device="cpu", progress=False,
                              notice=lambda message: None)
    assert report.counts["protected"] == 4 and len(loads) == len(client.nthreads()) == 2


def test_encrypted_dicom_studies_resume_and_an_earlier_key_is_never_replaced_unasked(archive: Path, client: Client,
                                                                                    tmp_path: Path):
    inputs = archive / "inputs"
    manifest = _manifest(tmp_path, [{"study_id": "d", "mri": str(inputs / "mri.nrrd"), "other": str(inputs / "pet.mha"),
                                     "colour": "pet"}])
    secret, other_secret = tmp_path / "secret.txt", tmp_path / "other.txt"
    secret.write_text("correct horse battery\n")
    other_secret.write_text("another phrase\n")
    out = tmp_path / "out"

    def run(passphrase_file: Path):
        return protect_manifest(manifest, out, client, options=FuseOptions(dicom=True), passphrase_file=passphrase_file,
                                device="cpu", progress=False, notice=lambda message: None).studies[0]

    first = run(secret)
    assert first.status == "protected" and (out / "d" / "protected").is_dir()
    assert first.sha256 == sha256_of(out / "d" / "protected")
    key = out / "d" / "protected.amifkey"
    assert read_key(key, "correct horse battery").colour is not None
    assert run(secret).status == "skipped"
    written = key.read_bytes()
    refused = run(other_secret)
    assert refused.status == "failed" and "does not open the key file" in refused.error and "--force" in refused.error
    assert key.read_bytes() == written


def test_amif_batch_on_its_own_local_cluster(archive: Path, tmp_path: Path, capsys):
    """The default engine: a LocalCluster of worker processes that `amif batch` starts and stops itself."""
    inputs = archive / "inputs"
    manifest = _manifest(tmp_path, [{"study_id": "one", "mri": str(inputs / "mri.nrrd"),
                                     "other": str(inputs / "ct.nii.gz")}])
    code = cli.main(["batch", str(manifest), "--out", str(tmp_path / "out"), "--workers", "1", "--device", "cpu",
                     "--format", "nii.gz"])
    out = capsys.readouterr().out
    assert code == 0 and "1 studies: 1 protected, 0 skipped, 0 failed, 0 invalid" in out and "on 1 workers" in out
    assert (tmp_path / "out" / "one" / "protected.nii.gz").is_file()


def test_a_local_cluster_has_one_worker_per_core_as_far_as_memory_holds():
    from amif_core.batch.cluster import CPU_WORKER_MEMORY, local_workers

    assert local_workers("cpu", cores=16, memory=64 * 2**30) == 16
    assert local_workers("cpu", cores=16, memory=5 * CPU_WORKER_MEMORY + 1) == 5
    assert local_workers("cpu", cores=2, memory=2**30) == 1


def test_without_dask_amif_batch_says_how_to_install_it(archive: Path, tmp_path: Path, capsys,
                                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # as if not installed
    assert cli.main(["batch", str(archive / "manifest.csv"), "--out", str(tmp_path / "out")]) == 2
    assert 'pip install "amif-core[batch]"' in capsys.readouterr().err


def test_check_lists_the_rows_that_cannot_run_and_does_nothing(archive: Path, tmp_path: Path, capsys):
    assert cli.main(["batch", str(archive / "manifest.csv"), "--out", str(tmp_path / "out"), "--check"]) == 1
    out = capsys.readouterr().out
    assert "row 5 (missing): other" in out and "5 of 6 studies can run." in out
    assert not (tmp_path / "out").exists()


def test_dask_scheduler_address_picks_the_cluster(archive: Path, client: Client, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, capsys):
    import dask

    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", client.scheduler.address)
    dask.config.refresh()
    try:
        code = cli.main(["batch", str(archive / "manifest.csv"), "--out", str(tmp_path / "out"), "--device", "cpu"])
    finally:
        monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
        dask.config.refresh()
    assert code == 1 and json.loads((tmp_path / "out" / "batch-report.json").read_text())["scheduler"] == \
        client.scheduler.address
    assert "4 protected" in capsys.readouterr().out


def test_workers_that_cannot_load_the_model_are_named_before_any_study_runs(archive: Path, client: Client,
                                                                            tmp_path: Path):
    with pytest.raises(amif_core.InputError, match="could not load the AMIF model"):
        protect_manifest(archive / "manifest.csv", tmp_path / "out", client, device="nonsense", progress=False,
                         notice=lambda message: None)
    assert not any((tmp_path / "out").glob("*/protected*"))


def test_the_owner_secret_reaches_every_study_as_amif_fuse_uses_it(archive: Path, client: Client, tmp_path: Path):
    inputs = archive / "inputs"
    manifest = _manifest(tmp_path, [{"study_id": "s", "mri": str(inputs / "mri.nrrd"), "other": str(inputs / "ct.nii.gz")}])
    secret = tmp_path / "owner.secret"
    assert cli.main(["owner", "init", "-o", str(secret), "-q"]) == 0
    report = protect_manifest(manifest, tmp_path / "out", client, options=FuseOptions(owner_secret=secret),
                              device="cpu", progress=False, notice=lambda message: None)
    assert report.ok and "demo trace mark" not in report.studies[0].notes
    assert cli.main(["fuse", str(inputs / "mri.nrrd"), str(inputs / "ct.nii.gz"), "-o", str(tmp_path / "f.nrrd"),
                     "--key", str(tmp_path / "f.amifkey"), "--owner-secret", str(secret), "--device", "cpu", "-q"]) == 0
    batch = sitk.GetArrayFromImage(read_volume(tmp_path / "out" / "s" / "protected.nrrd"))
    assert np.array_equal(batch, sitk.GetArrayFromImage(read_volume(tmp_path / "f.nrrd")))
    demo = protect_manifest(manifest, tmp_path / "demo", client, device="cpu", progress=False,
                            notice=lambda message: None).studies[0]
    assert "demo trace mark" in demo.notes
    assert not np.array_equal(batch, sitk.GetArrayFromImage(read_volume(tmp_path / "demo" / "s" / "protected.nrrd")))


def test_a_rerun_with_another_identifier_protects_again(archive: Path, client: Client, tmp_path: Path):
    inputs = archive / "inputs"
    manifest = _manifest(tmp_path, [{"study_id": "s", "mri": str(inputs / "mri.nrrd"), "other": str(inputs / "ct.nii.gz")}])

    def run(identifier: str) -> str:
        return protect_manifest(manifest, tmp_path / "out", client, options=FuseOptions(identifier=identifier),
                                device="cpu", progress=False, notice=lambda message: None).studies[0].status

    assert [run("Site A"), run("Site A"), run("Site B")] == ["protected", "skipped", "protected"]
    assert read_key(tmp_path / "out" / "s" / "protected.amifkey").identifier == "Site B"
