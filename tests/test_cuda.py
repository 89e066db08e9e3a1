"""The CUDA path: protect and unlock on a GPU, keys across devices, and the out-of-memory fallback on a real card.

Every test here is marked ``cuda`` and skips, saying why, where torch sees no
CUDA device. ``benchmarks/gpu_check.py`` runs them (``pytest -m cuda``) on a GPU machine.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from volume_factory import coarse_pet, oblique_mri, reference_fusion

import amif_core
from amif_core.evaluation.benchmark import synthetic_pair
from amif_core.evaluation.psnr import channel_psnr, psnr
from amif_core.runtime import runner
from amif_core.inference.model import Protected
from amif_core.inference.pipeline import protect_volume, unlock_volume

NO_GPU = "needs a CUDA GPU: torch.cuda.is_available() is False here (torch " + torch.__version__ + \
    "); run benchmarks/gpu_check.py on a GPU machine"
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)]
UNLOCK_PSNR_DB = 50  # the round trip's bar everywhere in the suite


@pytest.fixture(scope="module")
def gpu_model(weights_file) -> amif_core.AMIFModel:
    """The shipped weights on cuda:0."""
    return amif_core.load_model("cuda:0", weights=weights_file)


def _pair(depth: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A (depth, size, size) synthetic MRI (scanner units) and PET pair; (size, size) when ``depth`` is 0."""
    mri, pet = synthetic_pair(max(depth, 1), size)
    return (mri[0], pet[0]) if depth == 0 else (mri, pet)


@pytest.mark.parametrize("depth", [0, 5])
def test_protect_and_unlock_on_the_gpu(gpu_model: amif_core.AMIFModel, depth: int) -> None:
    mri, pet = _pair(depth)
    protected = gpu_model.protect(mri, pet, batch_size=2)
    assert protected.image.shape == mri.shape and protected.image.dtype == np.float32
    unlocked = gpu_model.unlock(protected.image, protected.key, batch_size=2)
    assert psnr(unlocked, gpu_model.fuse_clean(mri, pet)) >= UNLOCK_PSNR_DB
    assert not np.array_equal(protected.image, unlocked)  # the identifier was there and is gone


def test_a_volume_protects_and_unlocks_on_the_gpu(gpu_model: amif_core.AMIFModel) -> None:
    mri, pet = oblique_mri(), coarse_pet()
    protected, key = protect_volume(gpu_model, mri, pet, notice=lambda text: None, batch_size=4)
    unlocked = unlock_volume(gpu_model, protected, key, batch_size=4)
    assert unlocked.GetSize() == mri.GetSize()
    assert psnr(sitk.GetArrayViewFromImage(unlocked), reference_fusion(gpu_model, mri, pet, key.axis)) \
        >= UNLOCK_PSNR_DB


def test_colour_protects_and_unlocks_on_the_gpu(gpu_model: amif_core.AMIFModel) -> None:
    mri, pet = oblique_mri(), coarse_pet()
    protected, key = protect_volume(gpu_model, mri, pet, colour_table="pet", notice=lambda text: None)
    assert protected.GetPixelID() == sitk.sitkVectorUInt8
    unlocked = sitk.GetArrayFromImage(unlock_volume(gpu_model, protected, key))
    assert channel_psnr(unlocked, reference_fusion(gpu_model, mri, pet, key.axis, colour_table="pet")) \
        >= UNLOCK_PSNR_DB


@pytest.mark.parametrize("made_on", ["gpu", "cpu"])
def test_a_key_made_on_one_device_unlocks_on_the_other(gpu_model: amif_core.AMIFModel, model: amif_core.AMIFModel,
                                                       made_on: str) -> None:
    """The GPU's key unlocks on the CPU and the CPU's on the GPU, to the fusion of either device."""
    maker, unlocker = (gpu_model, model) if made_on == "gpu" else (model, gpu_model)
    mri, pet = oblique_mri(), coarse_pet()
    protected, key = protect_volume(maker, mri, pet, notice=lambda text: None)
    unlocked = sitk.GetArrayFromImage(unlock_volume(unlocker, protected, key))
    for fusing in (maker, unlocker):
        assert psnr(unlocked, reference_fusion(fusing, mri, pet, key.axis)) >= UNLOCK_PSNR_DB


@pytest.fixture
def capped_gpu(gpu_model: amif_core.AMIFModel) -> Iterator[None]:
    """cuda:0 capped at the memory it holds now (the weights, in small blocks): a new block of 1 MiB or more, as
    any 256 x 256 activation needs, runs out of memory."""
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(torch.cuda.memory_reserved(0) / total, 0)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        torch.cuda.empty_cache()


def test_out_of_gpu_memory_halves_the_batch_then_runs_on_the_cpu(gpu_model: amif_core.AMIFModel,
                                                                model: amif_core.AMIFModel, capped_gpu: None) -> None:
    mri, pet = _pair(4, 256)
    models = {"cuda:0": gpu_model, "cpu": model}
    attempts: list[tuple[str, int]] = []
    notices: list[str] = []

    def run(device: str, batch: int) -> Protected:
        attempts.append((device, batch))
        return models[device].protect(mri, pet, batch_size=batch)

    protected, ran_on = runner.run_with_memory_fallback(run, runner.RunPlan("cuda:0", 4, 0, 0, cpu_batch_size=2),
                                                        notices.append)
    assert attempts == [("cuda:0", 4), ("cuda:0", 2), ("cuda:0", 1), ("cpu", 2)] and ran_on == "cpu"
    assert notices == ["GPU 0 ran out of memory with 4 slices at a time; retrying with 2.",
                       "GPU 0 ran out of memory with 2 slices at a time; retrying with 1.",
                       "GPU 0 ran out of memory even with one slice at a time; falling back to the CPU."]
    unlocked = model.unlock(protected.image, protected.key)
    assert psnr(unlocked, model.fuse_clean(mri, pet)) >= UNLOCK_PSNR_DB
