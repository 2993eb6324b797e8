"""AMAZ: modulation, episode sampling, the meta-gradient, training and the Generator contract."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from gzsl.data.errors import GZSLError
from gzsl.methods.amaz import (
    AMAZ,
    AMAZConfig,
    AMAZNetworks,
    EpisodeSampler,
    Losses,
    gradient_penalty,
    inner_step,
    meta_objective,
)
from gzsl.methods.base import CheckpointSchedule, Generator, SeenData
from gzsl.nn.modulation import BatchNorm, modulate

#: Small, fast settings for the 6-class, 8-d fixture (3-way tasks fit 6 classes exactly).
TINY = dict(iterations=6, n_way=3, support_shots=2, query_shots=2, tasks_per_batch=2,
            generator_width=2.0, embedding_width=1.0, critic_widths=(2.0, 1.0),
            classifier_widths=(2.0,), attribute_discriminator_widths=(2.0,))


def _fit(data: SeenData, seed: int = 0, **overrides) -> AMAZ:
    settings = {**TINY, **overrides}
    return AMAZ(**settings).fit(data, rng=torch.Generator().manual_seed(seed))


def test_modulation_is_eq3():
    outputs, weight, bias = torch.tensor([2.0, -1.0]), torch.tensor([0.0, 100.0]), \
        torch.tensor([-100.0, 0.0])
    # (1 + 1/2) * 2 + 0 = 3 and (1 + 1) * -1 + 1/2 = -1.5
    torch.testing.assert_close(modulate(outputs, weight, bias), torch.tensor([3.0, -1.5]))


def test_plain_batch_norm_matches_the_fused_one():
    g = torch.Generator().manual_seed(0)
    plain, fused = BatchNorm(4, eps=0.8), torch.nn.BatchNorm1d(4, eps=0.8)
    with torch.no_grad():
        for module in (plain, fused):
            module.weight.copy_(torch.tensor([0.5, 1.0, 2.0, -1.0]))
            module.bias.copy_(torch.tensor([0.1, 0.0, -0.3, 1.0]))
    for _ in range(3):
        inputs = 3 * torch.randn(16, 4, generator=g) + 1
        torch.testing.assert_close(plain(inputs), fused(inputs))
    torch.testing.assert_close(plain.running_mean, fused.running_mean)
    torch.testing.assert_close(plain.running_var, fused.running_var)
    plain.eval(), fused.eval()
    torch.testing.assert_close(plain(inputs), fused(inputs))


def test_replicated_attribute_embeds_like_the_single_class():
    networks = AMAZNetworks(AMAZConfig(), feature_dim=8, semantic_dim=5, n_classes=4).eval()
    attribute = torch.rand(3, 5, generator=torch.Generator().manual_seed(0))
    single = networks.modulation(attribute.unsqueeze(1))
    replicated = networks.modulation(attribute.unsqueeze(1).expand(3, 10, 5))
    for (w1, b1), (w2, b2) in zip(single, replicated, strict=True):
        torch.testing.assert_close(w1, w2)
        torch.testing.assert_close(b1, b2)
    widths = [w.shape[1] for w, _ in single]
    assert widths == [10, 8, 8, 8, 8]  # (z, a), three blocks, output


def test_episodes_have_disjoint_classes_and_matching_rows(tiny_seen_data):
    data = tiny_seen_data
    semantics = data.class_semantics[data.seen_classes]
    sampler = EpisodeSampler(data.features, data.labels, semantics)
    support, query = sampler.draw(5, 3, 4, 2, torch.Generator().manual_seed(0))
    assert support.features.shape == (5 * 3 * 4, 8) and query.features.shape == (5 * 3 * 2, 8)
    assert support.task_attributes.shape == (5, 3, 5)
    support_classes = support.targets.reshape(5, 3, 4)
    query_classes = query.targets.reshape(5, 3, 2)
    for task in range(5):
        assert not set(support_classes[task].flatten().tolist()) & set(
            query_classes[task].flatten().tolist())
        assert len(set(support_classes[task, :, 0].tolist())) == 3
    for episode in (support, query):
        torch.testing.assert_close(episode.attributes, semantics[episode.targets])
        # every row is an image of its class, and no image repeats within a class draw
        matches = (episode.features.unsqueeze(1) == data.features.unsqueeze(0)).all(dim=2)
        image = matches.float().argmax(dim=1)
        assert bool(matches.any(dim=1).all())
        torch.testing.assert_close(data.labels[image], episode.targets)
        per_group = image.reshape(-1, episode.rows_per_task // 3)
        assert all(len(set(row.tolist())) == len(row) for row in per_group)


def test_inner_step_meta_gradient_equals_hand_derivation():
    g = torch.Generator().manual_seed(0)
    A, b = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, generator=g,
                                                                           dtype=torch.float64)
    C, d = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, generator=g,
                                                                           dtype=torch.float64)
    theta = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    alpha = 0.05
    for first_order in (False, True):
        support_loss = 0.5 * ((A @ theta - b) ** 2).sum()
        adapted = inner_step({"w": theta}, support_loss, alpha, create_graph=not first_order)["w"]
        query_loss = 0.5 * ((C @ adapted - d) ** 2).sum()
        (meta_gradient,) = torch.autograd.grad(query_loss, theta)
        with torch.no_grad():
            expected_adapted = theta - alpha * A.T @ (A @ theta - b)
            outer = C.T @ (C @ expected_adapted - d)
            jacobian = torch.eye(3, dtype=torch.float64) - alpha * A.T @ A
            expected = outer if first_order else jacobian @ outer
        torch.testing.assert_close(adapted.detach(), expected_adapted)
        torch.testing.assert_close(meta_gradient, expected)
    ascended = inner_step({"w": theta}, 0.5 * ((A @ theta - b) ** 2).sum(), alpha, ascend=True)
    torch.testing.assert_close(ascended["w"].detach(),
                               (theta + alpha * A.T @ (A @ theta - b)).detach())


@pytest.mark.parametrize("penalty", [0.0, 2.0])
def test_meta_objective_gradient_matches_finite_differences(tiny_seen_data, penalty):
    """Exact second-order meta-gradient, also through the gradient penalty (third order)."""
    data = tiny_seen_data
    config = AMAZConfig(**{**TINY, "dropout": 0.3})
    torch.manual_seed(0)
    networks = AMAZNetworks(config, 8, 5, 6).double().train()
    semantics = data.class_semantics[data.seen_classes].double()
    sampler = EpisodeSampler(data.features.double(), data.labels, semantics)
    support, query = sampler.draw(2, 3, 2, 2, torch.Generator().manual_seed(1))
    config = dataclasses.replace(config, critic_inner_lr=0.3, modulation_inner_lr=0.3,
                                 generator_inner_lr=0.3, train_noise_std=0.5,
                                 critic_penalty=penalty)
    params = {k: v.detach().clone().requires_grad_() for k, v in networks.named_parameters()}

    def losses(p, first_order=False):  # noise and dropout masks replayed from one seed
        return meta_objective(networks, p, support, query,
                              config=dataclasses.replace(config, first_order=first_order),
                              rng=torch.Generator().manual_seed(2))

    direction_g = torch.Generator().manual_seed(3)
    for group, loss_name in (("critic", "critic"), ("modulation", "modulation"),
                             ("generator", "generator")):
        names = list(networks.group(params, group))
        direction = {n: torch.randn(params[n].shape, generator=direction_g, dtype=torch.float64)
                     for n in names}
        grads = torch.autograd.grad(losses(params)[loss_name], [params[n] for n in names])
        analytic = sum((g * direction[n]).sum() for n, g in zip(names, grads, strict=True))
        eps = 1e-6
        plus = {**params, **{n: (params[n] + eps * direction[n]).detach().requires_grad_()
                             for n in names}}
        minus = {**params, **{n: (params[n] - eps * direction[n]).detach().requires_grad_()
                              for n in names}}
        numeric = (losses(plus)[loss_name] - losses(minus)[loss_name]) / (2 * eps)
        torch.testing.assert_close(analytic, numeric.detach(), rtol=1e-5, atol=1e-8)
        # the second-order terms matter: the first-order gradient differs
        first = torch.autograd.grad(losses(params, True)[loss_name], [params[n] for n in names])
        first_order = sum((g * direction[n]).sum() for n, g in zip(names, first, strict=True))
        assert abs(float(first_order - analytic)) > 1e-6 * max(1.0, abs(float(analytic)))


def test_meta_training_lowers_the_query_losses(tiny_seen_data):
    history = []
    settings = {**TINY, "iterations": 80, "dropout": 0.0, "modulation_lr": 3e-3,
                "generator_lr": 3e-3, "critic_lr": 1e-3}
    AMAZ(**settings).fit(tiny_seen_data, rng=torch.Generator().manual_seed(0),
                         schedule=CheckpointSchedule(every=20, callback=history.append))
    assert [c.iteration for c in history] == [20, 40, 60, 80]
    first, last = history[0].losses, history[-1].losses
    assert last["attribute"] < 0.5 * first["attribute"]
    assert last["classification"] < first["classification"] - 0.3


def test_checkpoint_epochs_count_episode_rows_and_name_the_losses(tiny_seen_data):
    calls = []
    model = AMAZ(**{**TINY, "iterations": 7})
    model.fit(tiny_seen_data, rng=torch.Generator().manual_seed(0),
              schedule=CheckpointSchedule(every=3, after=3, callback=calls.append))
    assert [c.iteration for c in calls] == [3, 6, 7]
    rows = 2 * 3 * (2 + 2)
    assert calls[0].epoch == pytest.approx(3 * rows / len(tiny_seen_data.features))
    assert set(calls[0].losses) == {"critic", "penalty", "adversarial", "attribute",
                                    "classification", "real_attribute", "real_classification",
                                    "generator"}


def test_instance_weights_are_eq_13_cosines(tiny_seen_data):
    model = _fit(tiny_seen_data)
    semantics = tiny_seen_data.class_semantics[6:8]
    samples = model.sample(semantics, 5, rng=torch.Generator().manual_seed(0))
    assert model.total_iterations(len(tiny_seen_data.features)) == TINY["iterations"]

    weights = model.instance_weights(samples, semantics)
    assert weights.shape == (10,)
    assert bool((weights >= -1).all() and (weights <= 1).all())
    with torch.no_grad():
        reconstructed = model.networks_.attribute_discriminator.eval()(samples).double()
    rows = semantics.repeat_interleave(5, dim=0).double()
    cosine = (rows * reconstructed).sum(1) / (rows.norm(dim=1) * reconstructed.norm(dim=1))
    torch.testing.assert_close(weights.double(), cosine, rtol=1e-5, atol=1e-6)
    per_row = model.instance_weights(samples, semantics.repeat_interleave(5, dim=0))
    torch.testing.assert_close(per_row, weights)
    with pytest.raises(GZSLError, match="class-major"):
        model.instance_weights(samples, tiny_seen_data.class_semantics[:3])


def test_each_class_block_is_generated_from_its_own_attribute(tiny_seen_data):
    model = AMAZ(**TINY, sample_noise_std=0.0, chunk_size=4).fit(
        tiny_seen_data, rng=torch.Generator().manual_seed(0))
    semantics = tiny_seen_data.class_semantics[[6, 7]]
    both = model.sample(semantics, 5)
    torch.testing.assert_close(both[5:], model.sample(semantics[1:], 5))
    torch.testing.assert_close(both[:5], both[:1].expand(5, 8))
    assert not torch.allclose(both[0], both[5])
    model.chunk_size = 1000
    torch.testing.assert_close(model.sample(semantics, 5), both)


def test_too_few_classes_reduce_n_way_with_a_warning(tiny_seen_data):
    with pytest.warns(UserWarning, match="using 3-way tasks"):
        model = _fit(tiny_seen_data, n_way=10, iterations=1)
    assert model.n_way_ == 3
    data = tiny_seen_data
    keep = data.labels == 0
    one_class = SeenData(data.features[keep], data.labels[keep], data.class_semantics,
                         data.seen_classes[:1])
    with pytest.raises(GZSLError, match="at least 2 seen classes"):
        _fit(one_class)


def test_gradient_penalty_equals_hand_computation():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(6, 4, generator=g, dtype=torch.float64)
    fake = torch.rand(6, 4, generator=g, dtype=torch.float64)
    scale = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)

    def critic(x):  # D(x) = scale * ||x||^2 / 2, so grad_x D = scale * x
        return scale * (x ** 2).sum(dim=1) / 2

    penalty = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(7))
    mix = torch.rand(6, 1, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    norms = (mix * real + (1 - mix) * fake).norm(dim=1)
    torch.testing.assert_close(penalty, ((1.5 * norms - 1) ** 2).mean())
    (derivative,) = torch.autograd.grad(penalty, scale)  # differentiable in the critic
    torch.testing.assert_close(derivative, (2 * (1.5 * norms - 1) * norms).mean())
    weights = torch.tensor([0.6, 0.0, 0.0, 0.0], dtype=torch.float64)  # linear critic
    linear = gradient_penalty(lambda x: x @ weights, real, fake, None)
    torch.testing.assert_close(linear, torch.tensor(0.16, dtype=torch.float64))


def test_gradient_penalty_enters_the_critic_objective(tiny_seen_data):
    data = tiny_seen_data
    config = AMAZConfig(**{**TINY, "dropout": 0.0, "critic_penalty": 3.0})
    networks = AMAZNetworks(config, 8, 5, 6).train()
    params = dict(networks.named_parameters())
    sampler = EpisodeSampler(data.features, data.labels, data.class_semantics[:6])
    episode = sampler.draw(2, 3, 2, 2, torch.Generator().manual_seed(1))[0]
    fake = torch.rand(episode.features.shape, generator=torch.Generator().manual_seed(2))
    result = Losses(networks, config, torch.Generator().manual_seed(3)).critic(params, episode,
                                                                              fake)
    scores = networks.critic(torch.cat([episode.features, fake]),
                             episode.attributes.repeat(2, 1))
    n = len(fake)
    penalty = gradient_penalty(lambda x: networks.critic(x, episode.attributes),
                               episode.features, fake, torch.Generator().manual_seed(3))
    torch.testing.assert_close(result["penalty"], penalty)
    torch.testing.assert_close(result["critic"],
                               scores[:n].mean() - scores[n:].mean() - 3.0 * penalty)


def test_real_auxiliaries_fit_real_features_and_only_judge_the_fakes(tiny_seen_data):
    data = tiny_seen_data
    config = AMAZConfig(**{**TINY, "dropout": 0.0, "real_auxiliaries": True,
                           "classification_weight": 0.7})
    networks = AMAZNetworks(config, 8, 5, 6).train()
    params = dict(networks.named_parameters())
    sampler = EpisodeSampler(data.features, data.labels, data.class_semantics[:6])
    episode = sampler.draw(2, 3, 2, 2, torch.Generator().manual_seed(1))[0]
    losses = Losses(networks, config, None)
    fake = losses.synthesise(params, episode, losses.noise(episode))
    scores = networks.critic(fake, episode.attributes)
    names = {m: [k for k in params if k.startswith(m + ".")]
             for m in ("classifier", "attribute_discriminator", "generator")}

    def grads(loss, module):
        return torch.autograd.grad(loss, [params[k] for k in names[module]], retain_graph=True,
                                   allow_unused=True)

    total = losses.generator_group(params, episode, fake, scores)["generator"]
    real_only = 0.7 * losses.classification(params, episode, episode.features)
    for got, expected in zip(grads(total, "classifier"), grads(real_only, "classifier"),
                             strict=True):
        torch.testing.assert_close(got, expected)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads(total, "generator"))
    modulation = losses.modulation(params, episode, fake)["modulation"]
    real_attribute = losses.attribute(params, episode, episode.features)
    for got, expected in zip(grads(modulation, "attribute_discriminator"),
                             grads(real_attribute, "attribute_discriminator"), strict=True):
        torch.testing.assert_close(got, expected)
    off = Losses(networks, dataclasses.replace(config, real_auxiliaries=False), None)
    default = off.generator_group(params, episode, fake, scores)
    assert float(default["real_classification"]) == 0.0  # paper: C sees only the fakes
    assert any(float(g.abs().sum()) > 0 for g in grads(default["classification"], "classifier"))


@pytest.mark.parametrize("objective", ["attribute", "attribute+generator"])
def test_modulation_objective_decides_whether_l_gc_reaches_theta_am(tiny_seen_data, objective):
    data = tiny_seen_data
    config = AMAZConfig(**{**TINY, "dropout": 0.0, "modulation_objective": objective})
    model = AMAZ(config)
    torch.manual_seed(0)
    model.networks_ = AMAZNetworks(config, 8, 5, 6).train()
    sampler = EpisodeSampler(data.features, data.labels, data.class_semantics[:6])
    support, query = sampler.draw(2, 3, 2, 2, torch.Generator().manual_seed(1))
    params = dict(model.networks_.named_parameters())
    names = [k for k in params if k.startswith(("modulation.", "attribute_discriminator."))]
    result = meta_objective(model.networks_, params, support, query, config=config,
                            rng=torch.Generator().manual_seed(5))

    def grads(loss):
        return [torch.zeros_like(params[k]) if g is None else g for k, g in zip(
            names, torch.autograd.grad(loss, [params[k] for k in names], retain_graph=True,
                                       allow_unused=True), strict=True)]

    attribute, generator = grads(result["modulation"]), grads(result["generator"])
    assert sum(float(g.abs().sum()) for g in generator) > 0  # L_GC does depend on theta_am
    step, _ = model._outer_step(torch.Generator().manual_seed(5))
    step(support, query)
    for name, ad, gc in zip(names, attribute, generator, strict=True):
        expected = ad + gc if objective == "attribute+generator" else ad
        got = params[name].grad
        torch.testing.assert_close(torch.zeros_like(expected) if got is None else got,
                                   expected)


def test_auxiliary_pretraining_fits_the_classifier_to_real_features(tiny_seen_data):
    data = tiny_seen_data

    def accuracy(model):
        with torch.no_grad():
            logits = model.networks_.classifier.eval()(data.features)
        return float((logits.argmax(1) == data.labels).float().mean())

    plain = _fit(data, iterations=0, dropout=0.0)
    pretrained = _fit(data, iterations=0, dropout=0.0, auxiliary_pretraining=100,
                      auxiliary_lr=1e-2)
    assert accuracy(pretrained) > 0.9 > accuracy(plain) + 0.3
    for (name, before), after in zip(plain.networks_.state_dict().items(),
                                     pretrained.networks_.state_dict().values(), strict=True):
        if name.startswith(("generator.", "critic.", "modulation.")):
            torch.testing.assert_close(before, after)


def test_extra_critic_steps_update_only_the_critic(tiny_seen_data, monkeypatch):
    steps = []
    original = torch.optim.Adam.step

    def counting(self, *args, **kwargs):
        steps.append(sum(p.numel() for group in self.param_groups for p in group["params"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counting)
    model = _fit(tiny_seen_data, iterations=2, critic_steps=3)
    critic_size = sum(p.numel() for p in model.networks_.critic.parameters())
    assert steps.count(critic_size) == 2 * 3 and len(steps) == 2 * 3 + 2 * 2


@pytest.mark.parametrize("activation", ["none", "relu", "sigmoid"])
def test_output_activation(tiny_seen_data, activation):
    model = _fit(tiny_seen_data, iterations=2, output_activation=activation)
    samples = model.sample(tiny_seen_data.class_semantics, 50,
                           rng=torch.Generator().manual_seed(0))
    if activation == "relu":
        assert float(samples.min()) == 0.0
    elif activation == "sigmoid":
        assert float(samples.min()) > 0.0 and float(samples.max()) < 1.0
    else:
        assert float(samples.min()) < 0.0  # the supplement's plain FC output is unbounded


def test_class_scope_modulates_each_row_by_its_own_class(tiny_seen_data):
    data = tiny_seen_data
    config = AMAZConfig(**{**TINY, "dropout": 0.0, "modulation_scope": "class"})
    networks = AMAZNetworks(config, 8, 5, 6).eval()
    params = dict(networks.named_parameters())
    episode = EpisodeSampler(data.features, data.labels, data.class_semantics[:6]).draw(
        2, 3, 2, 2, torch.Generator().manual_seed(1))[0]
    noise = torch.randn(len(episode.features), 5, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        per_class = Losses(networks, config, None).synthesise(params, episode, noise)
        rows = networks.modulation(episode.attributes.unsqueeze(1))
        expected = networks.generator(noise, episode.attributes, rows)
        task = Losses(networks, AMAZConfig(**{**TINY, "dropout": 0.0}), None).synthesise(
            params, episode, noise)
    torch.testing.assert_close(per_class, expected)
    assert not torch.allclose(task, expected)


def test_invalid_settings_are_user_errors():
    with pytest.raises(GZSLError, match="output_activation"):
        AMAZConfig(output_activation="tanh")
    with pytest.raises(GZSLError, match="modulation_scope"):
        AMAZConfig(modulation_scope="row")
    with pytest.raises(GZSLError, match="critic_steps"):
        AMAZConfig(critic_steps=0)
    with pytest.raises(GZSLError, match="critic_penalty"):
        AMAZConfig(critic_penalty=-1.0)


def test_epoch_budget_scales_with_the_training_set(tiny_seen_data):
    model = AMAZ(**{**TINY, "epochs": 2.0})
    rows = 2 * 3 * (2 + 2)  # tasks_per_batch * n_way * (support + query shots)
    assert model.total_iterations(180) == 15 == math.ceil(2.0 * 180 / rows)
    assert model.total_iterations(181) == 16 and model.total_iterations(1) == 1
    assert AMAZ(**TINY).total_iterations(10_000) == TINY["iterations"]
    calls = []
    model.fit(tiny_seen_data, rng=torch.Generator().manual_seed(0),
              schedule=CheckpointSchedule(every=100, callback=calls.append))
    assert [c.iteration for c in calls] == [15]
    assert calls[0].epoch == pytest.approx(15 * rows / len(tiny_seen_data.features))
    with pytest.raises(GZSLError, match="epochs"):
        AMAZConfig(epochs=0.0)


def test_weight_average_follows_its_recurrence_and_feeds_synthesis(tiny_seen_data, tmp_path):
    decay = 0.8
    model = AMAZ(**{**TINY, "weight_average": decay, "dropout": 0.0})
    seen: list[tuple[dict, dict]] = []

    def callback(checkpoint) -> None:
        current = {k: v.clone() for k, v in model.networks_.state_dict().items()
                   if k in model.average_}
        seen.append((current, {k: v.clone() for k, v in model.average_.items()}))

    model.fit(tiny_seen_data, rng=torch.Generator().manual_seed(0),
              schedule=CheckpointSchedule(every=1, callback=callback))
    assert len(seen) == TINY["iterations"] and seen[0][1]
    assert all(k.startswith(("generator.", "modulation.")) for k in seen[0][1])
    for (_, before), (current, after) in zip(seen, seen[1:], strict=False):
        for name, value in after.items():
            if value.is_floating_point():
                torch.testing.assert_close(value, decay * before[name]
                                           + (1 - decay) * current[name])
    last, average = seen[-1]
    assert any(not torch.equal(last[k], v) for k, v in average.items())  # not the last weights

    semantics = tiny_seen_data.class_semantics[6:]
    averaged = model.sample(semantics, 4, rng=torch.Generator().manual_seed(1))
    model.save(tmp_path / "g.pt")
    reloaded = Generator.load(tmp_path / "g.pt")
    torch.testing.assert_close(
        reloaded.sample(semantics, 4, rng=torch.Generator().manual_seed(1)), averaged)
    model.networks_.load_state_dict(model.average_, strict=False)
    model.average_ = None  # the last weights, now equal to the average
    torch.testing.assert_close(
        model.sample(semantics, 4, rng=torch.Generator().manual_seed(1)), averaged)
    with pytest.raises(GZSLError, match="weight_average"):
        AMAZConfig(weight_average=1.0)
