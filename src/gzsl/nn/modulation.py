"""AMAZ's network blocks: FBD / FDL blocks, the attribute-modulated generator and its modulator.

The supplement of AMAZ (Li et al., arXiv 2104.10857, Sec. I) builds every module from two
blocks: FBD(n) = Linear(n) -> BatchNorm(0.8) -> Dropout(0.5), and FDL(n) = Linear(n) ->
Dropout(0.5) -> LeakyReLU(0.2). The generator's intermediate outputs, its input ``(z, a)``
included, are each modulated (Eq. 3) by parameters that the attribute modulators compute
from a task embedding (Eq. 1-2).

Every ``forward`` takes an optional ``rng``: dropout masks are then drawn from that
``torch.Generator`` (on the input's device), so a training run is reproducible from its seed
without touching the global random state. Without one, dropout falls back to
:func:`torch.nn.functional.dropout`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: One modulated layer's ``(w, b)``, each ``(rows, width)``.
Modulation = tuple[Tensor, Tensor]


def dropout(inputs: Tensor, probability: float, training: bool,
            rng: torch.Generator | None = None) -> Tensor:
    """Inverted dropout whose mask is drawn from ``rng`` when one is given."""
    if not training or probability == 0.0:
        return inputs
    if rng is None:
        return F.dropout(inputs, probability, training=True)
    keep = torch.rand(inputs.shape, generator=rng, device=inputs.device,
                      dtype=inputs.dtype) >= probability
    return inputs * keep / (1.0 - probability)


def modulate(outputs: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Eq. 3: ``o' = (1 + sigmoid(w)) * o + sigmoid(b)``; ``w`` and ``b`` broadcast over ``o``."""
    return (1.0 + torch.sigmoid(weight)) * outputs + torch.sigmoid(bias)


class FDLBlock(nn.Module):
    """FDL(n): fully connected layer, dropout, LeakyReLU (supplement, Fig. 1b)."""

    def __init__(self, in_features: int, out_features: int, *, dropout: float = 0.5,
                 leaky_slope: float = 0.2) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.dropout = dropout
        self.leaky_slope = leaky_slope

    def forward(self, inputs: Tensor, rng: torch.Generator | None = None) -> Tensor:
        hidden = dropout(self.linear(inputs), self.dropout, self.training, rng)
        return F.leaky_relu(hidden, self.leaky_slope)


class BatchNorm(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` written with plain tensor operations.

    Same parameters, buffers and results as the fused kernel, but every derivative order is
    exact: AMAZ's meta-gradient differentiates gradients of gradients (the generator's
    inner step depends on the modulator's inner step), and the fused batch-norm backward
    gives wrong third derivatives.
    """

    def forward(self, inputs: Tensor) -> Tensor:
        if self.training:
            mean = inputs.mean(dim=0)
            variance = inputs.var(dim=0, unbiased=False)
            with torch.no_grad():
                momentum = self.momentum if self.momentum is not None else 0.1
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(inputs.detach().var(dim=0, unbiased=True), momentum)
                self.num_batches_tracked.add_(1)
        else:
            mean, variance = self.running_mean, self.running_var
        return (inputs - mean) * torch.rsqrt(variance + self.eps) * self.weight + self.bias


class FBDBlock(nn.Module):
    """FBD(n): fully connected layer, batch normalisation, dropout (supplement, Fig. 1a).

    The supplement's "BatchNorm(0.8)" is read as ``nn.BatchNorm1d(n, 0.8)``, whose second
    positional argument is ``eps`` (docs/methods/amaz.md discusses the reading).
    """

    def __init__(self, in_features: int, out_features: int, *, dropout: float = 0.5,
                 batch_norm_eps: float = 0.8) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.norm = BatchNorm(out_features, eps=batch_norm_eps)
        self.dropout = dropout

    def forward(self, inputs: Tensor, rng: torch.Generator | None = None) -> Tensor:
        return dropout(self.norm(self.linear(inputs)), self.dropout, self.training, rng)


#: Activations of the generator's output (after its modulation).
OUTPUT_ACTIVATIONS = {"none": lambda outputs: outputs, "relu": F.relu, "sigmoid": torch.sigmoid}


class ModulatedGenerator(nn.Module):
    """Generator G (supplement, Fig. 2): FDL(h), FBD(h), FBD(h), LeakyReLU, FC(D).

    Five outputs are modulated (Eq. 3): the input ``o_0 = (z, a)``, the three blocks' outputs
    and the last fully connected layer's output, which is the synthetic feature after an
    optional ``output_activation`` (``"none"``, the supplement's; ``"relu"``; ``"sigmoid"``).
    """

    def __init__(self, noise_dim: int, semantic_dim: int, hidden: int, feature_dim: int, *,
                 dropout: float = 0.5, batch_norm_eps: float = 0.8,
                 leaky_slope: float = 0.2, output_activation: str = "none") -> None:
        super().__init__()
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"unknown output_activation {output_activation!r}; expected one "
                             f"of {sorted(OUTPUT_ACTIVATIONS)}")
        self.output_activation = output_activation
        self.input_dim = noise_dim + semantic_dim
        self.hidden = hidden
        self.feature_dim = feature_dim
        self.leaky_slope = leaky_slope
        self.blocks = nn.ModuleList([
            FDLBlock(self.input_dim, hidden, dropout=dropout, leaky_slope=leaky_slope),
            FBDBlock(hidden, hidden, dropout=dropout, batch_norm_eps=batch_norm_eps),
            FBDBlock(hidden, hidden, dropout=dropout, batch_norm_eps=batch_norm_eps),
        ])
        self.output = nn.Linear(hidden, feature_dim)

    @property
    def modulated_widths(self) -> tuple[int, ...]:
        """Widths of the modulated outputs, in order: input, three blocks, output layer."""
        return (self.input_dim, self.hidden, self.hidden, self.hidden, self.feature_dim)

    def forward(self, noise: Tensor, attributes: Tensor, modulation: Sequence[Modulation],
                rng: torch.Generator | None = None) -> Tensor:
        """Synthetic features ``(rows, D)`` from ``noise`` and ``attributes`` rows.

        ``modulation`` holds one ``(w, b)`` per modulated output (see
        :attr:`modulated_widths`), each with one row per input row.
        """
        hidden = modulate(torch.cat([noise, attributes], dim=1), *modulation[0])
        for block, (weight, bias) in zip(self.blocks, modulation[1:4], strict=True):
            hidden = modulate(block(hidden, rng), weight, bias)
        hidden = F.leaky_relu(hidden, self.leaky_slope)
        outputs = modulate(self.output(hidden), *modulation[4])
        return OUTPUT_ACTIVATIONS[self.output_activation](outputs)


class AttributeModulation(nn.Module):
    """The modulation network: attribute projector AP (Eq. 1) and modulators AM (Eq. 2).

    AP is one FDL block applied to each class attribute of a task; the task embedding is
    the mean over the task's classes, so it does not depend on their order and a single
    class replicated N times (the paper's inference, Sec. II-E) embeds like the class
    alone. Each modulator ``j`` is a pair of linear layers (the supplement's FC pairs)
    giving ``w_j`` and ``b_j`` for the generator's ``j``-th modulated output.
    """

    def __init__(self, semantic_dim: int, embedding_dim: int, widths: Sequence[int], *,
                 dropout: float = 0.5, leaky_slope: float = 0.2) -> None:
        super().__init__()
        self.projector = FDLBlock(semantic_dim, embedding_dim, dropout=dropout,
                                  leaky_slope=leaky_slope)
        self.weight_heads = nn.ModuleList(nn.Linear(embedding_dim, w) for w in widths)
        self.bias_heads = nn.ModuleList(nn.Linear(embedding_dim, w) for w in widths)

    def task_embedding(self, task_attributes: Tensor,
                       rng: torch.Generator | None = None) -> Tensor:
        """Eq. 1: ``(T, E)`` embeddings of ``T`` tasks from their ``(T, N, A)`` attributes."""
        tasks, ways, dim = task_attributes.shape
        projected = self.projector(task_attributes.reshape(tasks * ways, dim), rng)
        return projected.reshape(tasks, ways, -1).mean(dim=1)

    def forward(self, task_attributes: Tensor,
                rng: torch.Generator | None = None) -> list[Modulation]:
        """Eq. 1-2: one ``(w, b)`` pair per modulated layer, each ``(T, width)``."""
        embedding = self.task_embedding(task_attributes, rng)
        return [(w(embedding), b(embedding))
                for w, b in zip(self.weight_heads, self.bias_heads, strict=True)]


class FDLStack(nn.Module):
    """FDL blocks followed by one fully connected output layer.

    Builds the classifier C (FDL(512), FDL(512), FC), the attribute discriminator AD
    (FDL(1024), FDL(512), FC) of the supplement's Fig. 3, with ``outputs`` the number of
    classes or the attribute dimension.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], outputs: int, *,
                 dropout: float = 0.5, leaky_slope: float = 0.2) -> None:
        super().__init__()
        widths = [in_features, *hidden]
        self.blocks = nn.ModuleList(
            FDLBlock(a, b, dropout=dropout, leaky_slope=leaky_slope)
            for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.output = nn.Linear(widths[-1], outputs)

    def forward(self, inputs: Tensor, rng: torch.Generator | None = None) -> Tensor:
        hidden = inputs
        for block in self.blocks:
            hidden = block(hidden, rng)
        return self.output(hidden)


class Critic(nn.Module):
    """Discriminator D (supplement, Fig. 4) on a feature and its attribute: a WGAN critic.

    FDL(h1) -> FC(h1) -> Dropout -> FDL(h2) -> FC(1); the last layer reads the ``h2``
    features and gives one unbounded score per row (Eq. 6).
    """

    def __init__(self, feature_dim: int, semantic_dim: int, hidden: tuple[int, int], *,
                 dropout: float = 0.5, leaky_slope: float = 0.2) -> None:
        super().__init__()
        first, second = hidden
        self.first = FDLBlock(feature_dim + semantic_dim, first, dropout=dropout,
                              leaky_slope=leaky_slope)
        self.middle = nn.Linear(first, first)
        self.second = FDLBlock(first, second, dropout=dropout, leaky_slope=leaky_slope)
        self.output = nn.Linear(second, 1)
        self.dropout = dropout

    def forward(self, features: Tensor, attributes: Tensor,
                rng: torch.Generator | None = None) -> Tensor:
        """``(rows,)`` critic scores, high for real pairs."""
        hidden = self.first(torch.cat([features, attributes], dim=1), rng)
        hidden = dropout(self.middle(hidden), self.dropout, self.training, rng)
        return self.output(self.second(hidden, rng)).squeeze(1)
