"""What the command line says and when (issue 28's D1, D2, D4, D6, D7, D8 and D9): the right reason, early."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk
from test_cli import _subprocess_env, inputs, run  # noqa: F401 (inputs is a fixture)
from tqdm import tqdm
from volume_factory import snapshot

import amif_core.cli.common as common
import amif_core.cli.main as cli
import amif_core.demo as demo


@pytest.fixture(scope="module")
def fused(inputs: Path, weights_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`amif fuse` in grey and in colour: both protected volumes and keys."""
    out = tmp_path_factory.mktemp("fused")
    for kind, extra in (("grey", []), ("colour", ["--colour", "pet"])):
        code = cli.main(["fuse", str(inputs / "mri.nii.gz"), str(inputs / "pet.nrrd"), "-o", str(out / f"{kind}.nrrd"),
                         "--key", str(out / f"{kind}.amifkey"), "--weights", str(weights_file), "-q", *extra])
        assert code == cli.EXIT_OK
    return {name: out / name for name in ("grey.nrrd", "grey.amifkey", "colour.nrrd", "colour.amifkey")}


@pytest.mark.parametrize("volume, key, reason", [
    ("colour.nrrd", "grey.amifkey", "This key is for a grey fusion, but the volume is RGB (a colour fusion)"),
    ("grey.nrrd", "colour.amifkey", "This key is for a colour fusion, but the volume is grey"),
])
def test_d1_a_key_of_the_other_kind_does_not_fit(capsys, fused: dict, weights_file: Path, tmp_path: Path,
                                                 volume: str, key: str, reason: str) -> None:
    code, _, err = run(capsys, "unlock", fused[volume], "--key", fused[key], "-o", tmp_path / "u.nrrd",
                       "--weights", weights_file)
    assert code == cli.EXIT_KEY_MISMATCH and reason in err and "greyscale" not in err
    assert not (tmp_path / "u.nrrd").exists()


def test_d2_fusing_a_scan_with_itself_is_said(capsys, inputs: Path, weights_file: Path, tmp_path: Path) -> None:
    shutil.copy(inputs / "mri.nii.gz", tmp_path / "copy.nii.gz")
    for other, words in ((inputs / "mri.nii.gz", "are the same file"), (tmp_path / "copy.nii.gz", "have the same voxels")):
        code, _, err = run(capsys, "fuse", inputs / "mri.nii.gz", other, "-o", tmp_path / f"{other.name}-p.nrrd",
                           "--key", tmp_path / f"{other.name}.amifkey", "--weights", weights_file)
        assert code == cli.EXIT_OK and words in err and "with itself" in err
    code, _, err = run(capsys, "fuse", inputs / "mri.nii.gz", inputs / "pet.nrrd", "-o", tmp_path / "p.nrrd",
                       "--key", tmp_path / "p.amifkey", "--weights", weights_file)
    assert code == cli.EXIT_OK and "itself" not in err


def test_d4_the_protecting_bar_closes_before_the_unlock_starts(capsys, monkeypatch: pytest.MonkeyPatch,
                                                              weights_file: Path, tmp_path: Path) -> None:
    events: list[str] = []

    class Recorded(tqdm):
        def close(self) -> None:
            events.append(f"{self.desc} closed")
            super().close()

    real_unlock = demo.unlock_volume

    def unlock(*args, **kwargs):
        events.append("unlock started")
        return real_unlock(*args, **kwargs)

    small = tmp_path / "bundled"
    small.mkdir()
    sitk.WriteImage(sitk.ReadImage(str(demo.DEMO_MRI))[::4, ::4, 54:57], str(small / "mri.nrrd"))
    monkeypatch.setattr(demo, "DEMO_MRI", small / "mri.nrrd")
    monkeypatch.setattr(common, "tqdm", Recorded)
    monkeypatch.setattr(demo, "unlock_volume", unlock)
    code, _, err = run(capsys, "demo", "--out", tmp_path / "out", "--weights", weights_file)
    assert code == cli.EXIT_OK, err
    assert events.index("Protecting closed") < events.index("unlock started") < events.index("Unlocking closed")


def test_d6_an_unknown_colour_table_is_refused_before_the_inputs_are_read(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "fuse", tmp_path / "absent.nrrd", tmp_path / "absent2.nrrd", "-o", tmp_path / "p.nrrd",
                       "--key", tmp_path / "p.amifkey", "--colour", "viridis")
    assert code == cli.EXIT_USAGE and "Unknown colour table 'viridis'" in err and "does not exist" not in err


def test_d7_a_closed_output_pipe_ends_quietly_as_in_unix_tools(fused: dict, tmp_path: Path) -> None:
    """`amif info --json KEY | head`: the reader is gone before amif writes; no error, exit 128 + SIGPIPE."""
    child = subprocess.Popen([sys.executable, "-m", "amif_core.cli", "info", "--json", str(fused["grey.amifkey"])],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_subprocess_env(), cwd=tmp_path)
    child.stdout.close()  # before the child has started Python, so its first write finds no reader
    err = child.stderr.read().decode()
    child.stderr.close()
    assert child.wait(timeout=120) == cli.EXIT_BROKEN_PIPE and err == ""


def test_d8_train_help_shows_every_option_with_its_default(capsys) -> None:
    from amif_core.training.trainer import TrainConfig

    defaults = TrainConfig(data="")
    code, out, _ = run(capsys, "train", "--help")
    text = " ".join(out.split())  # argparse wraps lines
    assert code == cli.EXIT_OK
    for option, default in (("--seed", defaults.seed), ("--fusion-steps", defaults.fusion_steps),
                            ("--protect-steps", defaults.protect_steps), ("--batch", defaults.batch),
                            ("--crop", defaults.crop)):
        line = text.split(f" {option} {option.lstrip('-').upper().replace('-', '_')} ", 1)[1]
        assert line.split(" --")[0].endswith(f"(default {default})"), option


def test_d9_swapped_unlock_arguments_are_recognised(capsys, fused: dict, tmp_path: Path) -> None:
    before = snapshot(fused["grey.nrrd"].parent)
    code, _, err = run(capsys, "unlock", fused["grey.amifkey"], "--key", fused["grey.nrrd"], "-o", tmp_path / "u.nrrd")
    assert code == cli.EXIT_USAGE and "look swapped" in err
    assert f"amif unlock {fused['grey.nrrd']} --key {fused['grey.amifkey']}" in err
    assert snapshot(fused["grey.nrrd"].parent) == before and not (tmp_path / "u.nrrd").exists()
    code, _, err = run(capsys, "unlock", fused["grey.nrrd"], "--key", fused["grey.nrrd"], "-o", tmp_path / "u.nrrd")
    assert code == cli.EXIT_USAGE and "not an AMIF key file" in err and "swapped" not in err
