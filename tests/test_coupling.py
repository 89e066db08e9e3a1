"""C-SAMIC and the released image: exact inverse, and nothing of the covered content in the released image."""
from __future__ import annotations

import pytest
import torch

import amif_core
from amif_core.networks.amif import AMIFNet
from amif_core.networks.csamic import CSAMIC, CouplingConfig, key_support
from amif_core.networks.wavelet import haar_dwt, haar_idwt


def _randomised(net: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed)
    for parameter in net.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    return net.eval()


def _masks(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=generator) < 0.2).float()


def test_key_flow_inverts_to_1e5_with_random_weights() -> None:
    flow = _randomised(CSAMIC(CouplingConfig()))
    generator = torch.Generator().manual_seed(2)
    support = key_support(_masks((2, 1, 64, 80), 3))
    y1 = torch.rand(2, 4, 32, 40, generator=generator)
    x2 = support * torch.randn(2, 4, 32, 40, generator=generator)
    with torch.no_grad():
        y2, log_det = flow(y1, x2, support)
        restored = flow.inverse(y1, y2, support)
    assert (y2 - x2).abs().max() > 1e-2, "random weights must actually transform the key"
    assert (restored - x2).abs().max() < 1e-5
    assert torch.equal(y2 * (1 - support), torch.zeros_like(y2)), "the key is zero off its support"
    assert log_det.shape == (2,) and torch.isfinite(log_det).all()


def test_haar_round_trip_and_band_layout() -> None:
    x = torch.rand(3, 1, 10, 14)
    bands = haar_dwt(x)
    assert bands.shape == (3, 4, 5, 7)
    assert torch.allclose(bands[:, 0], (x[:, 0, ::2, ::2] + x[:, 0, 1::2, ::2] + x[:, 0, ::2, 1::2]
                                        + x[:, 0, 1::2, 1::2]) / 2, atol=1e-6)
    assert (haar_idwt(bands) - x).abs().max() < 1e-6


def _nets(model: amif_core.AMIFModel) -> list[AMIFNet]:
    return [model.net.cpu(), _randomised(AMIFNet(), seed=4)]


@pytest.mark.parametrize("which", ["shipped", "random"])
def test_released_image_does_not_change_when_the_covered_content_does(model: amif_core.AMIFModel, which: str) -> None:
    """Change f under the strokes only (random values, then another slice's content): p stays bit-identical."""
    net = _nets(model)[0 if which == "shipped" else 1]
    generator = torch.Generator().manual_seed(5)
    f = torch.rand(2, 1, 64, 64, generator=generator)
    other_slice = f.flip(0).roll(17, dims=-1)
    mask = _masks(f.shape, 6)
    variants = [torch.where(mask > 0, torch.rand(f.shape, generator=generator), f),
                torch.where(mask > 0, other_slice, f)]
    with torch.no_grad():
        released, key, ink = net.protect(f, mask)
        for changed in variants:
            again, other_key, other_ink = net.protect(changed, mask)
            assert torch.equal(again, released) and torch.equal(other_ink, ink)
            assert not torch.equal(other_key, key), "the covered content goes into the key instead"
        assert torch.equal(released[mask == 0], f[mask == 0]), "outside the strokes p is f, bit for bit"
        assert torch.equal(released[mask > 0], ink[mask > 0])


def test_ink_has_no_gradient_from_the_pixels_it_covers(model: amif_core.AMIFModel) -> None:
    net = model.net.cpu()
    f = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(7)).requires_grad_(True)
    mask = _masks(f.shape, 8)
    released, _, _ = net.protect(f, mask)
    released.sum().backward()
    assert torch.count_nonzero(f.grad[mask > 0]) == 0
    assert torch.count_nonzero(f.grad[mask == 0]) > 0


def test_unlock_is_exact_on_random_weights_and_padding() -> None:
    net = _randomised(AMIFNet(), seed=9)
    f = torch.rand(2, 1, 48, 64, generator=torch.Generator().manual_seed(10))
    mask = _masks(f.shape, 11)
    with torch.no_grad():
        released, key, _ = net.protect(f, mask)
        restored = net.unlock(released, key, mask)
    assert (restored - f).abs().max() < 1e-5
