"""GSMFlow: training, synthesis maths, anchors and ablation switches (the Generator contract
is checked in test_contract.py)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from gzsl.data.errors import GZSLError
from gzsl.methods.base import (
    Checkpoint,
    CheckpointSchedule,
    Generator,
    SeenData,
    config_from_dict,
    get_method,
)
from gzsl.methods.gsmflow import GSMFlow, GSMFlowConfig, semantic_anchors

TINY = GSMFlowConfig(epochs=4, batch_size=64, lr=1e-3, coupling_blocks=2, hidden_dim=16,
                     global_semantic_dim=8, prototype_weight=1.0, perturbation=0.05)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _fit(data: SeenData, seed: int = 0, schedule: CheckpointSchedule | None = None,
         **overrides: object) -> GSMFlow:
    model = GSMFlow(TINY, **overrides)
    rng = torch.Generator(device=data.device).manual_seed(seed)
    return model.fit(data, rng=rng, schedule=schedule)


def _record(every: int, stop_at: int | None = None) -> tuple[CheckpointSchedule, list]:
    seen: list[Checkpoint] = []

    def callback(checkpoint: Checkpoint) -> bool:
        seen.append(checkpoint)
        return stop_at is not None and checkpoint.iteration >= stop_at

    return CheckpointSchedule(every=every, callback=callback), seen


def _samples(model: GSMFlow, data: SeenData, seed: int = 5, n: int = 7) -> torch.Tensor:
    rng = torch.Generator(device=model.device).manual_seed(seed)
    return model.sample(data.class_semantics[6:], n, rng=rng)


def _same_state(a: GSMFlow, b: GSMFlow) -> bool:
    left, right = a.state_dict(), b.state_dict()
    tensors = [(left["flow"], right["flow"])]
    if left["relative_positioning"] is not None:
        tensors.append((left["relative_positioning"], right["relative_positioning"]))
    return all(torch.equal(x[k], y[k]) for x, y in tensors for k in x)


def _exact_nll(model: GSMFlow, data: SeenData) -> float:
    """Per-dimension NLL of the real features, from the Gaussian density (Eq. 3) directly."""
    with torch.no_grad():
        conditions = model.global_semantics(data.class_semantics)[data.labels]
        z, log_det = model.flow_(data.features, conditions)
        log_density = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(dim=1) + log_det
    dim = data.feature_dim
    return float(-log_density.mean() / dim - 0.5 * math.log(2 * math.pi))


def test_registered_and_config_from_preset_values() -> None:
    assert get_method("gsmflow") is GSMFlow
    config = config_from_dict(GSMFlowConfig, {"betas": [0.5, 0.9], "anchors": "all"})
    assert config.betas == (0.5, 0.9) and config.anchors == "all"
    with pytest.raises(GZSLError, match="anchors"):
        GSMFlowConfig(anchors="unseen")
    with pytest.raises(GZSLError, match="perturbation_dropout"):
        GSMFlowConfig(perturbation_dropout=1.0)


def test_defaults_are_the_awa2_reference() -> None:
    config = GSMFlowConfig()
    assert (config.epochs, config.batch_size, config.lr, config.betas) == (
        500, 256, 3e-4, (0.9, 0.999))
    assert (config.weight_decay, config.lr_step_epochs, config.lr_gamma) == (3e-6, 15, 0.92)
    assert (config.coupling_blocks, config.hidden_dim, config.clamp, config.init_scale) == (
        3, 2048, 1.0, 0.01)
    assert (config.global_semantic_dim, config.prototype_weight, config.perturbation) == (
        1024, 10.0, 0.15)
    assert (config.perturbation_dropout, config.anchors, config.permute) == (0.0, "seen", False)


def test_fit_lowers_the_nll(tiny_seen_data: SeenData) -> None:
    schedule, checkpoints = _record(every=10)
    model = _fit(tiny_seen_data, schedule=schedule, epochs=30, use_perturbation=False)
    first, last = checkpoints[0].losses, checkpoints[-1].losses
    assert last["nll"] < first["nll"] - 0.5
    assert last["prototype"] < first["prototype"]
    assert _exact_nll(model, tiny_seen_data) < first["nll"] - 0.5


def test_reported_nll_is_exact_without_perturbation_and_noisy_with_it(
        tiny_seen_data: SeenData) -> None:
    """With one batch of all images, the NLL reported at step k+1 is that of the model the
    callback sees after step k; the oracle recomputes it from the Gaussian log-density."""
    for use_perturbation in (False, True):
        exact: list[float] = []
        reported: list[float] = []
        model = GSMFlow(TINY, epochs=4, batch_size=1000, perturbation=0.2,
                        use_perturbation=use_perturbation)

        def callback(checkpoint: Checkpoint, model=model, exact=exact, reported=reported) -> None:
            reported.append(checkpoint.losses["nll"])
            exact.append(_exact_nll(model, tiny_seen_data))

        model.fit(tiny_seen_data, rng=torch.Generator().manual_seed(0),
                  schedule=CheckpointSchedule(every=1, callback=callback))
        gaps = [abs(r - e) for r, e in zip(reported[1:], exact[:-1], strict=True)]
        assert len(gaps) == 3
        if use_perturbation:
            assert min(gaps) > 1e-2
        else:
            assert max(gaps) < 1e-5


@pytest.mark.parametrize("device", DEVICES)
def test_cold_samples_are_the_flow_image_of_zero_per_class(tiny_seen_data: SeenData,
                                                          device: str) -> None:
    data = SeenData(*(t.to(device) for t in dataclasses.astuple(tiny_seen_data)))
    model = _fit(data)
    # noise std 0: every sample of class c is g(0; a_g(c)); chunks straddle the classes.
    cold = GSMFlow(dataclasses.replace(model.config, sample_noise_std=0.0), chunk_size=3)
    cold.load_state_dict(model.state_dict(), device=device)
    means = cold.sample(data.class_semantics[6:], 7)
    with torch.no_grad():
        expected = model.flow_.inverse(torch.zeros(2, 8, device=device),
                                       model.global_semantics(data.class_semantics[6:]))
    torch.testing.assert_close(means, expected.repeat_interleave(7, dim=0))
    assert (expected[0] - expected[1]).abs().max() > 1e-3


def test_sample_inverts_the_flow(tiny_seen_data: SeenData) -> None:
    model = _fit(tiny_seen_data)
    semantics = tiny_seen_data.class_semantics[6:]
    samples = _samples(model, tiny_seen_data, seed=3, n=50)
    with torch.no_grad():
        conditions = model.global_semantics(semantics).repeat_interleave(50, dim=0)
        z, _ = model.flow_(samples, conditions)
    assert abs(float(z.mean())) < 0.15 and abs(float(z.std()) - 1.0) < 0.1
    chunked = GSMFlow(model.config, chunk_size=7)
    chunked.load_state_dict(model.state_dict())
    assert chunked.sample(semantics, 50).shape == (100, 8)


def test_save_load_round_trip_without_relative_positioning(tiny_seen_data: SeenData,
                                                            tmp_path: Path) -> None:
    """The contract test covers the default architecture; this one has no RP module."""
    model = _fit(tiny_seen_data, permute=True, use_relative_positioning=False)
    model.save(tmp_path / "gsmflow.pt")
    loaded = Generator.load(tmp_path / "gsmflow.pt")
    assert loaded.relative_positioning_ is None
    assert torch.equal(_samples(loaded, tiny_seen_data), _samples(model, tiny_seen_data))


def test_anchors_on_hand_made_cosine_graph() -> None:
    # Row sums of cosines (r = 1/sqrt 2): 1 + 2r, 2 + 3r, 2 + 2r, 2 + 3r, 2 + 2r.
    tied = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [3.0, 3.0], [2.0, 0.0]])
    # max tied by rows 1 and 3 -> 1; min row 0; sorted sums [0, 2, 4, 1, 3], position 2 has
    # the value of rows 2 and 4 -> 2 (a stable sort's element 2 would be row 4).
    assert semantic_anchors(tied).tolist() == [1, 0, 2]
    # No ties: sums 1 + r, 1 + r + c, ... computed by hand for three unit vectors.
    angles = torch.tensor([0.0, 0.5, 1.4])
    vectors = torch.stack([angles.cos(), angles.sin()], dim=1) * torch.tensor([[1.0], [4.0], [0.3]])
    sums = [1 + math.cos(0.5) + math.cos(1.4), 1 + math.cos(0.5) + math.cos(0.9),
            1 + math.cos(1.4) + math.cos(0.9)]
    order = sorted(range(3), key=lambda i: sums[i])
    assert semantic_anchors(vectors).tolist() == [order[-1], order[0], order[1]]
    assert semantic_anchors(torch.ones(4, 3)).tolist() == [0, 0, 0]


def test_relative_positioning_uses_the_expected_anchor_vectors(tiny_seen_data: SeenData) -> None:
    semantics, seen = tiny_seen_data.class_semantics, tiny_seen_data.seen_classes
    seen_model = _fit(tiny_seen_data, epochs=1)
    all_model = _fit(tiny_seen_data, epochs=1, anchors="all")
    torch.testing.assert_close(seen_model.relative_positioning_.anchors,
                               semantics[seen][semantic_anchors(semantics[seen])])
    torch.testing.assert_close(all_model.relative_positioning_.anchors,
                               semantics[semantic_anchors(semantics)])


def test_seen_anchors_ignore_unseen_semantics(tiny_seen_data: SeenData) -> None:
    changed = tiny_seen_data.class_semantics.clone()
    changed[7] = torch.tensor([5.0, 0.0, 0.0, 0.0, 0.01])  # far from every other class
    moved = dataclasses.replace(tiny_seen_data, class_semantics=changed)
    assert _same_state(_fit(tiny_seen_data, epochs=2), _fit(moved, epochs=2))
    assert not _same_state(_fit(tiny_seen_data, epochs=2, anchors="all"),
                           _fit(moved, epochs=2, anchors="all"))


def test_without_prototype_loss(tiny_seen_data: SeenData) -> None:
    schedule, checkpoints = _record(every=4)
    model = _fit(tiny_seen_data, schedule=schedule, use_prototype_loss=False)
    assert all(set(c.losses) == {"nll", "total"} for c in checkpoints)
    assert all(c.losses["total"] == pytest.approx(c.losses["nll"]) for c in checkpoints)
    schedule, with_prototype = _record(every=4)
    full = _fit(tiny_seen_data, schedule=schedule)
    loss = with_prototype[0].losses
    assert loss["total"] == pytest.approx(loss["nll"] + TINY.prototype_weight * loss["prototype"])
    assert not _same_state(model, full)


def test_prototype_loss_trains_the_flow_only(tiny_seen_data: SeenData) -> None:
    """One step: the semantic module's update must not depend on the prototype weight."""
    def one_step(**overrides: object) -> GSMFlow:
        return _fit(tiny_seen_data, epochs=1, batch_size=1000, weight_decay=0.0, **overrides)

    light, heavy = one_step(prototype_weight=1.0), one_step(prototype_weight=1000.0)
    off = one_step(use_prototype_loss=False)
    for model in (heavy, off):
        positioning = model.relative_positioning_.state_dict()
        for key, value in light.relative_positioning_.state_dict().items():
            assert torch.equal(positioning[key], value), key
    assert not _same_state(light, heavy) and not _same_state(light, off)


def test_without_relative_positioning_conditions_on_raw_semantics(
        tiny_seen_data: SeenData) -> None:
    model = _fit(tiny_seen_data, use_relative_positioning=False)
    assert model.relative_positioning_ is None
    assert model.flow_.condition_dim == tiny_seen_data.semantic_dim
    semantics = tiny_seen_data.class_semantics
    assert torch.equal(model.global_semantics(semantics), semantics)
    assert _fit(tiny_seen_data).global_semantics(semantics).shape == (8, TINY.global_semantic_dim)


def test_without_perturbation_changes_training(tiny_seen_data: SeenData) -> None:
    assert not _same_state(_fit(tiny_seen_data), _fit(tiny_seen_data, use_perturbation=False))
    # perturbation 0 is the same as switching it off (no noise drawn)
    assert _same_state(_fit(tiny_seen_data, perturbation=0.0),
                       _fit(tiny_seen_data, use_perturbation=False))


def test_perturbation_dropout_masks_whole_dimensions(tiny_seen_data: SeenData) -> None:
    model = GSMFlow(TINY, perturbation_dropout=0.5)
    x = torch.zeros(64, 200)
    noise = model._perturbation(x, torch.Generator().manual_seed(0))
    kept = (noise != 0).any(dim=0)
    assert torch.equal((noise != 0).all(dim=0), kept)  # the mask is per dimension
    assert 60 < int(kept.sum()) < 140
    assert bool((GSMFlow(TINY)._perturbation(x, torch.Generator()) != 0).all())


def test_checkpoint_epochs_count_passes_over_the_data(tiny_seen_data: SeenData) -> None:
    model = GSMFlow(TINY, epochs=5)
    total = model.total_iterations(len(tiny_seen_data.features))
    assert total == 5 * (180 // 64)
    schedule, checkpoints = _record(every=3)
    model.fit(tiny_seen_data, rng=torch.Generator().manual_seed(0), schedule=schedule)
    assert checkpoints[0].epoch == pytest.approx(1.5)
    assert checkpoints[-1].epoch == pytest.approx(5.0) and model.iterations_ == total


def test_learning_rate_steps_down_once_per_lr_step_epochs(tiny_seen_data: SeenData) -> None:
    # gamma 0 zeroes the rate after the first epoch: later epochs change nothing.
    frozen = _fit(tiny_seen_data, epochs=3, lr_step_epochs=1, lr_gamma=0.0)
    assert _same_state(frozen, _fit(tiny_seen_data, epochs=1))
    assert not _same_state(frozen, _fit(tiny_seen_data, epochs=3, lr_step_epochs=2,
                                        lr_gamma=0.0))
    assert not _same_state(frozen, _fit(tiny_seen_data, epochs=3, lr_step_epochs=1,
                                        lr_gamma=0.5))


def test_small_training_set_uses_one_batch_of_everything(tiny_seen_data: SeenData) -> None:
    model = GSMFlow(TINY, batch_size=1000, epochs=3)
    assert model.total_iterations(180) == 3
    schedule, checkpoints = _record(every=1)
    model.fit(tiny_seen_data, rng=torch.Generator().manual_seed(0), schedule=schedule)
    assert [c.iteration for c in checkpoints] == [1, 2, 3]


def test_bad_labels_raise(tiny_seen_data: SeenData) -> None:
    bad = dataclasses.replace(tiny_seen_data, labels=tiny_seen_data.labels.clone().fill_(7))
    with pytest.raises(GZSLError, match="seen_classes"):
        _fit(bad)
