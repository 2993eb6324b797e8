"""GSMFlow: a conditional generative flow with visual perturbation and relative positioning.

Chen et al., "Mitigating Generation Shifts for Generalized Zero-Shot Learning", ACM MM 2021.
A stack of conditional GLOW coupling blocks (Sec. 3.2, :mod:`gzsl.nn.coupling`) maps a
visual feature ``x`` to ``z ~ N(0, I)`` given a *global semantic vector* ``a_g`` of its
class; generation runs the flow backwards from Gaussian noise (Eq. 19). Training
minimises the flow's negative log-likelihood of perturbed features (Eq. 8-11, 17) plus a
prototype loss tying ``g(0; a_g)`` to each seen class's mean feature (Eq. 13, 17, 18).
The global semantic vector comes from relative positioning against three anchor classes
(Eq. 14-16). Details the paper leaves open follow the authors' code (see SPEC.md and
``docs/methods/gsmflow.md``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gzsl.data.errors import GZSLError
from gzsl.methods.base import (
    COUNT,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    CheckpointSchedule,
    Generator,
    Range,
    SeenData,
    Settings,
    register,
    seeded_init,
)
from gzsl.nn.coupling import ConditionalFlow

#: Row sums of the cosine graph equal to this many decimals count as tied (Eq. 15).
TIE_DECIMALS = 9


@dataclass(frozen=True)
class GSMFlowConfig(Settings):
    """Settings of GSMFlow; defaults are the paper's AWA2 setting (authors' ``train_AWA2.py``).

    Attributes:
        epochs: passes over the training images (an epoch is ``n // batch_size`` full
            batches of a fresh shuffle; the remainder is dropped, as in the reference).
        batch_size: images per optimiser step (256, Sec. 4.2).
        lr: Adam learning rate (3e-4, Sec. 4.2).
        betas: Adam betas ((0.9, 0.999), Sec. 4.2).
        weight_decay: Adam's L2 penalty on flow and semantic module (per dataset).
        lr_step_epochs: StepLR period in epochs (15 in the reference).
        lr_gamma: StepLR factor (per dataset).
        coupling_blocks: number ``L`` of conditional coupling blocks.
        hidden_dim: width of every coupling subnet (2048, Sec. 4.2).
        clamp: soft-clamp bound of the log-scales (FrEIA's ``clamp=1`` in the reference).
        init_scale: every flow parameter, biases too, starts as ``init_scale * N(0, 1)``.
        global_semantic_dim: size of the global semantic vector ``a_g`` (1024, Sec. 4.7).
        prototype_weight: ``lambda_2`` of Eq. 18, weight of the prototype loss.
        perturbation: ``lambda_1`` of Eq. 11, scale of the visual perturbation.
        perturbation_dropout: probability of dropping a dimension from the perturbation
            (the mask ``m`` of Eq. 9-10; one mask per batch; 0 in every reference script).
        anchors: classes the anchors of relative positioning come from: ``"seen"`` uses
            only seen-class semantics (AWA2, CUB, FLO in the reference); ``"all"`` uses the
            semantic vectors of every class in ``SeenData.class_semantics``, unseen ones
            included (APY in the reference; a transductive use of unseen semantics).
        permute: fixed random permutation of the dimensions before each block (off in the
            reference).
        use_perturbation: Table 3 "w/o VP" when False: the NLL sees the real features.
        use_relative_positioning: Table 3 "w/o RP" when False: the flow is conditioned on
            the raw class semantic vector.
        use_prototype_loss: False drops the prototype loss term (Eq. 13).
        sample_noise_std: standard deviation of the latent noise at synthesis (1 = the
            paper; ``temperature`` before).
    """

    epochs: Annotated[int, Range(1, 100_000, budget=True)] = 500
    batch_size: Annotated[int, COUNT] = 256
    lr: Annotated[float, POSITIVE] = 3e-4
    betas: Annotated[tuple[float, float], FRACTION] = (0.9, 0.999)
    weight_decay: Annotated[float, NON_NEGATIVE] = 3e-6
    lr_step_epochs: Annotated[int, COUNT] = 15
    lr_gamma: Annotated[float, NON_NEGATIVE] = 0.92
    coupling_blocks: Annotated[int, COUNT] = 3
    hidden_dim: Annotated[int, COUNT] = 2048
    clamp: Annotated[float, POSITIVE] = 1.0
    init_scale: Annotated[float, NON_NEGATIVE] = 0.01
    global_semantic_dim: Annotated[int, COUNT] = 1024
    prototype_weight: Annotated[float, NON_NEGATIVE] = 10.0
    perturbation: Annotated[float, NON_NEGATIVE] = 0.15
    perturbation_dropout: Annotated[float, FRACTION] = 0.0
    anchors: Literal["seen", "all"] = "seen"
    permute: bool = False
    use_perturbation: bool = True
    use_relative_positioning: bool = True
    use_prototype_loss: bool = True
    sample_noise_std: Annotated[float, NON_NEGATIVE] = 1.0



def semantic_anchors(semantics: Tensor) -> Tensor:
    """Row indices ``(max, min, median)`` of the anchor classes among ``semantics`` rows.

    Builds the cosine graph of Eq. 14 and sums each row (Eq. 15). The anchors are the
    classes whose sum is the largest, the smallest, and the median: the value at position
    ``n // 2`` of the sums sorted ascending, as in the reference code. Each anchor is the
    lowest row index carrying its value, so ties (sums equal to :data:`TIE_DECIMALS`
    decimals, e.g. duplicated semantic vectors) are broken deterministically where the
    reference code crashes on a tied median.
    """
    unit = F.normalize(semantics.double(), dim=1)
    sums = torch.round((unit @ unit.T).sum(dim=1), decimals=TIE_DECIMALS)
    ordered = torch.sort(sums).values
    values = torch.stack([ordered[-1], ordered[0], ordered[len(sums) // 2]])
    # argmax over a 0/1 matrix returns the first (lowest) index of each value.
    return (sums.unsqueeze(0) == values.unsqueeze(1)).to(torch.int8).argmax(dim=1)


class RelativePositioning(nn.Module):
    """Global semantic vector ``a_g = sum_k ReLU(W_k (a - anchor_k) + b_k)`` (Eq. 16).

    One fully connected layer plus ReLU (``h_max``, ``h_min``, ``h_med``, Sec. 4.2) per
    anchor, applied to the offset of ``a`` from that anchor; the responses are summed.
    """

    def __init__(self, anchors: Tensor, out_dim: int) -> None:
        super().__init__()
        self.register_buffer("anchors", anchors.detach().clone())
        self.responses = nn.ModuleList(nn.Linear(anchors.shape[1], out_dim) for _ in anchors)

    def forward(self, semantics: Tensor) -> Tensor:
        return torch.stack([F.relu(response(semantics - anchor)) for anchor, response
                            in zip(self.anchors, self.responses, strict=True)]).sum(dim=0)


@register
class GSMFlow(Generator):
    """Generation Shifts Mitigating Flow (ACM MM 2021); see the module docstring."""

    name = "gsmflow"
    Config = GSMFlowConfig
    default_chunk_size = 16384
    config: GSMFlowConfig
    #: Table 3 rows ("w/o VP", "w/o RP", "w/o constraints") plus the prototype loss alone.
    ablations: ClassVar[dict[str, dict[str, Any]]] = {
        "full": {},
        "no-perturbation": {"use_perturbation": False},
        "no-relative-positioning": {"use_relative_positioning": False},
        "no-prototype-loss": {"use_prototype_loss": False},
        "no-constraints": {"use_perturbation": False, "use_relative_positioning": False,
                           "use_prototype_loss": False},
    }

    def total_iterations(self, n_train: int) -> int:
        return self.config.epochs * _steps_per_epoch(n_train, self.config.batch_size)

    def fit(self, data: SeenData, *, rng: torch.Generator,
            schedule: CheckpointSchedule | None = None,
            resume: dict[str, Any] | None = None) -> GSMFlow:
        """Train flow and semantic module on ``data.device`` (Algorithm: Eq. 8-18)."""
        config = self.config
        device = data.device
        _check_data(data)
        features = data.features
        n_train, feature_dim = features.shape
        seen_semantics = data.class_semantics[data.seen_classes]
        label_index = torch.searchsorted(data.seen_classes, data.labels)
        prototypes = data.class_means()
        if resume is None:
            pool = seen_semantics if config.anchors == "seen" else data.class_semantics
            anchors = pool[semantic_anchors(pool)] if config.use_relative_positioning else None
            with seeded_init(rng):
                self._build(feature_dim, data.semantic_dim, anchors)
            self._to(device)
            loop: dict[str, Any] = {"epoch": 0, "step": 0, "iteration": 0, "order": None}
        else:
            loop = self._resume_model(resume, rng, device)
        parameters = [*self.flow_.parameters(), *([] if self.relative_positioning_ is None
                                                  else self.relative_positioning_.parameters())]
        optimizer = torch.optim.Adam(parameters, lr=config.lr, betas=tuple(config.betas),
                                     weight_decay=config.weight_decay)
        lr_schedule = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=config.lr_step_epochs, gamma=config.lr_gamma)
        optimisers = {"adam": optimizer, "lr_schedule": lr_schedule}
        if resume is not None:
            self._resume_optimisers(resume, optimisers)

        batch_size = min(config.batch_size, n_train)
        steps_per_epoch = _steps_per_epoch(n_train, config.batch_size)
        total = config.epochs * steps_per_epoch
        latent_zero = torch.zeros(len(seen_semantics), feature_dim, device=device)
        names = ("nll", "prototype", "total") if config.use_prototype_loss else ("nll", "total")
        iteration, stop = int(loop["iteration"]), False
        order = None if loop["order"] is None else loop["order"].to(device)
        self.iterations_ = iteration
        self._set_training(True)
        with self._training_log(schedule, total=total, loss_names=names, device=device,
                                rng=rng, optimisers=optimisers, start=iteration,
                                epoch=lambda i: i / steps_per_epoch) as log:
            for epoch in range(int(loop["epoch"]), config.epochs):
                if order is None:
                    order = torch.randperm(n_train, generator=rng, device=device)
                first = int(loop["step"]) if epoch == loop["epoch"] else 0
                for step in range(first, steps_per_epoch):
                    rows = order[step * batch_size:(step + 1) * batch_size]
                    x = features[rows]
                    if config.use_perturbation and config.perturbation > 0:
                        x = x + config.perturbation * self._perturbation(x, rng)
                    global_seen = self._condition(seen_semantics)
                    z, log_det = self.flow_(x, global_seen[label_index[rows]])
                    nll = z.pow(2).mean() / 2 - log_det.mean() / feature_dim  # Eq. 3-4 per dim
                    terms = [nll]
                    loss = nll
                    if config.use_prototype_loss:
                        # Eq. 13/17: semantic module frozen for this term (reference code).
                        mean_samples = self.flow_.inverse(latent_zero, global_seen.detach())
                        prototype = F.mse_loss(mean_samples, prototypes)
                        loss = loss + config.prototype_weight * prototype
                        terms.append(prototype)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    iteration += 1
                    self.iterations_ = iteration
                    stop = log.step(iteration, torch.stack([*terms, loss]), epoch=epoch,
                                    step=step + 1, iteration=iteration, order=order)
                    if stop:
                        break
                if stop:
                    break
                order = None
                with warnings.catch_warnings():
                    # A run resumed at an epoch's end steps its restored schedule before this
                    # process's first optimiser step; the order is right, PyTorch cannot know.
                    warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step",
                                            UserWarning)
                    lr_schedule.step()
        self._set_training(False)
        return self

    def _perturbation(self, x: Tensor, rng: torch.Generator) -> Tensor:
        """``e * m`` of Eq. 8-10: Gaussian noise with a per-dimension keep-mask."""
        noise = torch.randn(x.shape, generator=rng, device=x.device, dtype=x.dtype)
        dropout = self.config.perturbation_dropout
        if dropout > 0:
            keep = torch.rand(x.shape[1], generator=rng, device=x.device) >= dropout
            noise = noise * keep
        return noise

    def sample(self, semantics: Tensor, n_per_class: int, *,
               rng: torch.Generator | None = None) -> Tensor:
        """``x = g(z; a_g(c))`` (Eq. 19), ``z ~ N(0, temperature^2 I)``; class-major rows."""
        device = self.device
        semantics = semantics.to(device=device, dtype=torch.float32)
        total = len(semantics) * n_per_class
        output = torch.empty(total, self.feature_dim_, device=device)
        with self._evaluating():
            conditions = self._condition(semantics)
            for start in range(0, total, self.chunk_size):
                stop = min(start + self.chunk_size, total)
                classes = torch.arange(start, stop, device=device) // n_per_class
                z = torch.randn(stop - start, self.feature_dim_, generator=rng,
                                device=device)
                if self.config.sample_noise_std != 1.0:
                    z = z * self.config.sample_noise_std
                output[start:stop] = self.flow_.inverse(z, conditions[classes])
        return output

    def global_semantics(self, semantics: Tensor) -> Tensor:
        """The flow's condition for ``semantics`` rows: ``a_g`` (Eq. 16), or ``a`` without RP."""
        self.check_is_fitted()
        with self._evaluating():
            return self._condition(semantics.to(device=self.device, dtype=torch.float32))

    def state_dict(self) -> dict[str, Any]:
        positioning = self.relative_positioning_
        return {
            "architecture": dict(self.architecture_),
            "flow": self.flow_.state_dict(),
            "relative_positioning": None if positioning is None else positioning.state_dict(),
            "iterations": self.iterations_,
        }

    def load_state_dict(self, state: dict[str, Any],
                        device: torch.device | str = "cpu") -> GSMFlow:
        arch = state["architecture"]
        positioning = state["relative_positioning"]
        anchors = None if positioning is None else positioning["anchors"]
        with torch.random.fork_rng(devices=[]):  # rebuilding must not move the global RNG
            self._build(int(arch["feature_dim"]), int(arch["semantic_dim"]), anchors,
                        arch=arch)
        self.flow_.load_state_dict(state["flow"])
        if positioning is not None:
            self.relative_positioning_.load_state_dict(positioning)
        self.iterations_ = int(state.get("iterations", 0))
        self._to(torch.device(device))
        self._set_training(False)
        return self

    def _build(self, feature_dim: int, semantic_dim: int, anchors: Tensor | None,
               arch: dict[str, Any] | None = None) -> None:
        """Create the modules; from the config when fitting, from ``arch`` when loading."""
        config = self.config
        if arch is None:
            arch = {
                "feature_dim": feature_dim,
                "semantic_dim": semantic_dim,
                "condition_dim": (config.global_semantic_dim if anchors is not None
                                  else semantic_dim),
                "hidden_dim": config.hidden_dim,
                "coupling_blocks": config.coupling_blocks,
                "clamp": config.clamp,
                "permute": config.permute,
            }
        self.architecture_ = arch
        self.feature_dim_ = int(arch["feature_dim"])
        condition_dim = int(arch["condition_dim"])
        self.relative_positioning_ = (None if anchors is None
                                      else RelativePositioning(anchors.float().cpu(),
                                                               condition_dim))
        self.flow_ = ConditionalFlow(self.feature_dim_, condition_dim, int(arch["hidden_dim"]),
                                     int(arch["coupling_blocks"]), clamp=float(arch["clamp"]),
                                     permute=bool(arch["permute"]),
                                     init_scale=config.init_scale)

    def _condition(self, semantics: Tensor) -> Tensor:
        if self.relative_positioning_ is None:
            return semantics
        return self.relative_positioning_(semantics)


def _steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Full batches per epoch: ``n // batch_size``, or one batch of all images if fewer."""
    if n_train <= 0:
        raise GZSLError("GSMFlow needs at least one training image")
    return max(1, n_train // batch_size)


def _check_data(data: SeenData) -> None:
    if data.features.ndim != 2 or data.feature_dim < 2:
        raise GZSLError(f"GSMFlow needs (N, D) features with D >= 2, got shape "
                        f"{tuple(data.features.shape)}")
    if len(data.seen_classes) == 0 or len(data.labels) != len(data.features):
        raise GZSLError("GSMFlow needs seen classes and one label per training image")
    if not bool(torch.isin(data.labels, data.seen_classes).all()):
        raise GZSLError("GSMFlow training labels must all be in SeenData.seen_classes")
