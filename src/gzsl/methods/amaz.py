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

Options beyond the paper, all off by default (docs/methods/amaz.md says why and what they
measured): a WGAN-GP gradient penalty instead of weight clipping, several critic updates
per iteration, C and AD fitted to real features (and pretrained), an epoch-based budget,
an output activation, per-class modulation in training, and synthesis from
weight-averaged networks.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from gzsl.data.errors import GZSLError
from gzsl.methods.base import (
    COUNT,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    CheckpointSchedule,
    Generator,
    OneOf,
    Range,
    SeenData,
    Settings,
    register,
    seeded_init,
)
from gzsl.nn.modulation import (
    OUTPUT_ACTIVATIONS,
    AttributeModulation,
    Critic,
    FDLStack,
    ModulatedGenerator,
)

#: Parameter groups of Algorithm 1: theta_d, theta_am = {AP, AM, AD}, theta_gc = {G, C}.
PARAMETER_GROUPS: dict[str, tuple[str, ...]] = {
    "critic": ("critic",),
    "modulation": ("modulation", "attribute_discriminator"),
    "generator": ("generator", "classifier"),
}

#: The modules that synthesis runs (and ``weight_average`` averages).
SYNTHESIS_MODULES = ("generator", "modulation")

#: Query-set losses reported at checkpoints (means since the previous checkpoint).
LOSS_NAMES = ("critic", "penalty", "adversarial", "attribute", "classification",
              "real_attribute", "real_classification", "generator")

#: What modulates G in training: the task's mean embedding, or each row's own class.
MODULATION_SCOPES = ("task", "class")

#: What theta_am's meta-update minimises: L_AD (Algorithm 1) or L_AD + L_GC (Sec. II-C).
MODULATION_OBJECTIVES = ("attribute", "attribute+generator")




@dataclass(frozen=True)
class AMAZConfig(Settings):
    """Settings of AMAZ; defaults are the paper's (Sec. III-A and the supplement).

    Widths are multiples of the feature dimension D, so the paper's sizes for 2048-d
    ResNet-101 features (generator and projector 2048, classifier 512-512, attribute
    discriminator 1024-512, critic 1024-512) scale to other feature sizes.

    Attributes:
        iterations: meta-iterations (one batch of tasks each); the paper's "epoch number",
            15000 for AWA1 / AWA2 and 25000 for SUN / CUB.
        epochs: when set, the budget in passes over the training features instead
            (:meth:`AMAZ.total_iterations`): the validation protocol transfers its chosen
            checkpoint to the larger final training set as an epoch, which a fixed number of
            iterations may not reach. Our option; ``None`` uses ``iterations``.
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
        betas: Adam's betas for the outer updates (the paper names Adam only;
            ``adam_betas`` before).
        critic_clip: after each outer step the critic's weights are clipped to
            ``[-critic_clip, critic_clip]`` (the WGAN Lipschitz constraint; the paper names
            none, and without one the critic of Eq. 6 diverges); ``None`` or 0 disables it.
        critic_penalty: weight lambda of a WGAN-GP gradient penalty (Gulrajani et al.
            2017, as in f-CLSWGAN) subtracted from the critic's objective, inner and outer
            step alike: ``L_D - lambda * E[(||grad_x D(x_hat, a)|| - 1)^2]`` at random
            interpolates ``x_hat`` of real and synthetic features. Our option (the paper
            names no Lipschitz constraint); 0 turns it off. Use it with ``critic_clip`` 0.
        critic_steps: critic updates per meta-iteration (WGAN's n_critic); the first is the
            meta-update of Eq. 11, each further one a plain update at the meta-parameters
            (no inner step) on a fresh support and query episode. 1 is Algorithm 1.
        real_auxiliaries: C and AD are fitted to the real features of each episode (as
            f-CLSWGAN's classifier and TF-VAEGAN's semantic decoder are), and the fake
            terms of Eq. 5 and 7 then train only the networks that make the fakes (G, AP,
            AM): C and AD cannot co-adapt to the fakes. Off: the paper's Eq. 5 / 7, where C
            and AD see only synthetic features. Our option.
        auxiliary_pretraining: steps fitting C and AD to real seen features (support
            episodes, Adam at ``auxiliary_lr``) before meta-training, as f-CLSWGAN
            pretrains its classifier; 0 (the paper) skips it. Our option.
        auxiliary_lr: Adam learning rate of that pretraining.
        modulation_scope: ``"task"`` (Eq. 1 as read here: G is modulated by the mean
            embedding of the task's N classes) or ``"class"`` (each row by its own class's
            embedding, as every class is modulated at synthesis time). Our option.
        modulation_objective: what the meta-update of theta_am = {AP, AM, AD} (Algorithm 1
            line 18, Eq. 11) minimises: ``"attribute"`` (L_AD only, as Algorithm 1 writes it;
            the gradient of L_GC on theta_am is dropped) or ``"attribute+generator"``
            (L_AD + L_GC: Sec. II-C and Eq. 8 say theta_am minimises L_GC, so L_GC's query
            gradient also reaches AP, AM and AD). The inner step (line 13) stays L_AD.
        train_noise_std: sigma of the generator noise during training (0.1).
        sample_noise_std: sigma of the generator noise when synthesising (1.0).
        noise_dim: noise dimension; ``None`` uses the semantic dimension.
        output_activation: applied to the generator's modulated output: ``"none"`` (the
            supplement's plain FC), ``"relu"`` (non-negative, like post-ReLU CNN features and
            f-CLSWGAN's generator) or ``"sigmoid"`` (inside min-max scaled ``[0, 1]``).
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
        weight_average: decay of an exponential moving average of G's and AP/AM's weights
            (and batch-norm statistics), updated after every meta-iteration; synthesis
            uses the averaged networks. 0 (the paper) synthesises with the last weights.
            Our option, a common stabiliser of GAN generators: it damps the swings of
            sample quality from one checkpoint to the next.
    """

    iterations: Annotated[int, Range(0, 10_000_000, budget=True)] = 15000
    epochs: Annotated[float | None, Range(0, 100_000, low_open=True, budget=True)] = None
    n_way: Annotated[int, COUNT] = 10
    support_shots: Annotated[int, COUNT] = 5
    query_shots: Annotated[int, COUNT] = 3
    tasks_per_batch: Annotated[int, COUNT] = 10
    critic_inner_lr: Annotated[float, NON_NEGATIVE] = 1e-3
    modulation_inner_lr: Annotated[float, NON_NEGATIVE] = 1e-3
    generator_inner_lr: Annotated[float, NON_NEGATIVE] = 1e-3
    critic_lr: Annotated[float, POSITIVE] = 1e-3
    modulation_lr: Annotated[float, POSITIVE] = 1e-5
    generator_lr: Annotated[float, POSITIVE] = 1e-5
    betas: Annotated[tuple[float, float], FRACTION] = (0.9, 0.999)
    critic_clip: Annotated[float | None, NON_NEGATIVE] = 0.01
    critic_penalty: Annotated[float, NON_NEGATIVE] = 0.0
    critic_steps: Annotated[int, COUNT] = 1
    real_auxiliaries: bool = False
    auxiliary_pretraining: Annotated[int, NON_NEGATIVE] = 0
    auxiliary_lr: Annotated[float, POSITIVE] = 1e-3
    modulation_scope: Annotated[str, OneOf(MODULATION_SCOPES)] = "task"
    modulation_objective: Annotated[str, OneOf(MODULATION_OBJECTIVES)] = "attribute"
    train_noise_std: Annotated[float, NON_NEGATIVE] = 0.1
    sample_noise_std: Annotated[float, NON_NEGATIVE] = 1.0
    noise_dim: Annotated[int | None, COUNT] = None
    output_activation: Annotated[str, OneOf(OUTPUT_ACTIVATIONS)] = "none"
    generator_width: Annotated[float, POSITIVE] = 1.0
    embedding_width: Annotated[float, POSITIVE] = 1.0
    classifier_widths: Annotated[tuple[float, ...], POSITIVE] = (0.25, 0.25)
    attribute_discriminator_widths: Annotated[tuple[float, ...], POSITIVE] = (0.5, 0.25)
    critic_widths: Annotated[tuple[float, float], POSITIVE] = (0.5, 0.25)
    dropout: Annotated[float, FRACTION] = 0.5
    batch_norm_eps: Annotated[float, POSITIVE] = 0.8
    leaky_slope: Annotated[float, NON_NEGATIVE] = 0.2
    attribute_weight: Annotated[float, NON_NEGATIVE] = 1.0
    classification_weight: Annotated[float, NON_NEGATIVE] = 1.0
    first_order: bool = False
    weight_average: Annotated[float, FRACTION] = 0.0



def _synthesis_state(networks: AMAZNetworks) -> dict[str, Tensor]:
    """A copy of the parameters and buffers synthesis uses (G, AP and AM)."""
    modules = tuple(f"{name}." for name in SYNTHESIS_MODULES)
    return {k: v.detach().clone() for k, v in networks.state_dict().items()
            if k.startswith(modules)}


@torch.no_grad()
def _update_average(average: dict[str, Tensor], networks: AMAZNetworks, decay: float) -> None:
    """``average <- decay * average + (1 - decay) * current`` (integer buffers: copied)."""
    current = networks.state_dict()
    for name, value in average.items():
        if value.is_floating_point():
            value.lerp_(current[name], 1 - decay)
        else:
            value.copy_(current[name])


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
            batch_norm_eps=config.batch_norm_eps, output_activation=config.output_activation,
            **blocks)
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
             rng: torch.Generator) -> tuple[Episode, Episode]:
        device = self.features.device
        classes = torch.rand(tasks, self.n_classes, generator=rng,
                             device=device).argsort(dim=1)[:, : 2 * n_way]
        shots = max(support_shots, query_shots)
        width = max(self.max_count, shots)
        count = self.counts[classes].unsqueeze(2)
        keys = torch.rand(tasks, 2 * n_way, width, generator=rng, device=device)
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


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     rng: torch.Generator | None) -> Tensor:
    """WGAN-GP's penalty ``E[(||grad_x D(x_hat)||_2 - 1)^2]`` (Gulrajani et al. 2017).

    ``x_hat = u * real + (1 - u) * fake`` with one ``u ~ U(0, 1)`` per row (drawn from
    ``rng``); ``critic`` maps ``(rows, D)`` features to ``(rows,)`` scores (the class
    attribute is held fixed, as in f-CLSWGAN). The result stays differentiable
    (``create_graph``) with respect to the critic's parameters and, through ``fake``, the
    generator's, so the meta-gradient through an inner step that used it stays exact.
    """
    mix = torch.rand(len(real), 1, generator=rng, device=real.device, dtype=real.dtype)
    interpolates = mix * real + (1 - mix) * fake
    if not interpolates.requires_grad:
        interpolates.requires_grad_(True)
    (gradient,) = torch.autograd.grad(critic(interpolates).sum(), interpolates,
                                      create_graph=True)
    return ((gradient.norm(dim=1) - 1) ** 2).mean()


class Losses:
    """The losses of Eq. 5-7 for any parameter values (meta-parameters or adapted ones).

    ``params`` is a flat dict as in :meth:`AMAZNetworks.call`; every random draw (noise,
    dropout masks, penalty interpolates) comes from ``rng``.
    """

    def __init__(self, networks: AMAZNetworks, config: AMAZConfig,
                 rng: torch.Generator | None) -> None:
        self.networks, self.config, self.rng = networks, config, rng

    def noise(self, episode: Episode) -> Tensor:
        """Generator noise ``z ~ N(0, train_noise_std^2)``, one row per episode row."""
        features = episode.features
        return self.config.train_noise_std * torch.randn(
            len(features), self.networks.noise_dim, generator=self.rng,
            device=features.device, dtype=features.dtype)

    def synthesise(self, p: dict[str, Tensor], episode: Episode, noise: Tensor) -> Tensor:
        """Eq. 1-3: features for the episode's rows, G modulated per task (or per class)."""
        tasks = episode.task_attributes
        if self.config.modulation_scope == "class":
            tasks = tasks.reshape(-1, 1, tasks.shape[-1])
        repeats = len(episode.features) // len(tasks)
        modulation = self.networks.call("modulation", p, tasks, rng=self.rng)
        rows = [(w.repeat_interleave(repeats, 0), b.repeat_interleave(repeats, 0))
                for w, b in modulation]
        return self.networks.call("generator", p, noise, episode.attributes, rows,
                                  rng=self.rng)

    def critic(self, p: dict[str, Tensor], episode: Episode,
               fake: Tensor) -> dict[str, Tensor]:
        """The critic's objective (Eq. 6, minus the optional penalty) and the fake scores."""
        both = self.networks.call("critic", p, torch.cat([episode.features, fake]),
                                  episode.attributes.repeat(2, 1), rng=self.rng)
        real_scores, fake_scores = both[: len(fake)], both[len(fake):]
        objective = real_scores.mean() - fake_scores.mean()
        weight = self.config.critic_penalty
        if weight == 0:
            penalty = torch.zeros_like(objective)
        else:
            penalty = gradient_penalty(
                lambda x: self.networks.call("critic", p, x, episode.attributes,
                                             rng=self.rng),
                episode.features, fake, self.rng)
        return {"critic": objective - weight * penalty, "penalty": penalty,
                "fake_scores": fake_scores}

    def attribute(self, p: dict[str, Tensor], episode: Episode, features: Tensor) -> Tensor:
        """Eq. 5: squared L2 error of AD's reconstructed attributes, mean over rows."""
        reconstructed = self.networks.call("attribute_discriminator", p, features,
                                           rng=self.rng)
        return ((episode.attributes - reconstructed) ** 2).sum(dim=1).mean()

    def classification(self, p: dict[str, Tensor], episode: Episode,
                       features: Tensor) -> Tensor:
        """L_CLS: cross-entropy of C over the seen classes."""
        logits = self.networks.call("classifier", p, features, rng=self.rng)
        return F.cross_entropy(logits, episode.targets)

    def _judge(self, p: dict[str, Tensor], module: str) -> dict[str, Tensor]:
        """``p`` with ``module``'s entries detached when the auxiliaries learn from real data.

        The fake-feature terms then move only the networks that make the fakes (G, AP, AM),
        not the auxiliary that judges them: C and AD cannot co-adapt to the fakes.
        """
        if not self.config.real_auxiliaries:
            return p
        prefix = module + "."
        return {k: v.detach() if k.startswith(prefix) else v for k, v in p.items()}

    def modulation(self, p: dict[str, Tensor], episode: Episode,
                   fake: Tensor) -> dict[str, Tensor]:
        """theta_am's objective: L_AD (Eq. 5) on the fakes; with ``real_auxiliaries`` AD is
        fitted to the real features instead, and the fake term trains only AP and AM."""
        attribute = self.attribute(self._judge(p, "attribute_discriminator"), episode, fake)
        real = (self.attribute(p, episode, episode.features) if self.config.real_auxiliaries
                else torch.zeros_like(attribute))
        return {"attribute": attribute, "real_attribute": real, "modulation": attribute + real}

    def generator_group(self, p: dict[str, Tensor], episode: Episode, fake: Tensor,
                        fake_scores: Tensor) -> dict[str, Tensor]:
        """theta_gc's objective L_GC (Eq. 7); with ``real_auxiliaries`` C is fitted to the
        real features, and the fake terms train only G."""
        config = self.config
        adversarial = -fake_scores.mean()
        attribute = self.attribute(self._judge(p, "attribute_discriminator"), episode, fake)
        classification = self.classification(self._judge(p, "classifier"), episode, fake)
        real = (self.classification(p, episode, episode.features) if config.real_auxiliaries
                else torch.zeros_like(classification))
        total = (adversarial + config.attribute_weight * attribute
                 + config.classification_weight * (classification + real))
        return {"adversarial": adversarial, "attribute": attribute,
                "classification": classification, "real_classification": real,
                "generator": total}


def meta_objective(networks: AMAZNetworks, params: dict[str, Tensor], support: Episode,
                   query: Episode, *, config: AMAZConfig,
                   rng: torch.Generator | None) -> dict[str, Tensor]:
    """Query losses after one inner step on the support set (Algorithm 1, lines 5-19).

    Inner step (Eq. 9-10): theta_d' = theta_d + alpha_1 grad L_D; theta_am' = theta_am -
    alpha_2 grad L_AD; then, with D' and AP'/AM'/AD', theta_gc' = theta_gc - alpha_3 grad
    L_GC. Every query loss is evaluated at the adapted parameters and stays differentiable
    with respect to ``params`` through the inner step (unless ``config.first_order``); the
    caller differentiates ``critic`` (to ascend) by theta_d, ``modulation`` by theta_am and
    ``generator`` by theta_gc (Eq. 11).

    With ``config.critic_penalty`` lambda > 0 the critic's objective, in the inner step and
    in the returned ``critic`` alike, is ``L_D - lambda * GP`` (:func:`gradient_penalty`);
    with ``config.real_auxiliaries`` AD and C also fit the real features (our options).

    Returns the query losses: ``critic`` (the critic's objective), ``penalty`` (GP, 0 when
    off), ``adversarial`` (-E[D(G)]), ``attribute`` (L_AD, Eq. 5), ``classification``
    (L_CLS), ``real_attribute`` / ``real_classification`` (on real features; 0 when off),
    ``modulation`` (theta_am's objective) and ``generator`` (L_GC, Eq. 7).
    """
    losses = Losses(networks, config, rng)
    create_graph = not config.first_order
    support_noise = losses.noise(support)
    fake = losses.synthesise(params, support, support_noise)
    adapted = dict(params)
    adapted.update(inner_step(networks.group(params, "critic"),
                              losses.critic(params, support, fake)["critic"],
                              config.critic_inner_lr, ascend=True, create_graph=create_graph))
    adapted.update(inner_step(networks.group(params, "modulation"),
                              losses.modulation(params, support, fake)["modulation"],
                              config.modulation_inner_lr, create_graph=create_graph))
    fake = losses.synthesise(adapted, support, support_noise)
    fake_scores = networks.call("critic", adapted, fake, support.attributes, rng=rng)
    support_generator = losses.generator_group(adapted, support, fake, fake_scores)["generator"]
    adapted.update(inner_step(networks.group(adapted, "generator"), support_generator,
                              config.generator_inner_lr, create_graph=create_graph))

    fake = losses.synthesise(adapted, query, losses.noise(query))
    result = losses.critic(adapted, query, fake)
    result.update(losses.generator_group(adapted, query, fake, result.pop("fake_scores")))
    result.update(losses.modulation(adapted, query, fake))
    return result


@register
class AMAZ(Generator):
    """Attribute-modulated generative meta-learning (Li et al., 2021)."""

    name = "amaz"
    Config = AMAZConfig
    default_chunk_size = 4096
    config: AMAZConfig

    def fit(self, data: SeenData, *, rng: torch.Generator,
            schedule: CheckpointSchedule | None = None,
            resume: dict[str, Any] | None = None) -> AMAZ:
        config = self.config
        device = data.device
        seen = data.seen_classes.to(device)
        n_seen = len(seen)
        if n_seen < 2:
            raise GZSLError(f"AMAZ needs at least 2 seen classes for disjoint support and "
                            f"query tasks; the training data has {n_seen}")
        semantics = data.class_semantics.to(device)[seen]
        sampler = EpisodeSampler(data.features, torch.searchsorted(seen, data.labels), semantics)

        def draw() -> tuple[Episode, Episode]:
            return sampler.draw(config.tasks_per_batch, self.n_way_, config.support_shots,
                                config.query_shots, rng)

        if resume is None:
            self.n_way_ = min(config.n_way, n_seen // 2)
            if self.n_way_ < config.n_way:
                warnings.warn(f"AMAZ: {n_seen} seen classes cannot fill disjoint "
                              f"{config.n_way}-way support and query tasks; using "
                              f"{self.n_way_}-way tasks", stacklevel=2)
            with seeded_init(rng):
                self.networks_ = AMAZNetworks(config, data.feature_dim, data.semantic_dim,
                                              n_seen)
            self._to(device)
            self._set_training(True)
            self._pretrain_auxiliaries(draw, rng)
            self.average_ = (_synthesis_state(self.networks_) if config.weight_average
                             else None)
            first = 1
        else:
            first = int(self._resume_model(resume, rng, device)["iteration"]) + 1
            self._set_training(True)
        step, optimisers = self._outer_step(rng)
        if resume is not None:
            self._resume_optimisers(resume, optimisers)

        total = self.total_iterations(len(data.features))
        rows = config.tasks_per_batch * self.n_way_ * (config.support_shots + config.query_shots)
        with self._training_log(schedule, total=total, loss_names=LOSS_NAMES, device=device,
                                rng=rng, optimisers=optimisers, start=first - 1,
                                epoch=lambda i: i * rows / len(data.features)) as log:
            for iteration in range(first, total + 1):
                extra = [draw() for _ in range(config.critic_steps - 1)]
                losses = step(*draw(), extra)
                if self.average_ is not None:
                    _update_average(self.average_, self.networks_, config.weight_average)
                if log.step(iteration, losses, iteration=iteration):
                    break
        self._set_training(False)
        return self

    def _pretrain_auxiliaries(self, draw: Callable[[], tuple[Episode, Episode]],
                              rng: torch.Generator) -> None:
        """Fit C and AD to real seen features for ``auxiliary_pretraining`` steps (our option).

        As f-CLSWGAN pretrains its classifier: the classification and attribute losses on the
        fakes then carry class and semantic information from the first meta-iteration.
        """
        steps = self.config.auxiliary_pretraining
        if steps == 0:
            return
        networks = self.networks_
        params = dict(networks.named_parameters())
        modules = ("classifier.", "attribute_discriminator.")
        optimizer = torch.optim.Adam([v for k, v in params.items() if k.startswith(modules)],
                                     lr=self.config.auxiliary_lr, betas=self.config.betas)
        losses = Losses(networks, self.config, rng)
        for _ in range(steps):
            episode = draw()[0]
            loss = (losses.classification(params, episode, episode.features)
                    + losses.attribute(params, episode, episode.features))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def _outer_step(self, rng: torch.Generator
                    ) -> tuple[Callable[..., Tensor], dict[str, torch.optim.Optimizer]]:
        """Eq. 11 as one function of a support and a query episode (returning the losses),
        and the optimisers it steps."""
        config, networks = self.config, self.networks_
        params = dict(networks.named_parameters())
        groups = {name: list(networks.group(params, name).values()) for name in PARAMETER_GROUPS}
        rates = {"critic": config.critic_lr, "modulation": config.modulation_lr,
                 "generator": config.generator_lr}
        optimizers = {name: torch.optim.Adam(groups[name], lr=rates[name],
                                             betas=config.betas) for name in groups}
        losses = Losses(networks, config, rng)

        def clip_critic() -> None:
            if config.critic_clip:
                with torch.no_grad():
                    for weight in groups["critic"]:
                        weight.clamp_(-config.critic_clip, config.critic_clip)

        def critic_only(episodes: tuple[Episode, ...]) -> None:
            """One plain critic update (no inner step) on ``episodes``: WGAN's n_critic."""
            objective = torch.zeros((), device=episodes[0].features.device)
            for episode in episodes:
                with torch.no_grad():
                    fake = losses.synthesise(params, episode, losses.noise(episode))
                objective = objective + losses.critic(params, episode, fake)["critic"]
            optimizers["critic"].zero_grad(set_to_none=True)
            torch.autograd.backward(-objective / len(episodes), inputs=groups["critic"])
            optimizers["critic"].step()
            clip_critic()

        def step(support: Episode, query: Episode,
                 extra: list[tuple[Episode, Episode]] | None = None) -> Tensor:
            for episodes in extra or ():
                critic_only(episodes)
            result = meta_objective(networks, params, support, query, config=config,
                                    rng=rng)
            for optimizer in optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(-result["critic"], inputs=groups["critic"], retain_graph=True)
            modulation = result["modulation"]
            if config.modulation_objective == "attribute+generator":
                modulation = modulation + result["generator"]
            torch.autograd.backward(modulation, inputs=groups["modulation"], retain_graph=True)
            torch.autograd.backward(result["generator"], inputs=groups["generator"])
            for optimizer in optimizers.values():
                optimizer.step()
            clip_critic()
            return torch.stack([result[name].detach() for name in LOSS_NAMES])

        return step, optimizers

    def total_iterations(self, n_train: int) -> int:
        """``iterations``, or with ``epochs`` set, enough meta-iterations for that many passes.

        A pass counts the support and query rows of ``tasks_per_batch`` tasks of ``n_way``
        classes per iteration, so the budget grows with the training set as the selection
        protocol's epoch-based checkpoint transfer expects.
        """
        config = self.config
        if config.epochs is None:
            return config.iterations
        rows = config.tasks_per_batch * config.n_way * (config.support_shots + config.query_shots)
        return max(1, math.ceil(config.epochs * n_train / rows))

    @torch.no_grad()
    def sample(self, semantics: Tensor, n_per_class: int, *,
               rng: torch.Generator | None = None) -> Tensor:
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
        weights = networks.state_dict() if self.average_ is None else self.average_
        with self._eval_mode():
            modulation = networks.call("modulation", weights, semantics.unsqueeze(1))
            for start in range(0, total, self.chunk_size):
                stop = min(start + self.chunk_size, total)
                rows = torch.arange(start, stop, device=device) // n_per_class
                noise = self.config.sample_noise_std * torch.randn(
                    stop - start, networks.noise_dim, generator=rng, device=device)
                out[start:stop] = networks.call(
                    "generator", weights, noise, semantics[rows],
                    [(w[rows], b[rows]) for w, b in modulation])
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
        with self._eval_mode():
            weights = torch.empty(len(features), device=device)
            for start in range(0, len(features), self.chunk_size):
                stop = start + self.chunk_size
                reconstructed = networks.attribute_discriminator(features[start:stop])
                weights[start:stop] = F.cosine_similarity(semantics[start:stop], reconstructed,
                                                          dim=1)
        return weights

    def state_dict(self) -> dict[str, Any]:
        networks = self.networks_
        return {"networks": networks.state_dict(), "feature_dim": networks.feature_dim,
                "semantic_dim": networks.semantic_dim, "n_classes": networks.n_classes,
                "n_way": self.n_way_, "average": self.average_}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> AMAZ:
        with torch.random.fork_rng(devices=[]):  # rebuilding must not move the global RNG
            networks = AMAZNetworks(self.config, int(state["feature_dim"]),
                                    int(state["semantic_dim"]), int(state["n_classes"]))
        networks.load_state_dict(state["networks"])
        self.networks_ = networks.to(device).eval()
        self.n_way_ = int(state["n_way"])
        average = state.get("average")
        self.average_ = (None if average is None
                         else {k: v.to(device) for k, v in average.items()})
        return self
