"""The `amif` command line, run in-process through main(argv) and as a real subprocess."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image
from file_opens import opens_of
from volume_factory import coarse_pet, geometry_close, oblique_mri, reference_fusion, snapshot

import amif_core.cli.common as common
import amif_core.cli.user as user
import amif_core.cli.main as cli
import amif_core.demo as demo
import amif_core.key.file as keyfile
from amif_core.inference.model import AMIFModel
from amif_core.inference.weights import save_weights
from amif_core.io.volumes import read_volume
from amif_core.key.storage import GREY_LEVELS
from amif_core.key.file import read_key, read_key_header, write_key
from amif_core.montage import MARK
from amif_core.networks.amif import AMIFNet
from amif_core.evaluation.fusion import psnr

REPO = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    """main(argv) in-process -> (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding an oblique, anisotropic, odd-sized int16 MRI (NIfTI) and a PET on another grid (NRRD)."""
    folder = tmp_path_factory.mktemp("inputs")
    sitk.WriteImage(oblique_mri(), str(folder / "mri.nii.gz"))
    sitk.WriteImage(coarse_pet(), str(folder / "pet.nrrd"))
    return folder


@pytest.fixture(scope="module")
def fused(inputs: Path, weights_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`amif fuse` run once; its protected volume and key."""
    out = tmp_path_factory.mktemp("fused")
    before = snapshot(inputs)
    code = cli.main(["fuse", str(inputs / "mri.nii.gz"), str(inputs / "pet.nrrd"), "-o", str(out / "protected.nrrd"),
                     "--key", str(out / "protected.amifkey"), "--weights", str(weights_file), "-q"])
    assert code == 0 and snapshot(inputs) == before
    return {"protected": out / "protected.nrrd", "key": out / "protected.amifkey"}


def test_fuse_then_unlock_from_the_saved_files(capsys, inputs: Path, fused: dict, weights_file: Path,
                                               model: AMIFModel, tmp_path: Path) -> None:
    before = snapshot(inputs), snapshot(fused["key"].parent)
    code, out, err = run(capsys, "unlock", fused["protected"], "--key", fused["key"], "-o", tmp_path / "fused.nrrd",
                         "--weights", weights_file)
    assert code == 0, err
    assert "Unlocked fusion" in out and "Unlocking" in err  # the result line, and the tqdm bar
    assert (snapshot(inputs), snapshot(fused["key"].parent)) == before
    assert sorted(os.listdir(tmp_path)) == ["fused.nrrd"]
    mri = read_volume(inputs / "mri.nii.gz")
    protected, unlocked = read_volume(fused["protected"]), read_volume(tmp_path / "fused.nrrd")
    assert geometry_close(protected, mri) and geometry_close(unlocked, mri)
    assert protected.GetPixelID() == sitk.sitkUInt16 and unlocked.GetPixelID() == sitk.sitkFloat32  # 16-bit archive
    axis = read_key_header(fused["key"])["axis"]
    reference = reference_fusion(model, mri, read_volume(inputs / "pet.nrrd"), axis)
    assert psnr(sitk.GetArrayViewFromImage(unlocked), reference) >= 50


def test_fuse_reports_resampling_and_results(capsys, inputs: Path, weights_file: Path, tmp_path: Path) -> None:
    code, out, err = run(capsys, "fuse", inputs / "mri.nii.gz", inputs / "pet.nrrd", "-o", tmp_path / "p.mha",
                         "--key", tmp_path / "p.amifkey", "--weights", weights_file, "--identifier", "Clinic 7",
                         "--axis", "0", "--device", "cpu")
    assert code == 0, err
    assert err.count("Resampled the second scan") == 1 and "Protecting" in err
    assert "Protected volume:" in out and "NOT encrypted" in out
    assert read_key_header(tmp_path / "p.amifkey")["identifier"] == "Clinic 7"
    assert sorted(os.listdir(tmp_path)) == ["p.amifkey", "p.mha"]


def _modified(protected: Path, folder: Path, name: str, change) -> Path:
    image = read_volume(protected)
    out = change(image)
    sitk.WriteImage(out, str(folder / name))
    return folder / name


def _with_voxels(image: sitk.Image, values: np.ndarray) -> sitk.Image:
    out = sitk.GetImageFromArray(values)
    out.CopyInformation(image)
    return out


def _edited(image: sitk.Image) -> sitk.Image:
    values = sitk.GetArrayFromImage(image)
    top = 1.0 if values.dtype.kind == "f" else GREY_LEVELS  # a float32 or a 16-bit protected volume
    values[4, 5:12, 6:14] = np.minimum(values[4, 5:12, 6:14] + 0.1 * top, top)
    return _with_voxels(image, values)


def _another_volume(image: sitk.Image) -> sitk.Image:
    values = sitk.GetArrayFromImage(oblique_mri()).astype(np.float32)
    return _with_voxels(image, (values - values.min()) / np.ptp(values))


def _shifted(image: sitk.Image) -> sitk.Image:
    image.SetOrigin([v + 1.5 for v in image.GetOrigin()])
    return image


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(123)
    path = tmp_path_factory.mktemp("other_weights") / "other.pt"
    save_weights(AMIFNet(), path, {"note": "another model version"})
    return path


def test_a_key_made_by_earlier_shipped_weights_unlocks_after_an_upgrade(capsys, monkeypatch, fused: dict,
                                                                        weights_file: Path, other_weights: Path,
                                                                        tmp_path: Path) -> None:
    """The key was made by the weights of ``fused`` (here the "earlier" file); a newer default ships beside them:
    ``amif unlock`` without --weights finds the earlier file by the key's model id, and a key whose weights are
    not shipped is still refused by name."""
    import amif_core.inference.weights as weights

    shipped = tmp_path / "weights"
    shipped.mkdir()
    (shipped / "amif_earlier.pt").write_bytes(weights_file.read_bytes())
    (shipped / "amif_newer.pt").write_bytes(other_weights.read_bytes())
    monkeypatch.setattr(weights, "SHIPPED_WEIGHTS_DIR", shipped)
    monkeypatch.setattr(weights, "DEFAULT_WEIGHTS", shipped / "amif_newer.pt")
    assert weights.shipped_weights(weights.model_id_of(weights_file)) == shipped / "amif_earlier.pt"
    code, out, err = run(capsys, "unlock", fused["protected"], "--key", fused["key"], "-o", tmp_path / "fused.nrrd")
    assert code == 0, err
    code, out, err = run(capsys, "unlock", fused["protected"], "--key", fused["key"], "-o", tmp_path / "named.nrrd",
                         "--weights", weights_file)
    assert code == 0, err
    assert np.array_equal(sitk.GetArrayViewFromImage(read_volume(tmp_path / "fused.nrrd")),
                          sitk.GetArrayViewFromImage(read_volume(tmp_path / "named.nrrd")))
    (shipped / "amif_earlier.pt").unlink()
    code, out, err = run(capsys, "unlock", fused["protected"], "--key", fused["key"], "-o", tmp_path / "refused.nrrd")
    assert code == 3 and "another model version" in err and not (tmp_path / "refused.nrrd").exists()


def test_every_unlock_problem_has_its_own_message_and_exit_code(capsys, fused: dict, weights_file: Path,
                                                                 other_weights: Path, tmp_path: Path) -> None:
    data = fused["key"].read_bytes()
    (tmp_path / "truncated.amifkey").write_bytes(data[: len(data) // 2])
    (tmp_path / "corrupted.amifkey").write_bytes(data[:-60] + bytes([data[-60] ^ 0x10]) + data[-59:])
    protected = fused["protected"]
    cases = [
        ("another volume", _modified(protected, tmp_path, "another.nrrd", _another_volume), fused["key"], weights_file,
         3, "belongs to another volume"),
        ("another model", protected, fused["key"], other_weights, 3, "another model version"),
        ("edited", _modified(protected, tmp_path, "edited.nrrd", _edited), fused["key"], weights_file, 3,
         "was modified after it was protected"),
        ("down-cast to 8 bits", _modified(protected, tmp_path, "uint8.nrrd",
                                          lambda im: sitk.Cast(sitk.ShiftScale(im, 0, 255 / 32767), sitk.sitkUInt8)),
         fused["key"], weights_file, 3, "was down-cast"),
        ("moved", _modified(protected, tmp_path, "moved.nrrd", _shifted), fused["key"], weights_file, 3,
         "its origin changed"),
        ("truncated key", protected, tmp_path / "truncated.amifkey", weights_file, 2, "is truncated"),
        ("corrupted key", protected, tmp_path / "corrupted.amifkey", weights_file, 2, "integrity check fails"),
        ("not a key", protected, protected, weights_file, 2, "not an AMIF key file"),
    ]
    messages = {}
    for name, volume, key, weights, expected_code, words in cases:
        code, out, err = run(capsys, "unlock", volume, "--key", key, "-o", tmp_path / "out.nrrd", "--weights", weights)
        assert code == expected_code, (name, err)
        assert words in err, (name, err)
        assert not (tmp_path / "out.nrrd").exists()
        messages[name] = re.sub(r"/\S+|[0-9a-f]{12}", "", err)
    assert len(set(messages.values())) == len(cases)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".amif-partial")]


def test_passphrase_sources_and_errors(capsys, monkeypatch: pytest.MonkeyPatch, inputs: Path, weights_file: Path,
                                       tmp_path: Path) -> None:
    (tmp_path / "pass.txt").write_text("s3cret phrase\n", encoding="utf-8")
    protected, key = tmp_path / "p.nrrd", tmp_path / "p.amifkey"
    code, out, err = run(capsys, "fuse", inputs / "mri.nii.gz", inputs / "pet.nrrd", "-o", protected, "--key", key,
                         "--weights", weights_file, "--passphrase-file", tmp_path / "pass.txt", "-q")
    assert code == 0 and out == "", err
    assert read_key_header(key)["encryption"] is not None
    unlock = ["unlock", protected, "--key", key, "-o", tmp_path / "u.nrrd", "--weights", weights_file, "-q"]
    monkeypatch.setenv("AMIF_TEST_PASS", "s3cret phrase")
    assert run(capsys, *unlock, "--passphrase-env", "AMIF_TEST_PASS")[0] == 0
    (tmp_path / "u.nrrd").unlink()
    monkeypatch.setenv("AMIF_TEST_PASS", "S3cret phrase")
    code, _, err = run(capsys, *unlock, "--passphrase-env", "AMIF_TEST_PASS")
    assert code == 4 and "does not open" in err
    code, _, err = run(capsys, *unlock)
    assert code == 4 and "is encrypted; give its passphrase" in err
    code, _, err = run(capsys, *unlock, "--passphrase-env", "AMIF_NOT_SET_ANYWHERE")
    assert code == 2 and "is not set" in err
    code, _, err = run(capsys, *unlock, "--passphrase", "s3cret phrase")  # never a plain argument
    assert code == 2 and "unrecognized arguments" in err
    answers = iter(["one", "two"])
    monkeypatch.setattr(common.getpass, "getpass", lambda prompt: next(answers))
    code, _, err = run(capsys, "fuse", inputs / "mri.nii.gz", inputs / "pet.nrrd", "-o", tmp_path / "q.nrrd",
                       "--key", tmp_path / "q.amifkey", "--weights", weights_file, "--passphrase-prompt")
    assert code == 2 and "differ" in err
    monkeypatch.setattr(common.getpass, "getpass", lambda prompt: "s3cret phrase")
    assert run(capsys, *unlock, "--passphrase-prompt")[0] == 0
    assert sorted(os.listdir(tmp_path)) == ["p.amifkey", "p.nrrd", "pass.txt", "u.nrrd"]


def test_info_shows_the_header_only(capsys, fused: dict, tmp_path: Path) -> None:
    code, out, err = run(capsys, "info", fused["key"])
    header = read_key_header(fused["key"])
    assert code == 0 and header["volume_fingerprint"] in out and "encrypted:          no" in out
    assert "fits the volume with" in out and header["model_id"] in out
    assert "stored as:          uint16 integers 0..32767" in out
    code, out, _ = run(capsys, "info", fused["key"], "--json")
    assert code == 0 and json.loads(out) == header
    key = keyfile.read_key(fused["key"])
    for secret in (key.code_origin, key.code_step):
        values = secret.ravel()[:50].astype(np.float64)
        assert not any(f"{v:.6g}" in out for v in values if abs(v) > 1e-3 and v not in (0.5, 1.0))
    (tmp_path / "cut.amifkey").write_bytes(b"\x89AMIFKEY\r\n\x1a\n\x02\x00")
    code, _, err = run(capsys, "info", tmp_path / "cut.amifkey")
    assert code == 2 and "is truncated" in err
    code, _, err = run(capsys, "info", fused["protected"])
    assert code == 2 and "not an AMIF key file" in err


def test_outputs_are_never_overwritten_without_force(capsys, inputs: Path, fused: dict, weights_file: Path,
                                                     tmp_path: Path) -> None:
    args = ["unlock", fused["protected"], "--key", fused["key"], "--weights", weights_file, "-q"]
    (tmp_path / "u.nrrd").write_bytes(b"precious")
    code, _, err = run(capsys, *args, "-o", tmp_path / "u.nrrd")
    assert code == 2 and "already exists; nothing was overwritten. Use --force to replace it." in err and (tmp_path / "u.nrrd").read_bytes() == b"precious"
    assert run(capsys, *args, "-o", tmp_path / "u.nrrd", "--force")[0] == 0
    assert read_volume(tmp_path / "u.nrrd").GetSize() == read_volume(fused["protected"]).GetSize()
    code, _, err = run(capsys, *args, "-o", fused["protected"], "--force")
    assert code == 2 and "one of the input files" in err
    code, _, err = run(capsys, *args, "-o", tmp_path / "u.mhd")
    assert code == 2 and "second file" in err
    code, _, err = run(capsys, "fuse", inputs / "mri.nii.gz", inputs / "pet.nrrd", "-o", tmp_path / "same.nrrd",
                       "--key", tmp_path / "same.nrrd", "--weights", weights_file)
    assert code == 2 and "given twice" in err
    code, _, err = run(capsys, *args, "-o", tmp_path / "u2.nrrd", "--device", "tpu")
    assert code == 2 and "device" in err.lower()


@contextmanager
def _interrupt_after_first_batch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    @contextmanager
    def interrupting(description: str, quiet: bool):
        def progress(done: int, total: int) -> None:
            if done > 0:
                raise KeyboardInterrupt

        yield progress

    monkeypatch.setattr(user, "progress_bar", interrupting)
    yield


def test_interruption_and_failure_leave_no_files(capsys, monkeypatch: pytest.MonkeyPatch, inputs: Path,
                                                 fused: dict, weights_file: Path, tmp_path: Path) -> None:
    fuse = ["fuse", inputs / "mri.nii.gz", inputs / "pet.nrrd", "-o", tmp_path / "p.nrrd", "--key",
            tmp_path / "p.amifkey", "--weights", weights_file, "-q"]
    with monkeypatch.context() as patch, _interrupt_after_first_batch(patch):
        code, _, err = run(capsys, *fuse)
        assert code == 130 and "no output files were written" in err
        code, _, err = run(capsys, "unlock", fused["protected"], "--key", fused["key"], "-o", tmp_path / "u.nrrd",
                           "--weights", weights_file)
        assert code == 130
    assert os.listdir(tmp_path) == []

    def disk_full(arrays):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:  # the volume is written first: it must go too
        patch.setattr(keyfile, "_compress", disk_full)
        code, _, err = run(capsys, *fuse)
        assert code == 1 and "No space left on device" in err
    assert os.listdir(tmp_path) == []

    def interrupted(arrays):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(keyfile, "_compress", interrupted)
        assert run(capsys, *fuse)[0] == 130
    assert os.listdir(tmp_path) == []


def test_help_and_usage(capsys) -> None:
    for name in cli.COMMANDS:
        code, out, _ = run(capsys, name, "--help")
        assert code == 0 and f"example:\n  amif {name}" in out
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "exit codes" in out
    assert run(capsys, "fuse", "only-one-input.nrrd")[0] == 2
    code, _, err = run(capsys, "fuse", "absent.nrrd", "absent2.nrrd", "-o", "p.nrrd", "--key", "k", "--identifier", " ")
    assert code == 2 and "identifier text is empty" in err  # refused before reading anything
    code, _, err = run(capsys, "fuse", "absent.nrrd", "absent2.nrrd", "-o", "p.nrrd", "--key", "k")
    assert code == 2 and "absent.nrrd does not exist" in err
    assert run(capsys)[0] == 2
    assert run(capsys, "--version")[0] == 0


def _subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def test_real_subprocess_info(fused: dict, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "amif_core.cli", "info", str(fused["key"])], capture_output=True,
                          encoding="utf-8", env=_subprocess_env(), cwd=tmp_path, timeout=120)
    assert done.returncode == 0 and read_key_header(fused["key"])["volume_fingerprint"] in done.stdout


def test_demo(capsys, monkeypatch: pytest.MonkeyPatch, weights_file: Path, tmp_path: Path) -> None:
    small = tmp_path / "bundled"
    small.mkdir()
    sitk.WriteImage(sitk.ReadImage(str(demo.DEMO_MRI))[::3, ::3, 54:58], str(small / "mri.nrrd"))
    sitk.WriteImage(sitk.ReadImage(str(demo.DEMO_PET)), str(small / "pet.nrrd"))
    monkeypatch.setattr(demo, "DEMO_MRI", small / "mri.nrrd")
    monkeypatch.setattr(demo, "DEMO_PET", small / "pet.nrrd")
    bundled = snapshot(small)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = run(capsys, "demo", "--weights", weights_file)
    assert code == 0, err
    folder = work / "amif-demo-output"
    assert sorted(os.listdir(folder)) == ["montage.png", "protected.amifkey", "protected.nrrd", "unlocked.nrrd"]
    assert "montage:" in out and "Resampled the second scan" in err
    mri = read_volume(small / "mri.nrrd")
    assert geometry_close(read_volume(folder / "unlocked.nrrd"), mri)
    montage = np.asarray(Image.open(folder / "montage.png"))
    assert montage.ndim == 3 and montage.shape[2] == 3
    quarter = montage.shape[1] // 4
    pet_column, mri_column = montage[:, quarter : 2 * quarter].astype(int), montage[:, :quarter].astype(int)
    assert (pet_column[..., 0] - pet_column[..., 2]).max() > 100  # a colour map
    ticks = (mri_column == MARK).all(axis=-1)  # the marks of the planes' crossing
    assert ticks.any() and (mri_column[~ticks][..., 0] == mri_column[~ticks][..., 2]).all()  # grey
    before = snapshot(folder)
    code, _, err = run(capsys, "demo", "--out", folder, "--weights", weights_file)
    assert code == 2 and "--force" in err and snapshot(folder) == before
    assert run(capsys, "demo", "--out", folder, "--weights", weights_file, "--force", "-q")[0] == 0
    assert snapshot(small) == bundled
    with monkeypatch.context() as patch, _interrupt_after_first_batch(patch):
        assert run(capsys, "demo", "--out", tmp_path / "cancelled", "--weights", weights_file)[0] == 130
    assert not (tmp_path / "cancelled").exists()


def test_unlock_reads_the_key_file_once(capsys, monkeypatch: pytest.MonkeyPatch, inputs: Path, weights_file: Path,
                                        tmp_path: Path) -> None:
    """The header, the passphrase question and the key arrays all come from one read of the key file."""
    protected, key = tmp_path / "p.nrrd", tmp_path / "p.amifkey"
    monkeypatch.setenv("AMIF_TEST_PASS", "s3cret phrase")
    code, _, err = run(capsys, "fuse", inputs / "mri.nii.gz", inputs / "pet.nrrd", "-o", protected, "--key", key,
                       "--weights", weights_file, "--passphrase-env", "AMIF_TEST_PASS", "-q")
    assert code == 0, err
    for passphrase in (["--passphrase-env", "AMIF_TEST_PASS"], []):
        if not passphrase:  # the same volume's key, unencrypted
            write_key(key, read_key(key, "s3cret phrase"), force=True)
        with opens_of(key) as opened:
            code, _, err = run(capsys, "unlock", protected, "--key", key, "-o", tmp_path / "u.nrrd", "--weights",
                               weights_file, "-q", "--force", *passphrase)
        assert code == 0, err
        assert opened == ["open"], opened


def test_the_exit_codes_are_one_table_that_help_lists_whole(capsys) -> None:
    constants = {value for name, value in vars(common).items() if name.startswith("EXIT_") and isinstance(value, int)}
    assert constants == set(common.EXIT_CODES), "every EXIT_ constant has its meaning in EXIT_CODES"
    code, out, _ = run(capsys, "--help")
    epilog = out.split("exit codes:", 1)[1]
    for exit_code, meaning in common.EXIT_CODES.items():
        assert f"{exit_code:3d}  {meaning}" in epilog
    assert " 143  terminated" in epilog


def test_bench_writes_its_figures_as_json_and_never_overwrites(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code, printed, _ = run(capsys, "bench", "--device", "cpu", "--threads", "1", "--size", "32", "--depth", "2",
                           "--repeats", "1", "--json", out)
    assert code == 0
    figures = json.loads(out.read_text())
    assert figures["threads"] == 1 and figures["device"] == "cpu" and figures["protect_gflops"] > 0
    assert f"{figures['protect_gflops']:.4f}" in printed  # the JSON holds what was printed
    code, _, err = run(capsys, "bench", "--size", "32", "--depth", "2", "--repeats", "1", "--json", out)
    assert code == 2 and "--force" in err
