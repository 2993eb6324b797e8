"""Conditional GLOW coupling: exact inverse, log-determinant, FrEIA parity, soft clamp."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from gzsl.nn.coupling import ConditionalFlow, ConditionalGlowCoupling, soft_clamp, split_sizes

CONDITION_DIM = 3


def _randomise(module: torch.nn.Module, scale: float, seed: int) -> None:
    """Non-trivial weights (far from the near-identity 0.01 init) so every term matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(scale * torch.randn(parameter.shape, generator=g,
                                                dtype=parameter.dtype))


def _inputs(n: int, dim: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, dim, generator=g, dtype=torch.float64),
            torch.randn(n, CONDITION_DIM, generator=g, dtype=torch.float64))


@pytest.mark.parametrize(("dim", "expected"), [(2, (1, 1)), (5, (2, 3)), (7, (4, 3)),
                                               (8, (4, 4)), (2048, (1024, 1024))])
def test_split_follows_freia_rounding(dim: int, expected: tuple[int, int]) -> None:
    assert split_sizes(dim) == expected


@pytest.mark.parametrize("permute", [False, True])
@pytest.mark.parametrize("dim", [5, 6, 7])
def test_flow_inverse_is_exact_in_float64_both_orders(dim: int, permute: bool) -> None:
    torch.manual_seed(0)
    flow = ConditionalFlow(dim, CONDITION_DIM, hidden_dim=16, blocks=3, permute=permute).double()
    _randomise(flow, scale=0.5, seed=dim)
    x, condition = _inputs(64, dim)
    z, log_det = flow(x, condition)
    assert (z - x).abs().max() > 0.1 and log_det.abs().max() > 0.1  # far from the identity
    # float64 round trip: float32 would leave errors near 1e-6 here.
    torch.testing.assert_close(flow.inverse(z, condition), x, rtol=1e-9, atol=1e-9)
    x_again, _ = flow(flow.inverse(x, condition), condition)
    torch.testing.assert_close(x_again, x, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dim", [5, 6, 7])
def test_block_inverse_log_det_is_minus_forward(dim: int) -> None:
    block = ConditionalGlowCoupling(dim, CONDITION_DIM, hidden_dim=16).double()
    _randomise(block, scale=0.7, seed=10 + dim)
    x, condition = _inputs(32, dim)
    v, log_det = block(x, condition)
    u, inverse_log_det = block.inverse(v, condition)
    torch.testing.assert_close(u, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(inverse_log_det, -log_det, rtol=0, atol=1e-12)


@pytest.mark.parametrize("permute", [False, True])
@pytest.mark.parametrize("dim", [4, 5, 7])
def test_log_det_matches_autograd_jacobian(dim: int, permute: bool) -> None:
    torch.manual_seed(1)
    flow = ConditionalFlow(dim, CONDITION_DIM, hidden_dim=12, blocks=2, permute=permute).double()
    _randomise(flow, scale=0.6, seed=100 + dim)
    x, condition = _inputs(4, dim, seed=2)
    with torch.no_grad():
        _, log_det = flow(x, condition)
    for row in range(len(x)):
        matrix = jacobian(lambda v, row=row: flow(v.unsqueeze(0), condition[row:row + 1])[0][0],
                          x[row])
        sign, expected = torch.linalg.slogdet(matrix)
        assert sign != 0
        assert abs(float(log_det[row]) - float(expected)) < 1e-10
    assert log_det.abs().min() > 0.05


def test_init_scale_sets_every_parameter_biases_included() -> None:
    torch.manual_seed(3)
    flow = ConditionalFlow(64, 8, hidden_dim=256, blocks=2, init_scale=0.01)
    for name, parameter in flow.named_parameters():
        assert abs(float(parameter.detach().std()) - 0.01) < 0.002, name
    torch.manual_seed(3)
    same = ConditionalFlow(64, 8, hidden_dim=256, blocks=2, init_scale=0.01)
    for a, b in zip(flow.parameters(), same.parameters(), strict=True):
        assert torch.equal(a, b)


def test_soft_clamp_bounds_log_scales() -> None:
    values = torch.tensor([-1e6, -50.0, -1.0, 0.0, 1e-3, 1.0, 50.0, 1e6], dtype=torch.float64)
    for clamp in (0.5, 1.0, 3.0):
        clamped = soft_clamp(values, clamp)
        assert clamped.abs().max() < clamp
        assert float(clamped[-1]) > 0.99 * clamp  # approaches the bound
        assert torch.all(clamped[1:] >= clamped[:-1])  # monotone
    assert abs(float(soft_clamp(torch.tensor(1e-3, dtype=torch.float64), 1.0)) - 0.636e-3) < 1e-9
    expected = 2.0 * 0.636 * math.atan(1.5 / 2.0)
    assert abs(float(soft_clamp(torch.tensor(1.5, dtype=torch.float64), 2.0)) - expected) < 1e-12


def test_block_log_det_stays_within_clamp_for_huge_weights() -> None:
    dim, clamp = 6, 0.8
    block = ConditionalGlowCoupling(dim, CONDITION_DIM, hidden_dim=16, clamp=clamp).double()
    _randomise(block, scale=50.0, seed=7)
    x, condition = _inputs(32, dim)
    v, log_det = block(x, condition)
    assert torch.isfinite(v).all()
    assert log_det.abs().max() < dim * clamp
    assert log_det.abs().max() > 0.5 * dim * clamp  # the clamp is what bounds it


@pytest.mark.parametrize("dim", [6, 7, 5])
def test_matches_freia_glow_coupling_block(dim: int) -> None:
    freia_modules = pytest.importorskip("FrEIA.modules")
    hidden = 10

    def subnet(in_dim: int, out_dim: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(in_dim, hidden), torch.nn.LeakyReLU(0.2),
                                   torch.nn.Linear(hidden, out_dim))

    reference = freia_modules.GLOWCouplingBlock([(dim,)], [(CONDITION_DIM,)],
                                                subnet_constructor=subnet, clamp=1.0).double()
    ours = ConditionalGlowCoupling(dim, CONDITION_DIM, hidden_dim=hidden, clamp=1.0).double()
    _randomise(ours, scale=0.8, seed=dim)
    assert (reference.split_len1, reference.split_len2) == (ours.first_size, ours.second_size)
    reference.subnet2.load_state_dict(ours.first_subnet.state_dict())
    reference.subnet1.load_state_dict(ours.second_subnet.state_dict())

    x, condition = _inputs(16, dim, seed=5)
    (expected,), expected_log_det = reference([x], c=[condition])
    actual, log_det = ours(x, condition)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(log_det, expected_log_det, rtol=0, atol=1e-12)
    assert log_det.abs().min() > 0.01

    (expected_inverse,), expected_inverse_log_det = reference([x], c=[condition], rev=True)
    actual_inverse, inverse_log_det = ours.inverse(x, condition)
    torch.testing.assert_close(actual_inverse, expected_inverse, rtol=0, atol=1e-12)
    torch.testing.assert_close(inverse_log_det, expected_inverse_log_det, rtol=0, atol=1e-12)
