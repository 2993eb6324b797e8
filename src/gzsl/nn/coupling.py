"""Conditional GLOW affine coupling blocks and a flow built from a stack of them.

GSMFlow (Sec. 3.2, Eq. 5-6) transforms a feature vector ``u`` conditioned on a vector
``c`` by splitting ``u`` into ``[u1, u2]`` and applying two affine couplings in turn::

    v1 = u1 * exp(s1([u2, c])) + t1([u2, c])
    v2 = u2 * exp(s2([v1, c])) + t2([v1, c])

Each subnet is ``Linear(half + condition -> hidden)``, ``LeakyReLU(0.2)``,
``Linear(hidden -> 2 * other half)``, whose output is ``[log-scale, shift]``. Log-scales
are soft-clamped to ``clamp * 0.636 * atan(s / clamp)`` so that ``|s| < clamp``. The split
and the layout of the subnet outputs are those of FrEIA 0.2's ``GLOWCouplingBlock``, which
the authors' code used, so weights map one to one (``tests/nn/test_coupling.py`` checks
this); no flow library is needed at run time.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: FrEIA's arctangent soft clamp constant (about 2 / pi), kept for parity with the reference.
ATAN_SCALE = 0.636


def soft_clamp(log_scale: Tensor, clamp: float) -> Tensor:
    """Bound log-scales smoothly to ``(-clamp, clamp)``: ``clamp * 0.636 * atan(s / clamp)``.

    Near zero it is close to the identity (slope 0.636), so small scales pass almost
    unchanged, while a runaway subnet can never make ``exp(s)`` explode or vanish.
    """
    return clamp * ATAN_SCALE * torch.atan(log_scale / clamp)


def split_sizes(dim: int) -> tuple[int, int]:
    """Sizes of ``[u1, u2]`` for a ``dim``-vector, as FrEIA 0.2 splits it.

    FrEIA uses ``round(dim * 0.5)`` (Python's round, halves to even), so for odd ``dim``
    the first part is sometimes the larger (7 -> 4 + 3) and sometimes the smaller
    (5 -> 2 + 3). Matching it keeps weights exchangeable with the reference.
    """
    first = round(dim * 0.5)
    return first, dim - first


def _subnet(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.LeakyReLU(0.2),
                         nn.Linear(hidden_dim, out_dim))


class ConditionalGlowCoupling(nn.Module):
    """One conditional GLOW coupling block (Eq. 5 forward, Eq. 6 inverse).

    Args:
        dim: size of the transformed vector (at least 2).
        condition_dim: size of the condition vector concatenated to each subnet input.
        hidden_dim: width of the subnets' hidden layer (2048 in the paper).
        clamp: soft-clamp bound on the log-scales (1 in the authors' code).

    ``first_subnet`` reads ``[u2, c]`` and gives ``(s1, t1)`` for ``u1``; ``second_subnet``
    reads ``[v1, c]`` and gives ``(s2, t2)`` for ``u2`` (FrEIA's ``subnet2`` and ``subnet1``).
    """

    def __init__(self, dim: int, condition_dim: int, hidden_dim: int, clamp: float = 1.0) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"a coupling block needs at least 2 dimensions, got {dim}")
        if clamp <= 0:
            raise ValueError(f"clamp must be positive, got {clamp}")
        self.dim = dim
        self.condition_dim = condition_dim
        self.clamp = float(clamp)
        self.first_size, self.second_size = split_sizes(dim)
        self.first_subnet = _subnet(self.second_size + condition_dim, hidden_dim,
                                    2 * self.first_size)
        self.second_subnet = _subnet(self.first_size + condition_dim, hidden_dim,
                                     2 * self.second_size)

    def _affine(self, subnet: nn.Module, passive: Tensor, condition: Tensor,
                size: int) -> tuple[Tensor, Tensor]:
        params = subnet(torch.cat([passive, condition], dim=1))
        return soft_clamp(params[:, :size], self.clamp), params[:, size:]

    def forward(self, u: Tensor, condition: Tensor) -> tuple[Tensor, Tensor]:
        """``(v, log|det dv/du|)`` with the log-determinant per sample, shape ``(N,)``."""
        u1, u2 = u.split([self.first_size, self.second_size], dim=1)
        s1, t1 = self._affine(self.first_subnet, u2, condition, self.first_size)
        v1 = u1 * torch.exp(s1) + t1
        s2, t2 = self._affine(self.second_subnet, v1, condition, self.second_size)
        v2 = u2 * torch.exp(s2) + t2
        return torch.cat([v1, v2], dim=1), s1.sum(dim=1) + s2.sum(dim=1)

    def inverse(self, v: Tensor, condition: Tensor) -> tuple[Tensor, Tensor]:
        """``(u, log|det du/dv|)``: Eq. 6, undoing ``forward`` exactly."""
        v1, v2 = v.split([self.first_size, self.second_size], dim=1)
        s2, t2 = self._affine(self.second_subnet, v1, condition, self.second_size)
        u2 = (v2 - t2) * torch.exp(-s2)
        s1, t1 = self._affine(self.first_subnet, u2, condition, self.first_size)
        u1 = (v1 - t1) * torch.exp(-s1)
        return torch.cat([u1, u2], dim=1), -(s1.sum(dim=1) + s2.sum(dim=1))


class ConditionalFlow(nn.Module):
    """``f = f_L o ... o f_1`` (Eq. 1): a stack of conditional GLOW coupling blocks.

    Args:
        dim: feature dimension ``D``.
        condition_dim: size of the condition (GSMFlow's global semantic vector).
        hidden_dim: subnet width.
        blocks: number of coupling blocks ``L``.
        clamp: soft-clamp bound of every block.
        permute: put a fixed random permutation of the dimensions before each block.
            Off in the authors' code; drawn from the global RNG, so build the flow inside
            :func:`gzsl.methods.base.seeded_init` to make it deterministic. Stored as
            buffers, so it is saved with the weights.
        init_scale: every parameter, biases included, starts as ``init_scale * N(0, 1)``
            (0.01 in the authors' code: each block starts close to the identity).
    """

    def __init__(self, dim: int, condition_dim: int, hidden_dim: int, blocks: int,
                 clamp: float = 1.0, permute: bool = False, init_scale: float = 0.01) -> None:
        super().__init__()
        if blocks < 1:
            raise ValueError(f"a flow needs at least one coupling block, got {blocks}")
        self.dim = dim
        self.condition_dim = condition_dim
        self.blocks = nn.ModuleList(
            ConditionalGlowCoupling(dim, condition_dim, hidden_dim, clamp) for _ in range(blocks))
        self.permute = permute
        if permute:
            orders = torch.stack([torch.randperm(dim) for _ in range(blocks)])
            self.register_buffer("permutations", orders)
            self.register_buffer("inverse_permutations", torch.argsort(orders, dim=1))
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.normal_(0.0, 1.0).mul_(init_scale)

    def forward(self, x: Tensor, condition: Tensor) -> tuple[Tensor, Tensor]:
        """Inference direction ``z = f(x; c)``; returns ``(z, log|det df/dx|)`` per sample."""
        log_det = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for index, block in enumerate(self.blocks):
            if self.permute:
                x = x[:, self.permutations[index]]
            x, block_log_det = block(x, condition)
            log_det = log_det + block_log_det
        return x, log_det

    def inverse(self, z: Tensor, condition: Tensor) -> Tensor:
        """Generation direction ``x = g(z; c) = f^-1(z; c)`` (Eq. 2)."""
        for index in reversed(range(len(self.blocks))):
            z, _ = self.blocks[index].inverse(z, condition)
            if self.permute:
                z = z[:, self.inverse_permutations[index]]
        return z
