"""The Generator contract, checked the same way for every registered method.

Every built-in method, and a method defined outside the package (the one documented in
docs/adding-a-method.md, registered as a plugin would be), must: sample class-major blocks
of the right shape, dtype and device; be deterministic under a seed; save and load to
identical samples; call back per schedule and stop when asked; refuse to sample before
``fit``; and reject bad settings. Method-specific maths stays in each method's own tests.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from conftest import load_documented_method

from gzsl.data.errors import GZSLError
from gzsl.methods.base import (
    CheckpointSchedule,
    Generator,
    SeenData,
    available_methods,
    config_from_dict,
    get_method,
)

#: Small, fast settings per method for the 6-class, 8-d ``tiny_seen_data`` fixture.
TINY: dict[str, dict] = {
    "gaussian": {},
    "gsmflow": dict(epochs=3, batch_size=64, coupling_blocks=2, hidden_dim=16,
                    global_semantic_dim=8),
    "vaecflow": dict(iterations=6, encoder_hidden=(16, 16), decoder_hidden=8,
                     coupling_hidden=8, batch_size=32, initialisation_size=64),
    "amaz": dict(iterations=5, n_way=3, support_shots=2, query_shots=2, tasks_per_batch=2),
    "linear-mean": dict(iterations=6, batch_size=16),
}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=list(TINY))
def method(request, registry, monkeypatch) -> type[Generator]:
    """Each method of :data:`TINY`; ``linear-mean`` is the documented outside method."""
    if request.param == "linear-mean":
        load_documented_method(monkeypatch)
    return get_method(request.param)


def _make(method: type[Generator]) -> Generator:
    return method(**TINY[method.name])


def _fit(method: type[Generator], data: SeenData, seed: int = 0,
         schedule: CheckpointSchedule | None = None) -> Generator:
    rng = torch.Generator(device=data.device).manual_seed(seed)
    return _make(method).fit(data, rng=rng, schedule=schedule)


def _draw(model: Generator, semantics: torch.Tensor, n: int = 6, seed: int = 5) -> torch.Tensor:
    return model.sample(semantics, n, rng=torch.Generator(device=model.device).manual_seed(seed))


def test_every_built_in_method_is_checked():
    built_in = {name for name, cls in available_methods().items()
                if cls.__module__.startswith("gzsl.")}
    assert built_in <= set(TINY), f"add tiny settings for {sorted(built_in - set(TINY))}"


@pytest.mark.parametrize("device", DEVICES)
def test_sample_shape_dtype_device_and_class_major_blocks(method, tiny_seen_data, device):
    data = SeenData(*(t.to(device) for t in dataclasses.astuple(tiny_seen_data)))
    model = _fit(method, data)
    assert model.device.type == device
    semantics = data.class_semantics[[6, 7]]
    samples = _draw(model, semantics, n=40)
    assert samples.shape == (80, data.feature_dim) and samples.dtype == torch.float32
    assert samples.device.type == device and bool(torch.isfinite(samples).all())
    assert _draw(model, semantics, n=0).shape == (0, data.feature_dim)
    # Rows come in class-major blocks: with the same noise (one seed, drawn in row order),
    # block k is what a request of class k alone in every block gives at that position.
    first = _draw(model, semantics[[0, 0]], n=40)
    second = _draw(model, semantics[[1, 1]], n=40)
    assert torch.equal(samples, torch.cat([first[:40], second[40:]]))
    assert not torch.equal(first, second)


def test_deterministic_under_a_seed(method, tiny_seen_data):
    semantics = tiny_seen_data.class_semantics[6:]
    first, second = _fit(method, tiny_seen_data), _fit(method, tiny_seen_data)
    assert torch.equal(_draw(first, semantics), _draw(second, semantics))
    assert not torch.equal(_draw(first, semantics, seed=5), _draw(first, semantics, seed=6))
    if method.name != "gaussian":  # a closed-form fit draws nothing
        other = _fit(method, tiny_seen_data, seed=1)
        assert not torch.equal(_draw(first, semantics), _draw(other, semantics))


def test_save_and_load_give_identical_samples(method, tiny_seen_data, tmp_path: Path):
    model = _fit(method, tiny_seen_data)
    model.save(tmp_path / "model.pt")
    global_rng = torch.get_rng_state()
    loaded = Generator.load(tmp_path / "model.pt")
    assert torch.equal(torch.get_rng_state(), global_rng)  # loading draws nothing
    assert type(loaded) is method and loaded.config == model.config
    semantics = tiny_seen_data.class_semantics[6:]
    samples = _draw(model, semantics)
    assert torch.equal(_draw(loaded, semantics), samples)
    weights = model.instance_weights(samples, semantics)
    if weights is not None:
        assert torch.equal(loaded.instance_weights(samples, semantics), weights)


def test_checkpoints_follow_the_schedule_and_a_true_callback_stops(method, tiny_seen_data):
    total = _make(method).total_iterations(len(tiny_seen_data.features))
    seen = []
    _fit(method, tiny_seen_data, schedule=CheckpointSchedule(every=2, callback=seen.append))
    expected = sorted({*range(2, total + 1, 2), total})
    assert [c.iteration for c in seen] == expected
    epochs = [c.epoch for c in seen]
    assert epochs == sorted(epochs) and epochs[0] > 0
    assert all(c.losses and all(isinstance(v, float) for v in c.losses.values())
               for c in seen)
    late = []
    _fit(method, tiny_seen_data,
         schedule=CheckpointSchedule(every=2, after=3, at=frozenset({1}), callback=late.append))
    assert [c.iteration for c in late] == sorted({1, *(i for i in expected if i >= 3), total})

    stopped = []
    _fit(method, tiny_seen_data,
         schedule=CheckpointSchedule(every=2, callback=lambda c: stopped.append(c) or True))
    assert [c.iteration for c in stopped] == expected[:1]


def test_unfitted_model_says_so(method, tiny_seen_data):
    model = _make(method)
    for call in (lambda: model.sample(tiny_seen_data.class_semantics, 2), model.state_dict,
                 lambda: model.device):
        with pytest.raises(GZSLError, match=f"{method.name} is not fitted: call fit"):
            call()


def test_unknown_settings_are_rejected_naming_the_valid_ones(method):
    with pytest.raises(GZSLError, match="unknown setting.*no_such_setting.*valid: "):
        config_from_dict(method.Config, {**TINY[method.name], "no_such_setting": 1})
    assert config_from_dict(method.Config, TINY[method.name]) == _make(method).config
