"""The final softmax classifier trained on real seen + synthetic unseen features.

One linear layer + log-softmax, NLL loss, Adam with betas (0.5, 0.999), xavier-normal
weights and zero bias (SPEC, shared protocol). All data stay resident on the device;
each epoch is one random permutation sliced into batches, and an optional ``on_epoch``
hook scores the model after every epoch so the selection protocols can choose the epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class SoftmaxSettings:
    """Adam settings of the softmax classifier."""

    lr: float = 1e-3
    beta1: float = 0.5
    batch_size: int = 256
    epochs: int = 30


class SoftmaxClassifier:
    """Linear + log-softmax over a fixed list of global class ids.

    Args:
        classes: ``(K,)`` sorted global class ids; column ``j`` of the scores is class
            ``classes[j]``.
        feature_dim: input dimension.
        settings: optimiser settings.
    """

    def __init__(self, classes: Tensor, feature_dim: int,
                 settings: SoftmaxSettings | None = None) -> None:
        self.classes = classes
        self.feature_dim = feature_dim
        self.settings = settings or SoftmaxSettings()

    def fit(self, features: Tensor, labels: Tensor, *, rng: torch.Generator,
            sample_weights: Tensor | None = None,
            on_epoch: Callable[[int, SoftmaxClassifier], None] | None = None) -> SoftmaxClassifier:
        """Train on ``features`` (N, D) with global ``labels``; weights scale each sample's loss."""
        device = features.device
        self.classes = self.classes.to(device)
        targets = torch.searchsorted(self.classes, labels)
        if bool((self.classes[targets.clamp_max(len(self.classes) - 1)] != labels).any()):
            raise ValueError("labels contain classes outside the classifier's class list")
        seed = int(torch.randint(0, 2**62, (1,), generator=rng, device=rng.device))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.linear_ = nn.Linear(self.feature_dim, len(self.classes)).to(device)
            nn.init.xavier_normal_(self.linear_.weight)
            nn.init.zeros_(self.linear_.bias)
        optimiser = torch.optim.Adam(self.linear_.parameters(), lr=self.settings.lr,
                                     betas=(self.settings.beta1, 0.999))
        n, batch = len(features), self.settings.batch_size
        for epoch in range(1, self.settings.epochs + 1):
            self.linear_.train()
            order = torch.randperm(n, generator=rng, device=rng.device).to(device)
            for start in range(0, n, batch):
                index = order[start:start + batch]
                logits = self.linear_(features[index])
                # cross_entropy = NLL of log_softmax in fewer kernels; same gradients bit for bit
                if sample_weights is None:
                    loss = F.cross_entropy(logits, targets[index])
                else:
                    losses = F.cross_entropy(logits, targets[index], reduction="none")
                    weights = sample_weights[index]
                    loss = (losses * weights).sum() / weights.sum().clamp_min(1e-12)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
            if on_epoch is not None:
                on_epoch(epoch, self)
        return self

    @torch.no_grad()
    def log_probabilities(self, features: Tensor, chunk: int = 65536) -> Tensor:
        """``(N, K)`` log-probabilities, columns in ``classes`` order."""
        self.linear_.eval()
        parts = [torch.log_softmax(self.linear_(features[i:i + chunk]), dim=1)
                 for i in range(0, len(features), chunk)]
        return torch.cat(parts) if parts else features.new_zeros(0, len(self.classes))

    def predict(self, features: Tensor) -> Tensor:
        """Global class id of the most probable class for each row."""
        return self.classes[self.log_probabilities(features).argmax(dim=1)]

    def state_dict(self) -> dict[str, Any]:
        return {"classes": self.classes.cpu(), "weight": self.linear_.weight.detach().cpu(),
                "bias": self.linear_.bias.detach().cpu()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any],
                        device: torch.device | str = "cpu") -> SoftmaxClassifier:
        weight = state["weight"]
        model = cls(state["classes"].to(device), int(weight.shape[1]))
        model.linear_ = nn.Linear(weight.shape[1], weight.shape[0]).to(device)
        with torch.no_grad():
            model.linear_.weight.copy_(weight)
            model.linear_.bias.copy_(state["bias"])
        return model
