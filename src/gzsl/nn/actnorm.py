"""ActNorm: a per-dimension affine map with data-dependent initialisation (Glow).

VAE-cFlow (Eq. 4) writes it ``y = s * x + b`` with inverse ``x = (y - b) / s``. The scale
is stored as its logarithm, ``s = exp(log_scale)``, so it stays positive and invertible
and the log-determinant of the Jacobian is simply ``sum(log_scale)`` for every sample.

The first batch the layer sees in :meth:`ActNorm.forward` sets ``b`` and ``s`` so that
this batch leaves with zero mean and unit variance per dimension; afterwards both are
ordinary learned parameters. Whether that initialisation happened is saved in the state
dict (``initialised``), so a loaded layer never re-initialises on its next batch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class ActNorm(nn.Module):
    """Learned per-dimension scale and shift of ``(N, dim)`` inputs, initialised from data.

    Args:
        dim: number of feature dimensions.
        min_std: floor on the per-dimension standard deviation of the initialising batch,
            so a constant dimension gets a large but finite scale.
    """

    def __init__(self, dim: int, min_std: float = 1e-6) -> None:
        super().__init__()
        self.dim = dim
        self.min_std = min_std
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialised", torch.tensor(False))
        self._initialised = False

    @property
    def is_initialised(self) -> bool:
        return self._initialised

    @torch.no_grad()
    def initialise(self, x: Tensor) -> None:
        """Set scale and shift so that ``x`` maps to zero mean, unit variance per dimension."""
        mean = x.mean(dim=0)
        std = x.std(dim=0, unbiased=False).clamp_min(self.min_std)
        self.log_scale.copy_(-std.log())
        self.bias.copy_(-mean / std)
        self.initialised.fill_(True)
        self._initialised = True

    def forward(self, x: Tensor) -> Tensor:
        """``y = exp(log_scale) * x + bias`` (Eq. 4); initialises from ``x`` on first use."""
        if not self._initialised:
            self.initialise(x)
        return x * self.log_scale.exp() + self.bias

    def inverse(self, y: Tensor) -> Tensor:
        """``x = (y - bias) / exp(log_scale)`` (Eq. 4, right)."""
        return (y - self.bias) * (-self.log_scale).exp()

    def log_det(self) -> Tensor:
        """Log-determinant of the Jacobian, the same for every sample: ``sum(log_scale)``."""
        return self.log_scale.sum()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._initialised = bool(self.initialised)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, initialised={self._initialised}"
