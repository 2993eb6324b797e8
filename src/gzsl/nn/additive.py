"""An unconditional Glow-style flow over feature vectors: ActNorm, shuffle, additive coupling.

VAE-cFlow (Sec. 3.2, Sec. 4.1) builds its flow from ``K`` repeated steps, each

    ActNorm (Eq. 4)  ->  fixed channel shuffle  ->  additive coupling (Eq. 3).

The additive coupling splits ``x`` into ``[x_a, x_b]`` and maps ``y_a = x_a + t(x_b)``,
``y_b = x_b``; its Jacobian is unit-triangular, so its log-determinant is zero, and its
inverse ``x_a = y_a - t(y_b)`` never inverts ``t``. The shuffle is a permutation (also
log-determinant zero), so the log-determinant of the whole flow comes from the ActNorm
layers only. ``t`` is a small MLP (half -> hidden -> hidden -> other half, ReLU, ActNorm
after each hidden linear layer) whose last layer starts at zero, so every coupling starts
as the identity.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gzsl.nn.actnorm import ActNorm


class ChannelShuffle(nn.Module):
    """A fixed random permutation of the feature dimensions, reproducible from ``seed``.

    The permutation is drawn once from a CPU generator seeded with ``seed`` (so it does
    not depend on the device or on the global RNG) and stored as a buffer.
    """

    def __init__(self, dim: int, seed: int) -> None:
        super().__init__()
        self.dim = dim
        self.seed = seed
        permutation = torch.randperm(dim, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    def forward(self, x: Tensor) -> Tensor:
        return x[:, self.permutation]

    def inverse(self, y: Tensor) -> Tensor:
        return y[:, self.inverse_permutation]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, seed={self.seed}"


class AdditiveCoupling(nn.Module):
    """``y_a = x_a + t(x_b)``, ``y_b = x_b`` (Eq. 3), with ``x_a`` the first ``dim // 2`` entries.

    Args:
        dim: feature dimension (at least 2).
        hidden: width of the two hidden layers of ``t``.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"additive coupling needs at least 2 dimensions, got {dim}")
        self.split = dim // 2
        last = nn.Linear(hidden, self.split)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.translation = nn.Sequential(
            nn.Linear(dim - self.split, hidden, bias=False), ActNorm(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden, bias=False), ActNorm(hidden), nn.ReLU(),
            last,
        )

    def forward(self, x: Tensor) -> Tensor:
        x_a, x_b = x[:, : self.split], x[:, self.split:]
        return torch.cat([x_a + self.translation(x_b), x_b], dim=1)

    def inverse(self, y: Tensor) -> Tensor:
        y_a, y_b = y[:, : self.split], y[:, self.split:]
        return torch.cat([y_a - self.translation(y_b), y_b], dim=1)


class FlowStep(nn.Module):
    """One step of the flow: ActNorm, then a fixed shuffle, then an additive coupling."""

    def __init__(self, dim: int, hidden: int, seed: int) -> None:
        super().__init__()
        self.actnorm = ActNorm(dim)
        self.shuffle = ChannelShuffle(dim, seed)
        self.coupling = AdditiveCoupling(dim, hidden)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(y, log_det)`` with the per-step log-determinant (a scalar, ActNorm's)."""
        y = self.coupling(self.shuffle(self.actnorm(x)))
        return y, self.actnorm.log_det()

    def inverse(self, y: Tensor) -> Tensor:
        return self.actnorm.inverse(self.shuffle.inverse(self.coupling.inverse(y)))


class AdditiveFlow(nn.Module):
    """``K`` steps over ``(N, dim)`` vectors: ``z, log_det = flow(x)``, ``x = flow.inverse(z)``.

    Args:
        dim: feature dimension (the latent has the same dimension).
        steps: number of flow steps ``K`` (the paper uses 4).
        hidden: hidden width of each coupling's translation network (authors' code: 512).
        seed: seed of the channel shuffles; step ``k`` uses ``seed + k``.
    """

    def __init__(self, dim: int, steps: int = 4, hidden: int = 512, seed: int = 0) -> None:
        super().__init__()
        self.dim = dim
        self.steps = nn.ModuleList(FlowStep(dim, hidden, seed + k) for k in range(steps))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Map features to latents; returns ``(z, log_det)`` with ``log_det`` of shape ``(N,)``,
        the log-absolute-determinant of ``dz/dx`` for each sample (Eq. 2, second term)."""
        log_det = x.new_zeros(())
        for step in self.steps:
            x, step_log_det = step(x)
            log_det = log_det + step_log_det
        return x, log_det.expand(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        """Map latents back to features: the generator ``g = f^-1`` of Eq. 5."""
        for step in reversed(self.steps):
            z = step.inverse(z)
        return z

    @torch.no_grad()
    def initialise(self, x: Tensor) -> None:
        """Data-dependent initialisation of every ActNorm (outer and inside the couplings)."""
        self(x)

    @property
    def is_initialised(self) -> bool:
        return all(m.is_initialised for m in self.modules() if isinstance(m, ActNorm))
