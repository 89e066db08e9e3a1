"""The C-SAMIC coupling and the Haar transform are exactly invertible."""
from __future__ import annotations

import torch

from amif_core.networks.csamic import CSAMIC, CouplingConfig
from amif_core.transforms.wavelet import haar_dwt, haar_idwt


def _randomised(config: CouplingConfig) -> CSAMIC:
    torch.manual_seed(1)
    net = CSAMIC(config)
    for block in net.blocks:
        for subnet in (block.phi, block.rho, block.eta):
            torch.nn.init.normal_(subnet[-1].weight, std=0.05)
            torch.nn.init.normal_(subnet[-1].bias, std=0.05)
    return net.eval()


def test_coupling_stack_inverts_to_1e5_with_random_weights() -> None:
    net = _randomised(CouplingConfig())
    generator = torch.Generator().manual_seed(2)
    x1 = torch.rand(2, 4, 32, 40, generator=generator)
    x2 = torch.randn(2, 4, 32, 40, generator=generator)
    with torch.no_grad():
        y1, y2 = net(x1, x2)
        r1, r2 = net.inverse(y1, y2)
    assert (y1 - x1).abs().max() > 1e-2, "random weights must actually transform the input"
    assert (r1 - x1).abs().max() < 1e-5
    assert (r2 - x2).abs().max() < 1e-5


def test_haar_round_trip_and_band_layout() -> None:
    x = torch.rand(3, 1, 10, 14)
    bands = haar_dwt(x)
    assert bands.shape == (3, 4, 5, 7)
    assert torch.allclose(bands[:, 0], (x[:, 0, ::2, ::2] + x[:, 0, 1::2, ::2] + x[:, 0, ::2, 1::2]
                                        + x[:, 0, 1::2, 1::2]) / 2, atol=1e-6)
    assert (haar_idwt(bands) - x).abs().max() < 1e-6
