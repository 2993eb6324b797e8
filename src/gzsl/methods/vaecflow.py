"""VAE-cFlow: a generative flow over visual features whose prior is a VAE on the semantics.

Gu et al., "VAE-Conditioned Generative Flow for Generalized Zero-Shot Learning"
(``papers/vae-cflow.txt``). An unconditional flow ``z_f = f(x)`` (:mod:`gzsl.nn.additive`:
ActNorm, fixed channel shuffle, additive coupling, ``K = 4`` steps) maps a feature to a
latent of the same dimension. The latent's prior is conditional on the class semantics
``a``: a VAE encoder gives ``mu(a)`` and ``sigma(a)``, and
``p(z_f | a) = N(z_f; mu(a), sigma^2(a) I)`` (Sec. 3.2). Training minimises (Eq. 10)

    L = L_flow + L_rec + L_reg^flow + L_cls

* ``L_flow`` (Eq. 1-2): ``-log p(x | a) = -log N(f(x); mu(a), sigma^2(a)) - log|det df/dx|``.
* ``L_rec``: L1 error of decoding ``z_v = mu(a) + sigma(a) * e`` (``e ~ N(0, I)``, one
  draw per dimension) back to ``a`` (Eq. 6, Algorithm 1 lines 5-7).
* ``L_reg^flow`` (Eq. 8): the unit-variance half of the VAE's KL term,
  ``sum_d (sigma_d^2 - log sigma_d^2 - 1)``, without the zero-mean half.
* ``L_cls`` (Eq. 9): cross-entropy of a linear seen-class classifier on the latent.

Every term is a per-image quantity summed over its dimensions as the paper writes it, and
averaged over the batch. Synthesis (Eq. 11) draws ``z ~ N(mu(a), T sigma^2(a) I)`` and
returns ``x = f^-1(z)``. See ``docs/methods/vaecflow.md`` for where this follows the paper
rather than the authors' code.

Exact zeros (our addition, off by default; the paper is silent). Post-ReLU features with
many exact zeros are point masses that a continuous flow can squeeze without bound.
``zero_dequantisation > 0`` reads such a feature as a rectified continuous variable,
``x = max(y, 0)``: each exact zero is a censored ``y <= 0``, and for training it is
replaced by a fresh draw ``y = -|e| * zero_dequantisation``, ``e ~ N(0, 1)``
(:func:`dequantise_zeros`); positive entries are untouched. ``rectify`` applies the
matching ``max(., 0)`` to synthesised features, so they are non-negative and have exact
zeros like the real ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gzsl.data.errors import GZSLError
from gzsl.methods.base import (
    COUNT,
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
from gzsl.nn.additive import AdditiveFlow

LOSS_NAMES: tuple[str, ...] = ("flow_nll", "reconstruction", "unit_variance", "classification",
                               "total")
CLASSIFICATION_LATENTS: tuple[str, ...] = ("flow", "vae")
LOSS_WEIGHTINGS: tuple[str, ...] = ("paper", "authors")
_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)




@dataclass(frozen=True)
class VAECFlowConfig(Settings):
    """Settings of VAE-cFlow; defaults are the paper's (Sec. 4.1, Sec. 7, Table 4 for AWA).

    Attributes:
        iterations: optimiser steps (Table 4: AWA1/AWA2 5K, CUB 25K, SUN 28K).
        batch_size: images per step (Table 4: 64).
        lr: Adam learning rate (Sec. 4.1: 1e-4; default betas; ``learning_rate`` before).
        flow_steps: number ``K`` of [ActNorm, shuffle, additive coupling] steps (Sec. 4.1: 4).
        coupling_hidden: hidden width of each coupling's translation network (the paper
            does not say; the authors' code uses 512).
        encoder_hidden: the VAE encoder's two hidden widths (Sec. 4.1: 1024 and 2048).
        decoder_hidden: the VAE decoder's hidden width (Sec. 4.1: 512).
        flow_weight, reconstruction_weight, variance_weight, classification_weight: weights
            of ``L_flow``, ``L_rec``, ``L_reg^flow`` and ``L_cls`` in Eq. 10 (all 1).
        classification_latent: which latent ``L_cls`` classifies: ``"flow"`` (``z_f = f(x)``,
            as Algorithm 1 line 11 and Sec. 4.3 say) or ``"vae"`` (the reparameterised
            ``z_v``, as the sentence before Eq. 9 says).
        temperature: ``T`` of Eq. 11, the factor on the prior variance at synthesis (the
            paper's best for GZSL is 1.1, Sec. 4.3).
        dequantisation_noise: standard deviation of Gaussian noise added to each training
            feature (0: none, as the paper; the authors' code has 0.01 commented out). Sparse
            features with many exact zeros are point masses a flow can squeeze without
            bound; a little noise keeps the likelihood finite.
        zero_dequantisation: scale of the half-normal draw below zero that replaces each
            exact zero of a training feature (0: off, as the paper); see the module text.
        rectify: return ``max(f^-1(z), 0)`` from :meth:`VAECFlow.sample` (False: as the
            paper); the synthesis side of ``zero_dequantisation``.
        initialisation_size: images in the batch that initialises every ActNorm (ours: a
            larger batch than the 64 the authors' first batch had, for steadier statistics).
        loss_weighting: ``"paper"`` (Eq. 10's plain sum of per-image terms times the four
            weights above) or ``"authors"`` (the authors' code's scale, see
            :func:`loss_weights`: the flow and classification weights are further multiplied
            by ``1 / (batch_size ln 2)`` and ``0.01 / batch_size``).
    """

    iterations: Annotated[int, Range(1, 10_000_000, budget=True)] = 5000
    batch_size: Annotated[int, COUNT] = 64
    lr: Annotated[float, POSITIVE] = 1e-4
    flow_steps: Annotated[int, COUNT] = 4
    coupling_hidden: Annotated[int, COUNT] = 512
    encoder_hidden: Annotated[tuple[int, int], COUNT] = (1024, 2048)
    decoder_hidden: Annotated[int, COUNT] = 512
    flow_weight: Annotated[float, NON_NEGATIVE] = 1.0
    reconstruction_weight: Annotated[float, NON_NEGATIVE] = 1.0
    variance_weight: Annotated[float, NON_NEGATIVE] = 1.0
    classification_weight: Annotated[float, NON_NEGATIVE] = 1.0
    classification_latent: Annotated[str, OneOf(CLASSIFICATION_LATENTS)] = "flow"
    temperature: Annotated[float, NON_NEGATIVE] = 1.1
    dequantisation_noise: Annotated[float, NON_NEGATIVE] = 0.0
    zero_dequantisation: Annotated[float, NON_NEGATIVE] = 0.0
    rectify: bool = False
    initialisation_size: Annotated[int, COUNT] = 1024
    loss_weighting: Annotated[str, OneOf(LOSS_WEIGHTINGS)] = "paper"



class SemanticVAE(nn.Module):
    """The VAE on semantic vectors whose encoder is the flow's conditional prior (Sec. 3.3).

    Encoder ``a -> hidden_1 -> hidden_2 -> (mu, log_sigma)`` with heads of the latent
    (= feature) dimension; decoder ``z_v -> decoder_hidden -> a``. ReLU activations.
    """

    def __init__(self, semantic_dim: int, latent_dim: int, encoder_hidden: tuple[int, int],
                 decoder_hidden: int) -> None:
        super().__init__()
        first, second = encoder_hidden
        self.encoder = nn.Sequential(nn.Linear(semantic_dim, first), nn.ReLU(),
                                     nn.Linear(first, second), nn.ReLU())
        self.mean_head = nn.Linear(second, latent_dim)
        self.log_sigma_head = nn.Linear(second, latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, decoder_hidden), nn.ReLU(),
                                     nn.Linear(decoder_hidden, semantic_dim))

    def encode(self, semantics: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu(a), log sigma(a))``, the prior's mean and log standard deviation."""
        hidden = self.encoder(semantics)
        return self.mean_head(hidden), self.log_sigma_head(hidden)

    def decode(self, latent: Tensor) -> Tensor:
        return self.decoder(latent)


def reparameterise(mean: Tensor, log_sigma: Tensor, rng: torch.Generator | None) -> Tensor:
    """``mean + exp(log_sigma) * e`` with ``e ~ N(0, I)`` drawn independently per dimension."""
    noise = torch.randn(mean.shape, generator=rng, device=mean.device, dtype=mean.dtype)
    return mean + log_sigma.exp() * noise


def dequantise_zeros(features: Tensor, scale: float,
                     rng: torch.Generator | None) -> Tensor:
    """``features`` with each exact zero replaced by ``-|e| * scale``, ``e ~ N(0, 1)``.

    Reads a zero of a post-ReLU feature as a censored value ``y <= 0`` and imputes one
    (a half-normal below zero), so the flow sees a continuous variable instead of a point
    mass; positive entries are returned unchanged. ``scale = 0`` returns ``features``.
    """
    if scale == 0:
        return features
    below = torch.randn(features.shape, generator=rng, device=features.device,
                        dtype=features.dtype).abs_().mul_(-scale)
    return torch.where(features == 0, below, features)


def gaussian_log_density(z: Tensor, mean: Tensor, log_sigma: Tensor) -> Tensor:
    """``log N(z; mean, diag(exp(log_sigma))^2)`` summed over dimensions; shape ``(N,)``."""
    standardised = (z - mean) * (-log_sigma).exp()
    return (-0.5 * standardised ** 2 - log_sigma - _HALF_LOG_TWO_PI).sum(dim=1)


def loss_weights(config: VAECFlowConfig) -> dict[str, float]:
    """The weights of ``L_flow``, ``L_rec``, ``L_reg^flow`` and ``L_cls`` in the total loss.

    ``"paper"``: the configured weights as they are. ``"authors"``: the authors' code sums
    the NLL in bits per image (``nats / ln 2``; their ``pixels`` is ``H * W = 1`` for a
    feature vector) averaged over the batch, L1 and KL summed over batch *and* dimensions,
    and the cross-entropy times 0.01. Divided by the batch size ``B`` to our per-image
    means, the flow weight is ``1 / (B ln 2)`` (0.0225 at ``B = 64``) and the classification
    weight ``0.01 / B`` (1.6e-4), while reconstruction and variance keep weight 1; these
    factors multiply the configured weights.
    """
    weights = {"flow_nll": config.flow_weight, "reconstruction": config.reconstruction_weight,
               "unit_variance": config.variance_weight,
               "classification": config.classification_weight}
    if config.loss_weighting == "authors":
        weights["flow_nll"] *= 1.0 / (config.batch_size * math.log(2))
        weights["classification"] *= 0.01 / config.batch_size
    return weights


def vaecflow_losses(flow: AdditiveFlow, vae: SemanticVAE, classifier: nn.Linear,
                    features: Tensor, semantics: Tensor, targets: Tensor,
                    config: VAECFlowConfig, rng: torch.Generator | None) -> dict[str, Tensor]:
    """The terms of Eq. 10 for one batch, each a per-image quantity averaged over the batch.

    Args:
        features: ``(B, D)`` visual features ``x``.
        semantics: ``(B, A)`` the semantic vector ``a`` of each image's class.
        targets: ``(B,)`` each image's index among the seen classes (for ``L_cls``).
    """
    latent, log_det = flow(features)
    mean, log_sigma = vae.encode(semantics)
    flow_nll = -(gaussian_log_density(latent, mean, log_sigma) + log_det).mean()
    vae_latent = reparameterise(mean, log_sigma, rng)
    reconstruction = (vae.decode(vae_latent) - semantics).abs().sum(dim=1).mean()
    unit_variance = ((2 * log_sigma).exp() - 2 * log_sigma - 1).sum(dim=1).mean()
    classified = latent if config.classification_latent == "flow" else vae_latent
    classification = F.cross_entropy(classifier(classified), targets)
    weights = loss_weights(config)
    total = (weights["flow_nll"] * flow_nll + weights["reconstruction"] * reconstruction
             + weights["unit_variance"] * unit_variance
             + weights["classification"] * classification)
    return {"flow_nll": flow_nll, "reconstruction": reconstruction,
            "unit_variance": unit_variance, "classification": classification, "total": total}


@register
class VAECFlow(Generator):
    """VAE-conditioned generative flow: ``x = f^-1(z)``, ``z ~ N(mu(a), T sigma^2(a))``."""

    name = "vaecflow"
    Config = VAECFlowConfig
    trains_from_batches = True

    def fit(self, data: SeenData, *, rng: torch.Generator,
            schedule: CheckpointSchedule | None = None,
            resume: dict[str, Any] | None = None) -> VAECFlow:
        """Train flow, VAE and latent classifier jointly on seen classes (Algorithm 1)."""
        config = self.config
        device = data.device
        n_train = len(data.features)
        if resume is None:
            shuffle_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=rng,
                                             device=rng.device))
            self._build(data.feature_dim, data.semantic_dim, len(data.seen_classes),
                        shuffle_seed, rng=rng)
            self._to(device)
            order = torch.randperm(n_train, generator=rng, device=device)
            self.flow_.initialise(dequantise_zeros(
                data.features[order[: config.initialisation_size]],
                config.zero_dequantisation, rng))
            loop: dict[str, Any] = {"iteration": 0, "cursor": 0}
        else:
            loop = self._resume_model(resume, rng, device)
            order = loop["order"].to(device)
        targets = torch.searchsorted(data.seen_classes, data.labels)

        parameters = [*self.flow_.parameters(), *self.vae_.parameters(),
                      *self.classifier_.parameters()]
        optimizer = torch.optim.Adam(parameters, lr=config.lr, foreach=True)
        optimisers = {"adam": optimizer}
        if resume is not None:
            self._resume_optimisers(resume, optimisers)
        batch_size = min(config.batch_size, n_train)
        total = self.total_iterations(n_train)
        cursor = int(loop["cursor"])
        with self._training_log(schedule, total=total, loss_names=LOSS_NAMES, device=device,
                                rng=rng, optimisers=optimisers, start=int(loop["iteration"]),
                                epoch=lambda i: i * batch_size / n_train) as log:
            for iteration in range(int(loop["iteration"]) + 1, total + 1):
                if cursor + batch_size > n_train:
                    order = torch.randperm(n_train, generator=rng, device=device)
                    cursor = 0
                batch = order[cursor: cursor + batch_size]
                cursor += batch_size
                features = dequantise_zeros(data.features[batch], config.zero_dequantisation,
                                            rng)
                if config.dequantisation_noise > 0:
                    features = features + config.dequantisation_noise * torch.randn(
                        features.shape, generator=rng, device=device)
                losses = vaecflow_losses(
                    self.flow_, self.vae_, self.classifier_, features,
                    data.class_semantics[data.labels[batch]], targets[batch], config, rng)
                optimizer.zero_grad(set_to_none=True)
                losses["total"].backward()
                optimizer.step()
                if log.step(iteration, torch.stack([losses[name] for name in LOSS_NAMES]),
                            iteration=iteration, cursor=cursor, order=order):
                    break
        return self

    def total_iterations(self, n_train: int) -> int:
        return self.config.iterations

    @torch.no_grad()
    def sample(self, semantics: Tensor, n_per_class: int, *,
               rng: torch.Generator | None = None,
               temperature: float | None = None) -> Tensor:
        """Features for each row of ``semantics`` (class-major): ``f^-1(z)``, Eq. 11.

        ``z = mu(a) + sqrt(T) * sigma(a) * e`` so that ``z ~ N(mu(a), T sigma^2(a) I)``;
        ``temperature`` overrides the configured ``T``. With ``rectify`` the features are
        ``max(f^-1(z), 0)``.
        """
        temperature = self.config.temperature if temperature is None else temperature
        if temperature < 0:
            raise GZSLError(f"temperature must be >= 0, got {temperature}")
        device = self.device
        semantics = semantics.to(device=device, dtype=torch.float32)
        mean, log_sigma = self.vae_.encode(semantics)
        std = log_sigma.exp() * math.sqrt(temperature)
        total = len(semantics) * n_per_class
        features = torch.empty(total, self.feature_dim_, device=device)
        for start in range(0, total, self.chunk_size):
            stop = min(start + self.chunk_size, total)
            rows = torch.arange(start, stop, device=device) // n_per_class
            noise = torch.randn(stop - start, self.feature_dim_, generator=rng,
                                device=device)
            features[start:stop] = self.flow_.inverse(mean[rows] + std[rows] * noise)
        if self.config.rectify:
            features.clamp_(min=0)
        return features

    @torch.no_grad()
    def prior(self, semantics: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu(a), sigma(a))`` of the flow latent's conditional prior for each row."""
        mean, log_sigma = self.vae_.encode(semantics.to(device=self.device, dtype=torch.float32))
        return mean, log_sigma.exp()

    def state_dict(self) -> dict[str, Any]:
        return {
            "feature_dim": self.feature_dim_, "semantic_dim": self.semantic_dim_,
            "n_seen": self.n_seen_, "shuffle_seed": self.shuffle_seed_,
            "flow": self.flow_.state_dict(), "vae": self.vae_.state_dict(),
            "classifier": self.classifier_.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any],
                        device: torch.device | str = "cpu") -> VAECFlow:
        with torch.random.fork_rng(devices=[]):
            self._build(int(state["feature_dim"]), int(state["semantic_dim"]),
                        int(state["n_seen"]), int(state["shuffle_seed"]), rng=None)
        self.flow_.load_state_dict(state["flow"])
        self.vae_.load_state_dict(state["vae"])
        self.classifier_.load_state_dict(state["classifier"])
        self._to(torch.device(device))
        return self

    def _build(self, feature_dim: int, semantic_dim: int, n_seen: int, shuffle_seed: int, *,
               rng: torch.Generator | None) -> None:
        config = self.config
        self.feature_dim_, self.semantic_dim_ = feature_dim, semantic_dim
        self.n_seen_, self.shuffle_seed_ = n_seen, shuffle_seed

        def build() -> None:
            self.flow_ = AdditiveFlow(feature_dim, config.flow_steps, config.coupling_hidden,
                                      seed=shuffle_seed)
            self.vae_ = SemanticVAE(semantic_dim, feature_dim, tuple(config.encoder_hidden),
                                    config.decoder_hidden)
            self.classifier_ = nn.Linear(feature_dim, n_seen)

        if rng is None:
            build()
        else:
            with seeded_init(rng):
                build()
