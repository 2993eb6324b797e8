"""Channel shuffle, additive coupling and the K-step flow: inverses, log-determinants, seeds."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from gzsl.nn.actnorm import ActNorm
from gzsl.nn.additive import AdditiveCoupling, AdditiveFlow, ChannelShuffle


def _batch(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 1.0 + 2.0 * torch.rand(n, dim, generator=g, dtype=torch.float64)


def _randomise(module: torch.nn.Module, seed: int = 1, scale: float = 0.3) -> None:
    """Move every parameter off its initial value (the couplings start as the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=g,
                                               dtype=parameter.dtype))


def _initialised_flow(dim: int, steps: int = 4, hidden: int = 6) -> AdditiveFlow:
    flow = AdditiveFlow(dim, steps=steps, hidden=hidden, seed=11).double()
    flow.initialise(_batch(64, dim))
    _randomise(flow)
    return flow


def test_shuffle_is_a_fixed_permutation_reproducible_from_its_seed() -> None:
    first = ChannelShuffle(20, seed=5)
    torch.manual_seed(123)
    torch.rand(7)
    second = ChannelShuffle(20, seed=5)
    assert torch.equal(first.permutation, second.permutation)
    assert torch.equal(first.permutation.sort().values, torch.arange(20))
    assert not torch.equal(first.permutation, torch.arange(20))
    assert not torch.equal(first.permutation, ChannelShuffle(20, seed=6).permutation)
    x = _batch(3, 20)
    y = first(x)
    assert torch.equal(y, x[:, first.permutation])
    assert torch.equal(first(x), first(x))
    assert torch.equal(first.inverse(y), x)


def test_coupling_starts_as_identity_and_changes_only_the_first_half() -> None:
    coupling = AdditiveCoupling(7, hidden=5).double()
    x = _batch(16, 7)
    assert torch.equal(coupling(x), x)
    _randomise(coupling)
    y = coupling(x)
    assert torch.equal(y[:, 3:], x[:, 3:])
    torch.testing.assert_close(y[:, :3] - x[:, :3], coupling.translation(x[:, 3:]))
    assert (y[:, :3] - x[:, :3]).abs().max() > 1e-3


def test_coupling_has_unit_jacobian_determinant() -> None:
    coupling = AdditiveCoupling(5, hidden=4).double()
    coupling(_batch(32, 5))
    _randomise(coupling)
    matrix = jacobian(lambda v: coupling(v.unsqueeze(0)).squeeze(0), _batch(1, 5, seed=2)[0])
    torch.testing.assert_close(torch.linalg.det(matrix), torch.tensor(1.0, dtype=torch.float64))


def test_translation_network_has_actnorm_and_zero_initialised_last_layer() -> None:
    coupling = AdditiveCoupling(8, hidden=6)
    layers = list(coupling.translation)
    assert sum(isinstance(layer, ActNorm) for layer in layers) == 2
    widths = [layer.out_features for layer in layers if isinstance(layer, torch.nn.Linear)]
    assert widths == [6, 6, 4]
    assert layers[-1].weight.abs().sum() == 0 and layers[-1].bias.abs().sum() == 0


@pytest.mark.parametrize("dim", [6, 7])
def test_flow_inverse_is_exact_in_float64(dim: int) -> None:
    flow = _initialised_flow(dim)
    x = _batch(40, dim, seed=3)
    z, _ = flow(x)
    assert (z - x).abs().max() > 0.1
    torch.testing.assert_close(flow.inverse(z), x, atol=1e-10, rtol=0)
    z_back, _ = flow(flow.inverse(z))
    torch.testing.assert_close(z_back, z, atol=1e-10, rtol=0)


@pytest.mark.parametrize("dim", [4, 5])
def test_flow_log_det_matches_autograd_jacobian(dim: int) -> None:
    flow = _initialised_flow(dim, steps=3)
    x = _batch(3, dim, seed=4)
    _, log_det = flow(x)
    assert log_det.shape == (3,)
    for i in range(3):
        matrix = jacobian(lambda v: flow(v.unsqueeze(0))[0].squeeze(0), x[i])
        torch.testing.assert_close(log_det[i], torch.linalg.slogdet(matrix).logabsdet)


def test_initialise_sets_every_actnorm_and_standardises_the_batch() -> None:
    flow = AdditiveFlow(6, steps=4, hidden=5, seed=0).double()
    assert not flow.is_initialised
    x = 3 + 4 * _batch(128, 6)
    flow.initialise(x)
    assert flow.is_initialised
    assert sum(isinstance(m, ActNorm) for m in flow.modules()) == 4 * 3
    z, _ = flow(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(6, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(z.var(0, unbiased=False), torch.ones(6, dtype=torch.float64))


def test_flow_shuffles_are_seeded_per_step() -> None:
    flow = AdditiveFlow(12, steps=3, hidden=4, seed=20)
    again = AdditiveFlow(12, steps=3, hidden=4, seed=20)
    permutations = [step.shuffle.permutation for step in flow.steps]
    assert all(torch.equal(p, step.shuffle.permutation)
               for p, step in zip(permutations, again.steps, strict=True))
    assert not torch.equal(permutations[0], permutations[1])
