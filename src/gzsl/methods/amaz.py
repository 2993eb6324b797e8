"""AMAZ: attribute-modulated generative meta-learning for zero-shot learning.

Li, Liu, Yao, Chang, "Attribute-Modulated Generative Meta Learning for Zero-Shot
Learning" (arXiv 2104.10857). No public code exists; this follows the paper and its
supplement (docs/methods/amaz.md maps every equation to code and lists the choices made
where the paper is silent).

A WGAN generator G is modulated layer by layer (Eq. 3) by parameters computed from a task's
class attributes (attribute projector AP, Eq. 1, and modulators AM, Eq. 2). A critic D
(Eq. 6), an auxiliary classifier C and an attribute discriminator AD that reconstructs the
attribute from a synthetic feature (Eq. 4-5) train it. Training is episodic meta-learning
(Algorithm 1): each iteration draws a batch of tasks, each with an N-way K-shot support set
and an N-way query set of other seen classes; one inner gradient step on the support sets
adapts D (ascent on Eq. 6), then AP/AM/AD (Eq. 5), then G and C (Eq. 7) (Eq. 9-10); the
query losses at the adapted parameters, differentiated through the inner step, update the
meta-parameters with Adam (Eq. 11). As in the paper (Sec. II-D, after ZSML), the inner step
is taken once per batch of tasks, not once per task.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from tqdm import tqdm

from gzsl.data.errors import GZSLError
from gzsl.methods.base import (
    Checkpoint,
    CheckpointSchedule,
    Generator,
    SeenData,
    register,
    seeded_init,
)
from gzsl.nn.modulation import AttributeModulation, Critic, FDLStack, ModulatedGenerator

#: Parameter groups of Algorithm 1: theta_d, theta_am = {AP, AM, AD}, theta_gc = {G, C}.
PARAMETER_GROUPS: dict[str, tuple[str, ...]] = {
    "critic": ("critic",),
    "modulation": ("modulation", "attribute_discriminator"),
    "generator": ("generator", "classifier"),
}

#: Query-set losses reported at checkpoints (means since the previous checkpoint).
LOSS_NAMES = ("critic", "adversarial", "attribute", "classification", "generator")


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


@dataclass(frozen=True)
class AMAZConfig:
    """Settings of AMAZ; defaults are the paper's (Sec. III-A and the supplement).

    Widths are multiples of the feature dimension D, so the paper's sizes for 2048-d
    ResNet-101 features (generator and projector 2048, classifier 512-512, attribute
    discriminator 1024-512, critic 1024-512) scale to other feature sizes.

    Attributes:
        iterations: meta-iterations (one batch of tasks each); the paper's "epoch number",
            15000 for AWA1 / AWA2 and 25000 for SUN / CUB.
        n_way: classes per support task and per query task (10); reduced, with a
            warning, when the seen classes cannot fill two disjoint sets of ``n_way``.
        support_shots: images per class in a support task (5).
        query_shots: images per class in a query task (3).
        tasks_per_batch: tasks per meta-iteration (10).
        critic_inner_lr: alpha_1, inner ascent step of the critic on Eq. 6.
        modulation_inner_lr: alpha_2, inner step of AP, AM and AD on Eq. 5.
        generator_inner_lr: alpha_3, inner step of G and C on Eq. 7.
        critic_lr: beta_1, outer Adam learning rate of the critic.
        modulation_lr: beta_2, outer Adam learning rate of AP, AM and AD.
        generator_lr: beta_3, outer Adam learning rate of G and C.
        adam_betas: Adam's betas for the outer updates (the paper names Adam only).
        critic_clip: after each outer step the critic's weights are clipped to
            ``[-critic_clip, critic_clip]`` (the WGAN Lipschitz constraint; the paper names
            none, and without one the critic of Eq. 6 diverges); ``None`` disables it.
        train_noise_std: sigma of the generator noise during training (0.1).
        sample_noise_std: sigma of the generator noise when synthesising (1.0).
        noise_dim: noise dimension; ``None`` uses the semantic dimension.
        generator_width: hidden width of G as a multiple of D (2048 / 2048).
        embedding_width: width of AP's task embedding as a multiple of D (2048 / 2048).
        classifier_widths: FDL widths of C as multiples of D (512, 512 of 2048).
        attribute_discriminator_widths: FDL widths of AD as multiples of D (1024, 512).
        critic_widths: widths of D as multiples of D (1024, 512).
        dropout: dropout probability of every FBD / FDL block (0.5).
        batch_norm_eps: the supplement's "BatchNorm(0.8)", read as ``eps``.
        leaky_slope: LeakyReLU slope (0.2 in the supplement's figures).
        attribute_weight: weight of L_AD inside L_GC (Eq. 7 adds it with weight 1).
        classification_weight: weight of L_CLS inside L_GC (1 in Eq. 7).
        first_order: drop the second-order terms of the meta-gradient (faster; not the
            paper's setting).
        sample_batch: rows synthesised per chunk in :meth:`AMAZ.sample`.
        progress: show a progress bar during ``fit`` (default: when stderr is a terminal).
    """

    iterations: int = 15000
    n_way: int = 10
    support_shots: int = 5
    query_shots: int = 3
    tasks_per_batch: int = 10
    critic_inner_lr: float = 1e-3
    modulation_inner_lr: float = 1e-3
    generator_inner_lr: float = 1e-3
    critic_lr: float = 1e-3
    modulation_lr: float = 1e-5
    generator_lr: float = 1e-5
    adam_betas: tuple[float, float] = (0.9, 0.999)
    critic_clip: float | None = 0.01
    train_noise_std: float = 0.1
    sample_noise_std: float = 1.0
    noise_dim: int | None = None
    generator_width: float = 1.0
    embedding_width: float = 1.0
    classifier_widths: tuple[float, ...] = (0.25, 0.25)
    attribute_discriminator_widths: tuple[float, ...] = (0.5, 0.25)
    critic_widths: tuple[float, float] = (0.5, 0.25)
    dropout: float = 0.5
    batch_norm_eps: float = 0.8
    leaky_slope: float = 0.2
    attribute_weight: float = 1.0
    classification_weight: float = 1.0
    first_order: bool = False
    sample_batch: int = 4096
    progress: bool = field(default_factory=_stderr_is_tty)


class AMAZNetworks(nn.Module):
    """All AMAZ modules, with a functional call per module for the meta-gradient.

    Parameters are addressed by their full names (``"critic.first.linear.weight"``), so
    one flat dict holds the meta-parameters or their adapted values.
    """

    def __init__(self, config: AMAZConfig, feature_dim: int, semantic_dim: int,
                 n_classes: int) -> None:
        super().__init__()
        self.feature_dim, self.semantic_dim, self.n_classes = feature_dim, semantic_dim, n_classes
        self.noise_dim = config.noise_dim or semantic_dim

        def width(ratio: float) -> int:
            return max(1, round(ratio * feature_dim))

        blocks = {"dropout": config.dropout, "leaky_slope": config.leaky_slope}
        self.generator = ModulatedGenerator(
            self.noise_dim, semantic_dim, width(config.generator_width), feature_dim,
            batch_norm_eps=config.batch_norm_eps, **blocks)
        self.modulation = AttributeModulation(
            semantic_dim, width(config.embedding_width), self.generator.modulated_widths,
            **blocks)
        self.critic = Critic(feature_dim, semantic_dim,
                             (width(config.critic_widths[0]), width(config.critic_widths[1])),
                             **blocks)
        self.classifier = FDLStack(feature_dim, [width(r) for r in config.classifier_widths],
                                   n_classes, **blocks)
        self.attribute_discriminator = FDLStack(
            feature_dim, [width(r) for r in config.attribute_discriminator_widths],
            semantic_dim, **blocks)

    def call(self, module: str, params: dict[str, Tensor], *args: Any, **kwargs: Any) -> Any:
        """Run submodule ``module`` with its parameters taken from ``params``."""
        prefix = module + "."
        own = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
        return functional_call(getattr(self, module), own, args, kwargs)

    def group(self, params: dict[str, Tensor], name: str) -> dict[str, Tensor]:
        """The entries of ``params`` belonging to parameter group ``name``."""
        modules = tuple(m + "." for m in PARAMETER_GROUPS[name])
        return {k: v for k, v in params.items() if k.startswith(modules)}


@dataclass(frozen=True)
class Episode:
    """A batch of ``T`` tasks of ``N`` classes and ``K`` images each, rows task-major.

    Attributes:
        features: ``(T * N * K, D)`` real features.
        attributes: ``(T * N * K, A)`` the class attribute of each row.
        targets: ``(T * N * K,)`` class positions among the seen classes (C's labels).
        task_attributes: ``(T, N, A)`` the class attributes of each task (AP's input).
    """

    features: Tensor
    attributes: Tensor
    targets: Tensor
    task_attributes: Tensor

    @property
    def rows_per_task(self) -> int:
        return len(self.features) // len(self.task_attributes)


class EpisodeSampler:
    """Draws support / query task batches with disjoint classes, entirely on the device.

    Classes of a task come from a random permutation of the seen classes (Algorithm 1,
    line 3: support and query classes disjoint within each task); images of a class are
    drawn without replacement (with wrap-around for a class with fewer than K images).
    """

    def __init__(self, features: Tensor, class_index: Tensor, semantics: Tensor) -> None:
        self.features, self.semantics = features, semantics
        self.n_classes = len(semantics)
        self.order = torch.argsort(class_index, stable=True)
        self.counts = torch.bincount(class_index, minlength=self.n_classes)
        self.offsets = torch.cumsum(self.counts, 0) - self.counts
        self.max_count = int(self.counts.max())

    def draw(self, tasks: int, n_way: int, support_shots: int, query_shots: int,
             generator: torch.Generator) -> tuple[Episode, Episode]:
        device = self.features.device
        classes = torch.rand(tasks, self.n_classes, generator=generator,
                             device=device).argsort(dim=1)[:, : 2 * n_way]
        shots = max(support_shots, query_shots)
        width = max(self.max_count, shots)
        count = self.counts[classes].unsqueeze(2)
        keys = torch.rand(tasks, 2 * n_way, width, generator=generator, device=device)
        keys = keys.masked_fill(torch.arange(width, device=device) >= count, 2.0)
        positions = keys.topk(shots, dim=2, largest=False).indices % count
        images = self.order[self.offsets[classes].unsqueeze(2) + positions]
        support = self._episode(images[:, :n_way, :support_shots], classes[:, :n_way])
        query = self._episode(images[:, n_way:, :query_shots], classes[:, n_way:])
        return support, query

    def _episode(self, images: Tensor, classes: Tensor) -> Episode:
        targets = classes.unsqueeze(2).expand_as(images).reshape(-1)
        return Episode(self.features[images.reshape(-1)], self.semantics[targets], targets,
                       self.semantics[classes])


def inner_step(params: dict[str, Tensor], loss: Tensor, learning_rate: float, *,
               ascend: bool = False, create_graph: bool = True) -> dict[str, Tensor]:
    """One gradient step on ``params`` (Eq. 9-10), differentiable when ``create_graph``.

    Returns ``theta - lr * grad`` (``theta + lr * grad`` with ``ascend``). With
    ``create_graph=False`` the gradient is a constant: the first-order approximation.
    """
    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph,
                                allow_unused=True)
    step = learning_rate if ascend else -learning_rate
    return {n: params[n] if g is None else params[n] + step * g
            for n, g in zip(names, grads, strict=True)}


@dataclass(frozen=True)
class InnerRates:
    """alpha_1, alpha_2, alpha_3 of Algorithm 1."""

    critic: float
    modulation: float
    generator: float


def meta_objective(networks: AMAZNetworks, params: dict[str, Tensor], support: Episode,
                   query: Episode, *, rates: InnerRates, noise_std: float,
                   generator: torch.Generator | None, first_order: bool = False,
                   attribute_weight: float = 1.0,
                   classification_weight: float = 1.0) -> dict[str, Tensor]:
    """Query losses after one inner step on the support set (Algorithm 1, lines 5-19).

    Inner step (Eq. 9-10): theta_d' = theta_d + alpha_1 grad L_D; theta_am' = theta_am -
    alpha_2 grad L_AD; then, with D' and AP'/AM'/AD', theta_gc' = theta_gc - alpha_3 grad
    L_GC. Every query loss is evaluated at the adapted parameters and stays differentiable
    with respect to ``params`` through the inner step; the caller differentiates ``critic``
    (to ascend) by theta_d, ``attribute`` by theta_am and ``generator`` by theta_gc (Eq. 11).

    Returns the query losses: ``critic`` (L_D, Eq. 6), ``adversarial`` (-E[D(G)]),
    ``attribute`` (L_AD, Eq. 5), ``classification`` (L_CLS) and ``generator`` (L_GC, Eq. 7).
    """
    noise_dim = networks.noise_dim

    def synthesise(p: dict[str, Tensor], episode: Episode, noise: Tensor) -> Tensor:
        repeats = episode.rows_per_task
        modulation = networks.call("modulation", p, episode.task_attributes, generator=generator)
        rows = [(w.repeat_interleave(repeats, 0), b.repeat_interleave(repeats, 0))
                for w, b in modulation]
        return networks.call("generator", p, noise, episode.attributes, rows, generator=generator)

    def critic_scores(p: dict[str, Tensor], episode: Episode,
                      fake: Tensor) -> tuple[Tensor, Tensor]:
        both = networks.call("critic", p, torch.cat([episode.features, fake]),
                             episode.attributes.repeat(2, 1), generator=generator)
        return both[: len(fake)], both[len(fake):]

    def attribute_loss(p: dict[str, Tensor], episode: Episode, fake: Tensor) -> Tensor:
        reconstructed = networks.call("attribute_discriminator", p, fake, generator=generator)
        return ((episode.attributes - reconstructed) ** 2).sum(dim=1).mean()

    def generator_losses(p: dict[str, Tensor], episode: Episode, fake: Tensor,
                         fake_scores: Tensor) -> dict[str, Tensor]:
        adversarial = -fake_scores.mean()
        attribute = attribute_loss(p, episode, fake)
        logits = networks.call("classifier", p, fake, generator=generator)
        classification = F.cross_entropy(logits, episode.targets)
        total = adversarial + attribute_weight * attribute + classification_weight * classification
        return {"adversarial": adversarial, "attribute": attribute,
                "classification": classification, "generator": total}

    def noise(episode: Episode) -> Tensor:
        return noise_std * torch.randn(len(episode.features), noise_dim, generator=generator,
                                       device=episode.features.device,
                                       dtype=episode.features.dtype)

    create_graph = not first_order
    support_noise = noise(support)
    fake = synthesise(params, support, support_noise)
    real_scores, fake_scores = critic_scores(params, support, fake)
    adapted = dict(params)
    adapted.update(inner_step(networks.group(params, "critic"),
                              real_scores.mean() - fake_scores.mean(), rates.critic,
                              ascend=True, create_graph=create_graph))
    adapted.update(inner_step(networks.group(params, "modulation"),
                              attribute_loss(params, support, fake), rates.modulation,
                              create_graph=create_graph))
    fake = synthesise(adapted, support, support_noise)
    fake_scores = networks.call("critic", adapted, fake, support.attributes, generator=generator)
    support_generator = generator_losses(adapted, support, fake, fake_scores)["generator"]
    adapted.update(inner_step(networks.group(adapted, "generator"), support_generator,
                              rates.generator, create_graph=create_graph))

    fake = synthesise(adapted, query, noise(query))
    real_scores, fake_scores = critic_scores(adapted, query, fake)
    losses = generator_losses(adapted, query, fake, fake_scores)
    losses["critic"] = real_scores.mean() - fake_scores.mean()
    return {name: losses[name] for name in LOSS_NAMES}


@register
class AMAZ(Generator):
    """Attribute-modulated generative meta-learning (Li et al., 2021)."""

    name = "amaz"
    Config = AMAZConfig
    config: AMAZConfig

    def fit(self, data: SeenData, *, generator: torch.Generator,
            schedule: CheckpointSchedule | None = None) -> AMAZ:
        config = self.config
        device = data.device
        seen = data.seen_classes.to(device)
        n_seen = len(seen)
        if n_seen < 2:
            raise GZSLError(f"AMAZ needs at least 2 seen classes for disjoint support and "
                            f"query tasks; the training data has {n_seen}")
        self.n_way_ = min(config.n_way, n_seen // 2)
        if self.n_way_ < config.n_way:
            warnings.warn(f"AMAZ: {n_seen} seen classes cannot fill disjoint {config.n_way}-way "
                          f"support and query tasks; using {self.n_way_}-way tasks",
                          stacklevel=2)
        with seeded_init(generator):
            self.networks_ = AMAZNetworks(config, data.feature_dim, data.semantic_dim, n_seen)
        self.networks_.to(device).train()
        semantics = data.class_semantics.to(device)[seen]
        sampler = EpisodeSampler(data.features, torch.searchsorted(seen, data.labels), semantics)
        step = self._outer_step(generator)

        total = self.total_iterations(len(data.features))
        rows = config.tasks_per_batch * self.n_way_ * (config.support_shots + config.query_shots)
        sums = torch.zeros(len(LOSS_NAMES), device=device)
        since = 0
        callback = schedule.callback if schedule is not None else None
        with tqdm(total=total, disable=not config.progress, desc="AMAZ") as bar:
            for iteration in range(1, total + 1):
                support, query = sampler.draw(config.tasks_per_batch, self.n_way_,
                                              config.support_shots, config.query_shots,
                                              generator)
                sums += step(support, query)
                since += 1
                bar.update()
                if callback is not None and (schedule.due(iteration) or iteration == total):
                    means = (sums / since).tolist()
                    sums.zero_()
                    since = 0
                    stop = callback(Checkpoint(iteration=iteration,
                                               epoch=iteration * rows / len(data.features),
                                               losses=dict(zip(LOSS_NAMES, means, strict=True))))
                    if stop:
                        break
        self.networks_.eval()
        return self

    def _outer_step(self, generator: torch.Generator) -> Callable[[Episode, Episode], Tensor]:
        """Eq. 11 as one function of a support and a query episode; returns the losses."""
        config, networks = self.config, self.networks_
        params = dict(networks.named_parameters())
        groups = {name: list(networks.group(params, name).values()) for name in PARAMETER_GROUPS}
        rates = {"critic": config.critic_lr, "modulation": config.modulation_lr,
                 "generator": config.generator_lr}
        optimizers = {name: torch.optim.Adam(groups[name], lr=rates[name],
                                             betas=config.adam_betas) for name in groups}
        inner = InnerRates(config.critic_inner_lr, config.modulation_inner_lr,
                           config.generator_inner_lr)

        def step(support: Episode, query: Episode) -> Tensor:
            losses = meta_objective(
                networks, params, support, query, rates=inner,
                noise_std=config.train_noise_std, generator=generator,
                first_order=config.first_order, attribute_weight=config.attribute_weight,
                classification_weight=config.classification_weight)
            for optimizer in optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(-losses["critic"], inputs=groups["critic"], retain_graph=True)
            torch.autograd.backward(losses["attribute"], inputs=groups["modulation"],
                                    retain_graph=True)
            torch.autograd.backward(losses["generator"], inputs=groups["generator"])
            for optimizer in optimizers.values():
                optimizer.step()
            if config.critic_clip is not None:
                with torch.no_grad():
                    for weight in groups["critic"]:
                        weight.clamp_(-config.critic_clip, config.critic_clip)
            return torch.stack([losses[name].detach() for name in LOSS_NAMES])

        return step

    def total_iterations(self, n_train: int) -> int:
        return self.config.iterations

    @torch.no_grad()
    def sample(self, semantics: Tensor, n_per_class: int, *,
               generator: torch.Generator | None = None) -> Tensor:
        """Features for each semantic row, class-major, noise sigma ``sample_noise_std``.

        Each class is its own task (Sec. II-E, III-A): the generator is modulated by the
        embedding of the class's attribute (replicating it N times, as the paper does,
        gives the same mean embedding), in evaluation mode.
        """
        networks, device = self.networks_, self.device
        semantics = semantics.to(device=device, dtype=torch.float32)
        total = len(semantics) * n_per_class
        out = torch.empty(total, networks.feature_dim, device=device)
        if total == 0:
            return out
        was_training = networks.training
        networks.eval()
        try:
            modulation = networks.modulation(semantics.unsqueeze(1))
            for start in range(0, total, self.config.sample_batch):
                stop = min(start + self.config.sample_batch, total)
                rows = torch.arange(start, stop, device=device) // n_per_class
                noise = self.config.sample_noise_std * torch.randn(
                    stop - start, networks.noise_dim, generator=generator, device=device)
                out[start:stop] = networks.generator(noise, semantics[rows],
                                                     [(w[rows], b[rows]) for w, b in modulation])
        finally:
            networks.train(was_training)
        return out

    @torch.no_grad()
    def instance_weights(self, features: Tensor, semantics: Tensor) -> Tensor:
        """Eq. 12-13: cosine between each row's class attribute and AD's reconstruction.

        ``semantics`` holds either one row per feature, or one row per class with
        ``features`` class-major (as :meth:`sample` returns them). Weights lie in [-1, 1];
        the classifier decides what to do with negative ones.
        """
        networks, device = self.networks_, self.device
        features = features.to(device=device, dtype=torch.float32)
        semantics = semantics.to(device=device, dtype=torch.float32)
        if len(semantics) != len(features):
            if len(semantics) == 0 or len(features) % len(semantics):
                raise GZSLError(f"instance_weights: {len(features)} features cannot be split "
                                f"class-major over {len(semantics)} semantic rows")
            semantics = semantics.repeat_interleave(len(features) // len(semantics), dim=0)
        was_training = networks.training
        networks.eval()
        try:
            weights = torch.empty(len(features), device=device)
            for start in range(0, len(features), self.config.sample_batch):
                stop = start + self.config.sample_batch
                reconstructed = networks.attribute_discriminator(features[start:stop])
                weights[start:stop] = F.cosine_similarity(semantics[start:stop], reconstructed,
                                                          dim=1)
        finally:
            networks.train(was_training)
        return weights

    @property
    def device(self) -> torch.device:
        return next(self.networks_.parameters()).device

    def state_dict(self) -> dict[str, Any]:
        networks = self.networks_
        return {"networks": networks.state_dict(), "feature_dim": networks.feature_dim,
                "semantic_dim": networks.semantic_dim, "n_classes": networks.n_classes,
                "n_way": self.n_way_}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> AMAZ:
        networks = AMAZNetworks(self.config, int(state["feature_dim"]),
                                int(state["semantic_dim"]), int(state["n_classes"]))
        networks.load_state_dict(state["networks"])
        self.networks_ = networks.to(device).eval()
        self.n_way_ = int(state["n_way"])
        return self
