"""ActNorm: data-dependent initialisation, exact inverse, log-determinant, saved init flag."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from gzsl.nn.actnorm import ActNorm


def _batch(n: int = 64, dim: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scales = torch.linspace(0.1, 5.0, dim, dtype=torch.float64)
    return 3.0 + scales * torch.randn(n, dim, generator=g, dtype=torch.float64)


def test_first_batch_leaves_with_zero_mean_and_unit_variance() -> None:
    layer = ActNorm(5).double()
    x = _batch()
    y = layer(x)
    assert layer.is_initialised and bool(layer.initialised)
    torch.testing.assert_close(y.mean(0), torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(y.var(0, unbiased=False), torch.ones(5, dtype=torch.float64))


def test_later_batches_do_not_reinitialise() -> None:
    layer = ActNorm(5).double()
    layer(_batch(seed=0))
    scale, bias = layer.log_scale.detach().clone(), layer.bias.detach().clone()
    other = 10 * _batch(seed=1)
    y = layer(other)
    torch.testing.assert_close(layer.log_scale.detach(), scale)
    torch.testing.assert_close(layer.bias.detach(), bias)
    assert y.var(0).min() > 10


def test_inverse_is_exact_in_float64() -> None:
    layer = ActNorm(5).double()
    layer(_batch(seed=0))
    x = _batch(seed=3)
    torch.testing.assert_close(layer.inverse(layer(x)), x, atol=1e-12, rtol=0)


def test_log_det_matches_autograd_jacobian() -> None:
    layer = ActNorm(4).double()
    layer(_batch(dim=4))
    with torch.no_grad():
        layer.log_scale.add_(torch.tensor([0.3, -1.2, 0.0, 2.0], dtype=torch.float64))
    point = _batch(n=1, dim=4, seed=7)[0]
    matrix = jacobian(lambda v: layer(v.unsqueeze(0)).squeeze(0), point)
    torch.testing.assert_close(layer.log_det(), torch.linalg.slogdet(matrix).logabsdet)


def test_initialised_flag_survives_state_dict_round_trip() -> None:
    layer = ActNorm(5).double()
    layer(_batch(seed=0))
    restored = ActNorm(5).double()
    restored.load_state_dict(layer.state_dict())
    assert restored.is_initialised
    x = 10 * _batch(seed=2)
    torch.testing.assert_close(restored(x), layer(x))


def test_constant_dimension_gets_a_finite_scale() -> None:
    x = _batch()
    x[:, 2] = 0.5
    layer = ActNorm(5, min_std=1e-3).double()
    y = layer(x)
    assert torch.isfinite(y).all()
    assert layer.log_scale[2].item() == pytest.approx(math.log(1e3))
