"""A few training steps on tiny synthetic data lower both stages' losses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from amif_core.data.harvard import load_pairs
from amif_core.engine.training import ProtectLossWeights, TrainConfig, mask_pool_canvases, sample_masks, protect_losses, train
from amif_core.losses import fusion_loss
from amif_core.networks.amif import AMIFConfig
from amif_core.networks.fusion import FusionConfig


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


def test_training_steps_lower_the_losses(tmp_path: Path) -> None:
    torch.set_num_threads(2)
    data = tmp_path / "harvard"
    _synthetic_harvard(data)
    small = AMIFConfig(fusion=FusionConfig(dim=8, heads=2, shared_blocks=1, decoder_blocks=1))
    config = TrainConfig(data=str(data), out=str(tmp_path / "run"), crop=32, batch=4, fusion_steps=0,
                         protect_steps=0, fusion_lr=3e-3, protect_lr=3e-3, mask_pool=4, model=small)
    untrained = train(config, quiet=True)

    pairs = load_pairs(data, "train")
    mri = torch.from_numpy(pairs.mri[:4, None])
    other = torch.from_numpy(pairs.other[:4, None])
    masks = torch.from_numpy(sample_masks(mask_pool_canvases(np.random.default_rng(1), 2, 48), np.random.default_rng(2), 4, 48))

    def losses(net):
        with torch.no_grad():
            fused = net.fuse(mri, other)
            stage1 = fusion_loss(fused, mri, other)["total"].item()
            stage2 = protect_losses(net, fused, masks, ProtectLossWeights(), ("zero",), torch.Generator().manual_seed(0))
        return stage1, stage2["total"].item()

    config.fusion_steps = 40
    fusion_trained = train(config, quiet=True)
    config.protect_steps = 40
    fully_trained = train(config, quiet=True)
    untrained_loss, _ = losses(untrained)
    fusion_loss_after, protect_before = losses(fusion_trained)
    _, protect_after = losses(fully_trained)
    assert fusion_loss_after < 0.9 * untrained_loss, f"fusion loss {untrained_loss:.4f} -> {fusion_loss_after:.4f}"
    assert protect_after < 0.9 * protect_before, f"protection loss {protect_before:.4f} -> {protect_after:.4f}"
    assert (Path(config.out) / "protect.ckpt").is_file()
