"""Honest baseline: a per-class Gaussian whose mean and variance are regressed from semantics.

Each seen class's feature mean and per-dimension log-variance are computed; two ridge
regressions (closed form, with bias) map a semantic vector to a mean and a log-variance.
Sampling draws ``mean(a) + exp(log_var(a) / 2) * z``. No iterative training, so it is the
yardstick every learned generator must beat under the same classifier and protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import torch
from torch import Tensor

from gzsl.methods.base import (
    NON_NEGATIVE,
    POSITIVE,
    CheckpointSchedule,
    Generator,
    SeenData,
    Settings,
    register,
)


@dataclass(frozen=True)
class GaussianConfig(Settings):
    """Settings of the Gaussian baseline.

    Attributes:
        ridge: L2 penalty of both regressions (on semantic vectors, bias unpenalised).
        min_variance: floor on each class's per-dimension variance before the log.
        variance_scale: multiplies the regressed variance at sampling time.
    """

    ridge: Annotated[float, NON_NEGATIVE] = 1.0
    min_variance: Annotated[float, POSITIVE] = 1e-4
    variance_scale: Annotated[float, NON_NEGATIVE] = 1.0


@register
class GaussianBaseline(Generator):
    """Per-class Gaussian with mean and log-variance ridge-regressed from semantics."""

    name = "gaussian"
    Config = GaussianConfig

    def fit(self, data: SeenData, *, rng: torch.Generator,
            schedule: CheckpointSchedule | None = None,
            resume: dict[str, Any] | None = None) -> GaussianBaseline:
        if resume is not None:  # its only checkpoint is the end of training
            self._resume_model(resume, rng, data.device)
            return self
        seen = data.seen_classes
        index = torch.searchsorted(seen, data.labels)
        means = data.class_means()
        squares = torch.zeros_like(means).index_add_(0, index, data.features ** 2)
        counts = torch.bincount(index, minlength=len(seen)).clamp_min(1).unsqueeze(1)
        variances = (squares / counts - means ** 2).clamp_min(self.config.min_variance)
        semantics = data.class_semantics[seen]
        targets = torch.cat([means, variances.log()], dim=1)
        self.weights_ = _ridge(semantics, targets, self.config.ridge)
        self.feature_dim_ = data.feature_dim
        with self._training_log(schedule, total=1, loss_names=("mean_mse",),
                                device=data.device, rng=rng, optimisers={},
                                epoch=float) as log:
            if log.due(1):  # the fit's only checkpoint: how well the means are regressed
                fitted = self._predict(semantics)
                mse = ((fitted[:, : self.feature_dim_] - means) ** 2).mean()
                log.step(1, mse.reshape(1), iteration=1)
        return self

    def total_iterations(self, n_train: int) -> int:
        return 1

    def _predict(self, semantics: Tensor) -> Tensor:
        ones = torch.ones(len(semantics), 1, device=semantics.device, dtype=semantics.dtype)
        return torch.cat([semantics, ones], dim=1) @ self.weights_

    def sample(self, semantics: Tensor, n_per_class: int, *,
               rng: torch.Generator | None = None) -> Tensor:
        params = self._predict(semantics.to(self.weights_.device))
        mean, log_var = params[:, : self.feature_dim_], params[:, self.feature_dim_:]
        std = (log_var.exp() * self.config.variance_scale).sqrt()
        noise = torch.randn(len(semantics), n_per_class, self.feature_dim_,
                            generator=rng, device=self.weights_.device)
        return (mean.unsqueeze(1) + std.unsqueeze(1) * noise).reshape(-1, self.feature_dim_)

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.weights_, "feature_dim": self.feature_dim_}

    def load_state_dict(self, state: dict[str, Any],
                        device: torch.device | str = "cpu") -> GaussianBaseline:
        self.weights_ = state["weights"].to(device)
        self.feature_dim_ = int(state["feature_dim"])
        return self


def _ridge(inputs: Tensor, targets: Tensor, penalty: float) -> Tensor:
    """Closed-form ridge regression with an unpenalised bias column; ``(A + 1, T)`` weights."""
    ones = torch.ones(len(inputs), 1, device=inputs.device, dtype=inputs.dtype)
    design = torch.cat([inputs, ones], dim=1).double()
    reg = torch.eye(design.shape[1], device=inputs.device, dtype=torch.float64) * penalty
    reg[-1, -1] = 0.0
    solution = torch.linalg.solve(design.T @ design + reg, design.T @ targets.double())
    return solution.to(inputs.dtype)
