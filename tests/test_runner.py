"""The core runner: device list, memory plan, out-of-memory fallback (moved here from the Slicer module's tests)."""
from __future__ import annotations

import os

import pytest
import torch

import amif_core
from amif_core.constants import DEFAULT_BATCH_SIZE
from amif_core.errors import MemoryLimitError
from amif_core.runtime import runner

GB = 2**30


def test_device_list_offers_auto_each_gpu_and_the_cpu():
    options = runner.available_devices()
    assert options[0].device_id == "auto" and options[-1] == runner.DeviceOption("cpu", "CPU")
    gpus = [o for o in options if o.device_id.startswith("cuda:")]
    assert len(gpus) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert all(o.label.startswith(f"GPU {o.device_id[5:]}: ") and o.label.endswith(" GB)") for o in gpus)
    assert ("mps" in [o.device_id for o in options]) == torch.backends.mps.is_available()
    assert runner.resolve("cpu") == "cpu"
    assert runner.device_label("cuda:1") == "GPU 1" and runner.device_label("cpu") == "CPU"


def test_memory_plan_refuses_what_cannot_fit_and_sizes_gpu_batches():
    slices = (512, 512)
    assert runner.plan_run(10_000_000, slices, "cpu", False, 8 * GB, None).batch_size == runner.CPU_BATCH_SIZE
    with pytest.raises(MemoryLimitError, match=r"needs about 44\.9 GB of memory, but only 8\.0 GB is free"):
        runner.plan_run(1_000_000_000, slices, "cpu", False, 8 * GB, None)

    per_slice = 512 * 512 * runner.DEVICE_BYTES_PER_PIXEL
    plan = runner.plan_run(10_000_000, slices, "cuda:0", False, 64 * GB, 4 * per_slice)
    assert plan.device == "cuda:0" and plan.batch_size == 3  # 80 % of the free memory
    assert runner.plan_run(10_000_000, slices, "cuda:0", False, 64 * GB, 1000 * per_slice).batch_size == \
        runner.MAX_GPU_BATCH_SIZE
    with pytest.raises(MemoryLimitError, match="GPU 0 has 0.2 GB of memory free.*Run on the CPU") as caught:
        runner.plan_run(10_000_000, slices, "cuda:0", False, 64 * GB, per_slice)
    assert caught.value.setting == "device" and caught.value.value == "cuda:0"
    automatic = runner.plan_run(10_000_000, slices, "cuda:0", True, 64 * GB, per_slice)
    assert automatic.device == "cpu" and "Running on the CPU instead" in automatic.notes[0]


def test_out_of_memory_halves_the_batch_then_falls_back_to_the_cpu():
    attempts, notices = [], []

    def run(device: str, batch: int) -> str:
        attempts.append((device, batch))
        if device != "cpu":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "fused"

    result = runner.run_with_memory_fallback(run, runner.RunPlan("cuda:0", 4, 0, 0), notices.append)
    assert result == ("fused", "cpu")
    assert attempts == [("cuda:0", 4), ("cuda:0", 2), ("cuda:0", 1), ("cpu", runner.CPU_BATCH_SIZE)]
    assert notices[0] == "GPU 0 ran out of memory with 4 slices at a time; retrying with 2."
    assert notices[-1] == "GPU 0 ran out of memory even with one slice at a time; falling back to the CPU."

    def cpu_exhausted(device: str, batch: int) -> str:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: not enough memory")

    with pytest.raises(MemoryLimitError, match="even with one slice at a time on the CPU"):
        runner.run_with_memory_fallback(cpu_exhausted, runner.RunPlan("cpu", 1, 0, 0), notices.append)

    def broken(device: str, batch: int) -> str:
        raise ValueError("not a memory problem")

    with pytest.raises(ValueError, match="not a memory problem"):
        runner.run_with_memory_fallback(broken, runner.RunPlan("cuda:0", 4, 0, 0), notices.append)


def test_reading_a_key_imports_neither_torch_nor_ptwt(tmp_path) -> None:
    """`amif info` and reading a key header or a whole key run in a fresh interpreter without torch."""
    import subprocess
    import sys

    from test_keyfile import synthetic_key

    from amif_core.key.file import write_key

    write_key(tmp_path / "k.amifkey", synthetic_key())
    code = (
        "import sys\n"
        "from amif_core.cli.main import main\n"
        "from amif_core.key.file import read_key, read_key_header\n"
        f"read_key_header({str(tmp_path / 'k.amifkey')!r}); read_key({str(tmp_path / 'k.amifkey')!r})\n"
        f"assert main(['info', {str(tmp_path / 'k.amifkey')!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ptwt')))\n"
    )
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # the header shows "©", whatever the locale
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8", env=env, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_cuda_out_of_memory_in_amif_fuse_retries_smaller_then_on_the_cpu(tmp_path, monkeypatch, capsys) -> None:
    """An injected CUDA out-of-memory error: `amif fuse` halves the batch, then runs on the CPU, and says so."""
    import SimpleITK as sitk
    from volume_factory import coarse_pet, oblique_mri

    import amif_core.cli.main as cli
    from amif_core.inference import pipeline

    monkeypatch.setattr(runner, "plan_for", lambda voxels, shape, requested, cpu_batch_size: runner.RunPlan(
        "cuda:0", 2, 0, 0, cpu_batch_size=cpu_batch_size))
    cpu_model = amif_core.load_model("cpu")
    monkeypatch.setattr(amif_core, "load_model", lambda device, weights=None: cpu_model if device == "cpu"
                        else _OnGpu(cpu_model))
    attempts, real = [], pipeline.protect_volume

    def protect(model, *args, batch_size, **kwargs):
        attempts.append((str(model.device), batch_size))
        if model.device.type != "cpu":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, *args, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(pipeline, "protect_volume", protect)
    sitk.WriteImage(oblique_mri(), str(tmp_path / "mri.nrrd"))
    sitk.WriteImage(coarse_pet(), str(tmp_path / "pet.nrrd"))
    code = cli.main(["fuse", str(tmp_path / "mri.nrrd"), str(tmp_path / "pet.nrrd"), "-o", str(tmp_path / "p.nrrd"),
                     "--key", str(tmp_path / "p.amifkey")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_OK and (tmp_path / "p.nrrd").is_file() and (tmp_path / "p.amifkey").is_file()
    assert attempts == [("cuda:0", 2), ("cuda:0", 1), ("cpu", DEFAULT_BATCH_SIZE)]  # the CLI's CPU batch
    assert "GPU 0 ran out of memory with 2 slices at a time; retrying with 1." in err
    assert "GPU 0 ran out of memory even with one slice at a time; falling back to the CPU." in err


class _OnGpu:
    """The CPU model presented as one on cuda:0, so the retries run without a GPU."""

    def __init__(self, model: amif_core.AMIFModel) -> None:
        self._model = model
        self.device = torch.device("cuda:0")

    def __getattr__(self, name: str) -> object:
        return getattr(self._model, name)


def test_a_broken_torch_install_lists_auto_and_cpu_and_says_why(monkeypatch: pytest.MonkeyPatch):
    import builtins
    import sys

    real_import = builtins.__import__

    def failing(name, *args, **kwargs):
        if name == "torch":
            raise OSError("[WinError 126] The specified module could not be found: c10_cuda.dll")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "torch")  # restored afterwards: the real torch stays loaded for other tests
    monkeypatch.setattr(builtins, "__import__", failing)
    monkeypatch.setattr(runner.importlib.util, "find_spec", lambda name: object())  # torch looks installed
    assert [o.device_id for o in runner.available_devices()] == ["auto", "cpu"]
    problem = runner.torch_import_problem()
    assert problem.startswith("PyTorch is installed but cannot be imported (OSError:") and "c10_cuda.dll" in problem


MEMINFO = """MemTotal:       32768000 kB
MemFree:          512000 kB
MemAvailable:   20480000 kB
Cached:         19000000 kB
"""

VM_STAT = """Mach Virtual Memory Statistics: (page size of 16384 bytes)
Pages free:                               10000.
Pages active:                            200000.
Pages inactive:                           50000.
Pages speculative:                         5000.
Pages purgeable:                           1000.
"""


def test_free_host_memory_counts_reclaimable_cache():
    assert runner.meminfo_available(MEMINFO) == 20480000 * 1024  # MemAvailable, not MemFree (512 MB)
    assert runner.meminfo_available("MemTotal: 1 kB\n") is None
    assert runner.vm_stat_available(VM_STAT) == 16384 * (10000 + 50000 + 5000 + 1000)
    assert runner.vm_stat_available("") is None
    free = runner.free_host_memory()
    assert free is None or free > 0
