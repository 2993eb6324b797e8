"""The final softmax classifier trained on real seen + synthetic unseen features.

One linear layer + log-softmax, NLL loss, Adam with betas (0.5, 0.999), xavier-normal
weights and zero bias (SPEC, shared protocol). All data stay resident on the device;
each epoch is one random permutation sliced into batches, and an optional ``on_epoch``
hook scores the model after every epoch so the selection protocols can choose the epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: One training batch: features, target columns, per-sample loss weights (or None).
Batch = tuple[Tensor, Tensor, Tensor | None]


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
        targets = self.targets(labels)
        n, batch = len(features), self.settings.batch_size

        def batches(epoch: int) -> Iterator[Batch]:
            order = torch.randperm(n, generator=rng, device=rng.device).to(device)
            for start in range(0, n, batch):
                index = order[start:start + batch]
                yield (features[index], targets[index],
                       None if sample_weights is None else sample_weights[index])

        return self.fit_batches(batches, rng=rng, device=device, on_epoch=on_epoch)

    def targets(self, labels: Tensor) -> Tensor:
        """Column of each global label; a label outside the class list is an error."""
        targets = torch.searchsorted(self.classes, labels)
        if bool((self.classes[targets.clamp_max(len(self.classes) - 1)] != labels).any()):
            raise ValueError("labels contain classes outside the classifier's class list")
        return targets

    def fit_batches(self, batches: Callable[[int], Iterable[Batch]], *,
                    rng: torch.Generator, device: torch.device,
                    on_epoch: Callable[[int, SoftmaxClassifier], None] | None = None
                    ) -> SoftmaxClassifier:
        """Train on the batches ``batches(epoch)`` yields for each epoch (1, 2, ...).

        A batch is ``(features, targets, weights)``: rows on ``device``, their columns
        (:meth:`targets`) and per-sample loss weights or None. :meth:`fit` feeds it
        slices of tensors in memory; the streamed classifier
        (:mod:`gzsl.evaluation.streamed`) feeds it rows read and synthesised batch by
        batch. The weights are initialised from one draw of ``rng`` before the first
        batch is asked for.
        """
        self.classes = self.classes.to(device)
        seed = int(torch.randint(0, 2**62, (1,), generator=rng, device=rng.device))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.linear_ = nn.Linear(self.feature_dim, len(self.classes)).to(device)
            nn.init.xavier_normal_(self.linear_.weight)
            nn.init.zeros_(self.linear_.bias)
        optimiser = torch.optim.Adam(self.linear_.parameters(), lr=self.settings.lr,
                                     betas=(self.settings.beta1, 0.999))
        for epoch in range(1, self.settings.epochs + 1):
            self.linear_.train()
            for features, targets, weights in batches(epoch):
                logits = self.linear_(features)
                # cross_entropy = NLL of log_softmax in fewer kernels; same gradients bit for bit
                if weights is None:
                    loss = F.cross_entropy(logits, targets)
                else:
                    losses = F.cross_entropy(logits, targets, reduction="none")
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
