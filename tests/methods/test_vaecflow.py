"""VAE-cFlow: losses of Eq. 8-10 against independent oracles, training, sampling (Eq. 11)
and the presets (the Generator contract is checked in test_contract.py)."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest
import torch
from torch.autograd.functional import jacobian
from torch.distributions import Normal, kl_divergence

from gzsl.data.errors import GZSLError
from gzsl.methods.base import CheckpointSchedule, Generator, SeenData
from gzsl.methods.vaecflow import (
    SemanticVAE,
    VAECFlow,
    VAECFlowConfig,
    dequantise_zeros,
    loss_weights,
    reparameterise,
    vaecflow_losses,
)
from gzsl.nn.additive import AdditiveFlow

TINY = dict(encoder_hidden=(16, 16), decoder_hidden=8, coupling_hidden=8, batch_size=32,
            initialisation_size=180)
PRESETS = Path(__file__).resolve().parents[2] / "src/gzsl/experiments/presets/vaecflow"


def _fit(data: SeenData, seed: int = 0, iterations: int = 150, schedule=None, **overrides):
    model = VAECFlow(**{**TINY, "iterations": iterations, **overrides})
    return model.fit(data, rng=torch.Generator().manual_seed(seed), schedule=schedule)


def _collect(every: int, stop_at: int | None = None):
    seen = []

    def callback(checkpoint):
        seen.append(checkpoint)
        return stop_at is not None and checkpoint.iteration >= stop_at

    return seen, CheckpointSchedule(every=every, callback=callback)


def test_reparameterisation_draws_noise_per_dimension_with_std_exp_log_sigma() -> None:
    g = torch.Generator().manual_seed(0)
    mean = torch.zeros(4000, 16)
    draws = reparameterise(mean, torch.full_like(mean, math.log(2.0)), g)
    # One scalar of noise per sample (the authors' code) makes every row constant.
    assert draws.std(dim=1).min() > 0.5
    torch.testing.assert_close(draws.var(dim=0).mean(), torch.tensor(4.0), rtol=0.05, atol=0)
    assert draws.mean().abs() < 0.05


def test_losses_match_independent_oracles() -> None:
    torch.manual_seed(0)
    dim, sem_dim, n = 4, 3, 5
    config = VAECFlowConfig(**TINY)
    flow = AdditiveFlow(dim, steps=2, hidden=5, seed=1).double()
    flow.initialise(torch.rand(32, dim, dtype=torch.float64))
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    vae = SemanticVAE(sem_dim, dim, (6, 6), 5).double()
    classifier = torch.nn.Linear(dim, 3).double()
    x = torch.rand(n, dim, dtype=torch.float64)
    a = torch.rand(n, sem_dim, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1, 0])
    losses = vaecflow_losses(flow, vae, classifier, x, a, y, config,
                             torch.Generator().manual_seed(3))

    mean, log_sigma = vae.encode(a)
    z, _ = flow(x)
    log_dets = torch.stack([torch.linalg.slogdet(jacobian(
        lambda v: flow(v.unsqueeze(0))[0].squeeze(0), x[i])).logabsdet for i in range(n)])
    nll = -(Normal(mean, log_sigma.exp()).log_prob(z).sum(1) + log_dets).mean()
    torch.testing.assert_close(losses["flow_nll"], nll)
    # Eq. 8 is twice the KL between N(mu, sigma^2) and N(mu, 1): no mean term.
    unit = 2 * kl_divergence(Normal(mean, log_sigma.exp()), Normal(mean, 1.0)).sum(1).mean()
    torch.testing.assert_close(losses["unit_variance"], unit)
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(3),
                        dtype=torch.float64)
    decoded = vae.decode(mean + log_sigma.exp() * noise)
    torch.testing.assert_close(losses["reconstruction"], (decoded - a).abs().sum(1).mean())
    log_probs = torch.log_softmax(classifier(z), dim=1)
    torch.testing.assert_close(losses["classification"], -log_probs[torch.arange(n), y].mean())
    torch.testing.assert_close(losses["total"], nll + unit + losses["reconstruction"]
                               + losses["classification"])


def test_authors_loss_weighting_scales_flow_and_classification_as_documented() -> None:
    paper = loss_weights(VAECFlowConfig(batch_size=64, classification_weight=2.0))
    authors = loss_weights(VAECFlowConfig(batch_size=64, classification_weight=2.0,
                                          loss_weighting="authors"))
    assert paper == {"flow_nll": 1.0, "reconstruction": 1.0, "unit_variance": 1.0,
                     "classification": 2.0}
    assert authors["flow_nll"] == pytest.approx(1 / (64 * math.log(2)))
    assert authors["flow_nll"] == pytest.approx(0.02254, abs=1e-5)
    assert authors["classification"] == pytest.approx(2.0 * 0.01 / 64)
    assert authors["reconstruction"] == authors["unit_variance"] == 1.0

    torch.manual_seed(0)
    flow = AdditiveFlow(4, steps=1, hidden=5, seed=0)
    flow.initialise(torch.rand(32, 4))
    vae, classifier = SemanticVAE(3, 4, (6, 6), 5), torch.nn.Linear(4, 2)
    x, a, y = torch.rand(8, 4), torch.rand(8, 3), torch.randint(0, 2, (8,))
    config = VAECFlowConfig(**{**TINY, "loss_weighting": "authors"})
    losses = vaecflow_losses(flow, vae, classifier, x, a, y, config,
                             torch.Generator().manual_seed(1))
    weights = loss_weights(config)
    torch.testing.assert_close(losses["total"], sum(
        weights[name] * losses[name] for name in weights))
    with pytest.raises(GZSLError):
        VAECFlowConfig(loss_weighting="bits")


@pytest.mark.parametrize("latent", ["flow", "vae"])
def test_classification_latent_decides_which_modules_the_classifier_trains(latent: str) -> None:
    torch.manual_seed(0)
    config = VAECFlowConfig(**TINY, classification_latent=latent)
    flow = AdditiveFlow(4, steps=1, hidden=5, seed=0)
    flow.initialise(torch.rand(32, 4))
    vae = SemanticVAE(3, 4, (6, 6), 5)
    losses = vaecflow_losses(flow, vae, torch.nn.Linear(4, 2), torch.rand(8, 4),
                             torch.rand(8, 3), torch.randint(0, 2, (8,)), config, None)
    losses["classification"].backward()
    flow_grad = sum(p.grad.abs().sum() for p in flow.parameters() if p.grad is not None)
    vae_grad = vae.mean_head.weight.grad
    if latent == "flow":
        assert flow_grad > 0 and vae_grad is None
    else:
        assert flow_grad == 0 and vae_grad.abs().sum() > 0


def test_training_decreases_the_loss(tiny_seen_data: SeenData) -> None:
    checkpoints, schedule = _collect(every=50)
    _fit(tiny_seen_data, iterations=300, schedule=schedule)
    first, last = checkpoints[0].losses, checkpoints[-1].losses
    assert last["total"] < first["total"] - 1.0
    assert last["flow_nll"] < first["flow_nll"]
    assert set(first) == {"flow_nll", "reconstruction", "unit_variance", "classification",
                          "total"}


def test_checkpoint_epochs_count_passes_over_the_data(tiny_seen_data: SeenData) -> None:
    model = VAECFlow(**TINY, iterations=25)
    assert model.total_iterations(180) == 25
    checkpoints, schedule = _collect(every=10)
    _fit(tiny_seen_data, iterations=25, schedule=schedule)
    assert checkpoints[-1].epoch == pytest.approx(25 * 32 / 180)


def test_cold_samples_are_the_flow_inverse_of_the_prior_mean(tiny_seen_data: SeenData) -> None:
    model = VAECFlow(**TINY, iterations=20, chunk_size=7).fit(
        tiny_seen_data, rng=torch.Generator().manual_seed(0))
    unseen = tiny_seen_data.class_semantics[6:]
    # At T = 0 every sample of class k is f^-1(mu(a_k)), across chunks.
    centres = model.sample(unseen, 20, temperature=0.0)
    mean, _ = model.prior(unseen)
    expected = model.flow_.inverse(mean).repeat_interleave(20, dim=0)
    torch.testing.assert_close(centres, expected)
    assert (centres[0] - centres[20]).abs().max() > 1e-3


def test_a_loaded_flow_keeps_its_actnorm_initialisation(tiny_seen_data: SeenData,
                                                        tmp_path: Path) -> None:
    model = _fit(tiny_seen_data, iterations=20)
    model.save(tmp_path / "vaecflow.pt")
    loaded = Generator.load(tmp_path / "vaecflow.pt")
    assert isinstance(loaded, VAECFlow) and loaded.flow_.is_initialised
    new_features = 3 * tiny_seen_data.features[:10]
    with torch.no_grad():
        assert torch.equal(model.flow_(new_features)[0], loaded.flow_(new_features)[0])


def test_temperature_scales_the_latent_variance_as_eq_11(tiny_seen_data: SeenData) -> None:
    model = _fit(tiny_seen_data, iterations=60)
    semantics = tiny_seen_data.class_semantics[6:7]
    _, sigma = model.prior(semantics)
    ratios = {}
    for temperature in (0.25, 1.0):
        samples = model.sample(semantics, 6000, temperature=temperature,
                               rng=torch.Generator().manual_seed(1))
        with torch.no_grad():
            latent, _ = model.flow_(samples)
        ratios[temperature] = float((latent.var(dim=0) / sigma[0] ** 2).mean())
    # Variance T * sigma^2 (Eq. 11); scaling the std by T instead would give 0.0625.
    assert ratios[1.0] == pytest.approx(1.0, rel=0.05)
    assert ratios[0.25] == pytest.approx(0.25, rel=0.05)


def test_dequantisation_noise_is_added_to_training_features(tiny_seen_data: SeenData) -> None:
    clean, schedule = _collect(every=20)
    _fit(tiny_seen_data, iterations=20, schedule=schedule)
    noisy, schedule = _collect(every=20)
    _fit(tiny_seen_data, iterations=20, schedule=schedule, dequantisation_noise=0.5)
    # Noise of std 0.5 on features in [0, 1] cannot be modelled as tightly as clean data.
    assert noisy[0].losses["flow_nll"] > clean[0].losses["flow_nll"] + 2.0


def test_dequantise_zeros_imputes_a_half_normal_below_zero_and_keeps_the_rest() -> None:
    features = torch.zeros(20000, 3)
    features[:, 0] = torch.linspace(0.001, 1.0, 20000)
    features[::2, 1] = 0.25
    imputed = dequantise_zeros(features, 0.2, torch.Generator().manual_seed(0))
    assert torch.equal(imputed[features > 0], features[features > 0])
    below = imputed[features == 0]
    assert (below < 0).all()
    # -|e| * 0.2 with e ~ N(0, 1): mean -0.2 sqrt(2/pi), std 0.2 sqrt(1 - 2/pi).
    assert float(below.mean()) == pytest.approx(-0.2 * math.sqrt(2 / math.pi), rel=0.02)
    assert float(below.std()) == pytest.approx(0.2 * math.sqrt(1 - 2 / math.pi), rel=0.02)
    again = dequantise_zeros(features, 0.2, torch.Generator().manual_seed(0))
    assert torch.equal(imputed, again)
    assert dequantise_zeros(features, 0.0, None) is features


def test_zero_dequantisation_reaches_the_flow(tiny_seen_data: SeenData) -> None:
    features = tiny_seen_data.features.clone()
    features[:, 3] = 0.0  # a point mass: the initialising batch has no spread there
    data = SeenData(features, tiny_seen_data.labels, tiny_seen_data.class_semantics,
                    tiny_seen_data.seen_classes)
    plain = _fit(data, iterations=1)
    imputed = _fit(data, iterations=1, zero_dequantisation=0.1)
    # ActNorm sets log s = -log(std of the initialising batch), then one Adam step (1e-4).
    assert float(plain.flow_.steps[0].actnorm.log_scale[3].detach()) == pytest.approx(
        -math.log(1e-6), abs=0.01)
    half_normal_std = 0.1 * math.sqrt(1 - 2 / math.pi)
    assert float(imputed.flow_.steps[0].actnorm.log_scale[3].detach()) == pytest.approx(
        -math.log(half_normal_std), abs=0.2)


def test_rectify_returns_the_positive_part_of_the_same_samples(
        tiny_seen_data: SeenData) -> None:
    model = _fit(tiny_seen_data, iterations=20)
    rectifying = VAECFlow(**TINY, iterations=20, rectify=True).load_state_dict(
        model.state_dict())
    semantics = tiny_seen_data.class_semantics[6:]
    raw = model.sample(semantics, 200, temperature=4.0,
                       rng=torch.Generator().manual_seed(3))
    rectified = rectifying.sample(semantics, 200, temperature=4.0,
                                  rng=torch.Generator().manual_seed(3))
    assert (raw < 0).any()
    torch.testing.assert_close(rectified, raw.clamp_min(0), rtol=0, atol=0)
    assert (rectified == 0).any() and (rectified >= 0).all()


def test_invalid_settings_are_user_errors() -> None:
    with pytest.raises(GZSLError, match="classification_latent"):
        VAECFlowConfig(classification_latent="semantic")
    with pytest.raises(GZSLError, match="temperature"):
        VAECFlowConfig(temperature=-1.0)
    with pytest.raises(GZSLError, match="dequantisation_noise"):
        VAECFlowConfig(dequantisation_noise=-0.1)
    with pytest.raises(GZSLError, match="zero_dequantisation"):
        VAECFlowConfig(zero_dequantisation=-0.1)
    with pytest.raises(GZSLError, match="encoder_hidden"):
        VAECFlowConfig(encoder_hidden=(8,))


@pytest.mark.parametrize("name", ["awa1", "awa2", "cub", "sun", "demo"])
def test_presets_resolve_and_carry_consistent_published_numbers(name: str) -> None:
    from gzsl.experiments.config import resolve

    preset = tomllib.loads((PRESETS / f"{name}.toml").read_text())
    resolved = resolve("vaecflow", preset["dataset"], preset=name)
    config = resolved.method_config
    assert isinstance(config, VAECFlowConfig) and preset["description"]
    if name == "demo":
        assert resolved.published == {} and "our settings" in preset["description"]
        return
    published = resolved.published
    harmonic = 2 * published["U"] * published["S"] / (published["U"] + published["S"])
    assert published["H"] == pytest.approx(harmonic, abs=0.06)
    assert config.batch_size == 64 and config.lr == 1e-4 and config.flow_steps == 4
