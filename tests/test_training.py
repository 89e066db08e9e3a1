"""A few training steps on tiny synthetic data lower both stages' losses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from amif_core.data.harvard import load_pairs
from amif_core.inference.weights import save_weights
from amif_core.networks.amif import AMIFConfig, AMIFNet
from amif_core.networks.fusion import FusionConfig
from amif_core.training.losses import fusion_loss
from amif_core.training.sampling import CropSampler
from amif_core.training.trainer import (
    ProtectLossWeights,
    TrainConfig,
    _fusion_step,
    _Stage,
    mask_pool_canvases,
    protect_losses,
    sample_masks,
    train,
)


def _synthetic_harvard(root: Path, slices: int = 6, size: int = 48) -> None:
    rng = np.random.default_rng(0)
    rows = ["pair,file,patient,slice"]
    yy, xx = np.mgrid[0:size, 0:size]
    for pair, other in (("CT-MRI", "CT"), ("PET-MRI", "PET")):
        for folder in ("MRI", other):
            (root / pair / folder).mkdir(parents=True)
        for k in range(slices):
            name = f"7{k:03d}.png"
            head = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.4 * size) ** 2)
            mri = head * (120 + 60 * np.sin(xx / (3 + k)) + rng.normal(0, 4, (size, size)))
            blob = np.exp(-((yy - 20 - k) ** 2 + (xx - 26) ** 2) / 60.0) * 255 * head
            Image.fromarray(np.clip(mri, 0, 255).astype(np.uint8)).save(root / pair / "MRI" / name)
            colour = np.stack([blob, blob * 0.5, blob * 0.2], axis=-1) if other == "PET" else blob
            Image.fromarray(np.clip(colour, 0, 255).astype(np.uint8)).save(root / pair / other / name)
            rows.append(f"{pair},{name},7,{k:03d}")
    (root / "pairs.csv").write_text("\n".join(rows) + "\n")


def _tiny_config(tmp_path: Path) -> TrainConfig:
    data = tmp_path / "harvard"
    _synthetic_harvard(data)
    small = AMIFConfig(fusion=FusionConfig(dim=8, heads=2, shared_blocks=1, decoder_blocks=1))
    return TrainConfig(data=str(data), out=str(tmp_path / "run"), crop=32, batch=4, fusion_steps=0,
                       protect_steps=0, fusion_lr=3e-3, protect_lr=3e-3, mask_pool=4, model=small)


def _eval_batch(config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = load_pairs(Path(config.data), "train")
    return torch.from_numpy(pairs.mri[:4, None]), torch.from_numpy(pairs.other[:4, None])


def _stage1_loss(net: AMIFNet, config: TrainConfig) -> float:
    mri, other = _eval_batch(config)
    w = config.fusion_weights
    with torch.no_grad():
        return fusion_loss(net.fuse(mri, other), mri, other, w.intensity, w.gradient, w.ssim, w.scd)["total"].item()


def _perturb_output_layer(net: AMIFNet, std: float) -> None:
    """Random weights in the backbone's last layer, whichever head it has."""
    layer = net.backbone.head[-1] if net.backbone.head_kind == "residual" else net.backbone.gains
    torch.nn.init.normal_(layer.weight, std=std)


def test_fusion_stage_lowers_its_loss_from_a_perturbed_start(tmp_path: Path) -> None:
    """The untrained residual head outputs the pixel-wise max exactly (a
    stationary point on this synthetic data), so the stage is started from a
    head with random output weights: 40 steps must then win back most of the gap."""
    torch.manual_seed(0)
    torch.set_num_threads(2)
    config = _tiny_config(tmp_path)
    config.model = AMIFConfig(fusion=FusionConfig(dim=8, heads=2, shared_blocks=1, decoder_blocks=1, head="residual"))
    config.fusion_steps = 40
    net = AMIFNet(config.model)
    _perturb_output_layer(net, 0.2)
    pairs = load_pairs(Path(config.data), "train")
    sampler = CropSampler(pairs, np.stack([pairs.mri, pairs.other], axis=1), config.crop)
    rng = np.random.default_rng(0)
    stage = _Stage("fusion", config, net, list(net.backbone.parameters()), config.fusion_steps, config.fusion_lr, rng)
    before = _stage1_loss(net, config)
    net.train()
    stage.run(lambda: _fusion_step(net, sampler, rng, config, torch.device("cpu")), quiet=True)
    after = _stage1_loss(net.eval(), config)
    assert after < 0.8 * before, f"fusion loss {before:.4f} -> {after:.4f}"
    assert (Path(config.out) / "fusion.ckpt").is_file()


def test_training_keeps_the_fusion_and_lowers_the_protection_loss(tmp_path: Path) -> None:
    torch.set_num_threads(2)
    config = _tiny_config(tmp_path)
    untrained = train(config, quiet=True)
    mri, other = _eval_batch(config)
    masks = torch.from_numpy(sample_masks(mask_pool_canvases(np.random.default_rng(1), 2, 48), np.random.default_rng(2), 4, 48))

    def protection_losses(net: AMIFNet) -> tuple[float, float]:
        with torch.no_grad():
            losses = protect_losses(net, net.fuse(mri, other), masks, ProtectLossWeights())
        return losses["ink"].item(), losses["likelihood"].item()

    config.fusion_steps = 40
    fusion_trained = train(config, quiet=True)
    config.protect_steps = 40
    fully_trained = train(config, quiet=True)
    untrained_loss, fusion_loss_after = _stage1_loss(untrained, config), _stage1_loss(fusion_trained, config)
    assert fusion_loss_after < 1.02 * untrained_loss, f"fusion loss {untrained_loss:.4f} -> {fusion_loss_after:.4f}"
    (ink_before, likelihood_before), (ink_after, likelihood_after) = (protection_losses(fusion_trained),
                                                                      protection_losses(fully_trained))
    assert ink_after < ink_before, f"ink contrast loss {ink_before:.4f} -> {ink_after:.4f}"
    assert likelihood_after < likelihood_before - 0.05, f"key likelihood loss {likelihood_before:.4f} -> {likelihood_after:.4f}"
    assert (Path(config.out) / "protect.ckpt").is_file()


def test_backbone_from_a_weights_file_is_kept_and_stage_1_skipped(tmp_path: Path) -> None:
    torch.set_num_threads(2)
    config = _tiny_config(tmp_path)
    source = AMIFNet(config.model)
    _perturb_output_layer(source, 0.2)
    save_weights(source, tmp_path / "source.pt", {})
    config.backbone_from = str(tmp_path / "source.pt")
    config.fusion_steps, config.protect_steps = 40, 2
    trained = train(config, quiet=True)
    for name, value in source.backbone.state_dict().items():
        assert torch.equal(trained.backbone.state_dict()[name], value), name
    assert not (Path(config.out) / "fusion.ckpt").exists() and (Path(config.out) / "protect.ckpt").is_file()


def test_the_select_head_builds_its_output_from_the_sources_within_its_bounds() -> None:
    from amif_core.networks.fusion import FusionBackbone, FusionConfig, select_fusion

    torch.manual_seed(0)
    mri, other = torch.rand(2, 1, 32, 40), torch.rand(2, 1, 32, 40)
    zero = torch.zeros(2, 2, 32, 40)
    expected = (torch.maximum(mri, other) + 0.05 * torch.sigmoid(torch.tensor(0.0)) * torch.minimum(mri, other))
    assert torch.allclose(select_fusion(mri, other, zero, 0.05, 0.0), expected.clamp(0, 1))
    wild = torch.randn(2, 2, 32, 40) * 50  # any logits: alpha stays in [0, 0.05], so f in [max, max + 0.05 min]
    fused = select_fusion(mri, other, wild, 0.05, 0.0)
    assert (fused >= torch.maximum(mri, other) - 1e-7).all()
    assert (fused <= torch.maximum(mri, other) + 0.05 * torch.minimum(mri, other) + 1e-7).all()
    net = FusionBackbone(FusionConfig(head="select", alpha_max=0.05, beta_max=0.0))
    out = net(mri, other)
    assert out.shape == mri.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    out.sum().backward()
    assert net.gains.weight.grad is not None and float(net.gains.weight.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="FusionConfig.head must be one of"):
        FusionConfig(head="mean")


def test_the_fusion_and_key_do_not_depend_on_the_cpu_thread_count() -> None:
    """oneDNN's 1x1 convolution with two output channels summed in a thread-dependent order; the gains
    are a matrix product instead, so 1 and 2 threads give the same bits and so the same key."""
    torch.manual_seed(0)
    net = AMIFNet(AMIFConfig(fusion=FusionConfig(head="select"))).to(memory_format=torch.channels_last).eval()
    with torch.no_grad():
        net.backbone.gains.weight.normal_(0.0, 1.0)  # a trained head is not the zero start
    mri, other = torch.rand(4, 1, 24, 32), torch.rand(4, 1, 24, 32)
    mask = (torch.rand(4, 1, 24, 32) > 0.8).float()
    threads, results = torch.get_num_threads(), []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            with torch.inference_mode():
                fused = net.fuse(mri, other)
                results.append((fused, net.protect(fused, mask)[1]))
    finally:
        torch.set_num_threads(threads)
    (fused_1, key_1), (fused_2, key_2) = results
    assert torch.equal(fused_1, fused_2) and torch.equal(key_1, key_2)


def test_amif_train_takes_the_fusion_head_options() -> None:
    import argparse

    from amif_core.cli.owner import _train_arguments

    parser = argparse.ArgumentParser()
    _train_arguments(parser)
    args = parser.parse_args(["--fusion-head", "select", "--alpha-max", "0.05", "--beta-max", "0"])
    assert (args.fusion_head, args.alpha_max, args.beta_max) == ("select", 0.05, 0.0)
    assert parser.parse_args([]).fusion_head == "select"  # the shipped weights' head is the default
    assert parser.parse_args(["--fusion-head", "residual"]).fusion_head == "residual"


def test_weights_written_before_the_head_choice_load_as_the_residual_head() -> None:
    from amif_core.networks.amif import AMIFConfig

    stored = {"dim": 24, "heads": 4, "shared_blocks": 2, "decoder_blocks": 2, "head_channels": 8}  # as in amif_v2.pt
    assert FusionConfig.from_dict(stored).head == "residual"
    assert FusionConfig.from_dict({**stored, "head": "select", "alpha_max": 0.05, "beta_max": 0.0}) == FusionConfig()
    assert AMIFConfig.from_dict(AMIFConfig().to_dict()) == AMIFConfig()
