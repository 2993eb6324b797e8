"""Shared pieces of the method interface."""

import io
import sys
from types import SimpleNamespace

import pytest
import torch

from gzsl.data.errors import GZSLError
from gzsl.methods.base import (
    CheckpointSchedule,
    Generator,
    cpu_copy,
    deterministic_algorithms,
    show_progress,
)


def test_show_progress_follows_terminal_only_when_unset(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert show_progress(None) is False
    assert show_progress(True) is True and show_progress(False) is False


def test_cpu_copy_is_a_real_copy():
    state = {"w": torch.zeros(2), "nested": [torch.ones(1)]}
    copy = cpu_copy(state)
    state["w"] += 1
    assert torch.equal(copy["w"], torch.zeros(2)) and copy["nested"][0].item() == 1


def test_deterministic_algorithms_restores_previous_setting():
    before = torch.are_deterministic_algorithms_enabled()
    with deterministic_algorithms():
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.are_deterministic_algorithms_enabled() == before


def test_rng_on_keeps_a_generator_of_the_device_and_derives_one_otherwise():
    from gzsl.methods.base import rng_on

    rng = torch.Generator().manual_seed(3)
    assert rng_on(rng, torch.device("cpu")) is rng
    assert rng_on(rng, "cpu") is rng
    if torch.cuda.is_available():
        cuda = torch.Generator(device="cuda").manual_seed(3)
        assert rng_on(cuda, torch.device("cuda")) is cuda
        assert rng_on(cuda, torch.device("cuda:0")) is cuda
        derived = rng_on(rng, torch.device("cuda"))
        assert derived is not rng and derived.device.type == "cuda"



class _Tiny(Generator):
    """A method with one learned module, to test the base layer's shared pieces."""

    name = "test-tiny"
    Config = dict

    def fit(self, data, *, rng, schedule=None):
        self.layer_ = torch.nn.Linear(2, 2)
        self.seen_rng_ = rng
        return self

    def sample(self, semantics, n_per_class, *, rng=None):
        self.seen_rng_ = rng
        return semantics.repeat_interleave(n_per_class, dim=0)

    def state_dict(self):
        return {}

    def _training_state(self, rng, optimisers, **position):
        return position


def _tiny_data():
    return SimpleNamespace(device=torch.device("cpu"))


def test_training_log_means_checkpoints_and_stops():
    model = _Tiny().fit(_tiny_data(), rng=torch.Generator())
    seen = []

    def callback(checkpoint):
        seen.append((checkpoint, model.layer_.training))
        return checkpoint.iteration == 4

    schedule = CheckpointSchedule(every=2, callback=callback)
    stops = []
    with model._training_log(schedule, total=6, loss_names=("a", "b"), device="cpu",
                             rng=torch.Generator(), optimisers={},
                             epoch=lambda i: i / 3) as log:
        for iteration in range(1, 7):
            stops.append(log.step(iteration, torch.tensor([iteration, 10.0 * iteration]),
                                  at=iteration))
            if stops[-1]:
                break
    assert stops == [False, False, False, True]
    assert [c.iteration for c, _ in seen] == [2, 4]
    assert seen[0][0].losses == {"a": 1.5, "b": 15.0}  # means since the last checkpoint
    assert seen[1][0].losses == {"a": 3.5, "b": 35.0} and seen[1][0].epoch == 4 / 3
    assert seen[1][0].snapshot() == {"at": 4}
    assert not any(training for _, training in seen)  # eval mode inside the callback
    assert model.layer_.training  # and the previous mode after it


def test_training_log_calls_back_at_the_last_step_and_never_without_a_callback():
    model = _Tiny().fit(_tiny_data(), rng=torch.Generator())
    seen = []
    schedule = CheckpointSchedule(every=10, callback=lambda c: seen.append(c.iteration))
    for each in (schedule, None, CheckpointSchedule(every=1)):
        with model._training_log(each, total=3, loss_names=("a",), device="cpu",
                                 rng=torch.Generator(), optimisers={}, epoch=float) as log:
            for iteration in range(1, 4):
                log.step(iteration, torch.ones(1))
    assert seen == [3]


def test_unfitted_models_raise_one_clear_error():
    model = _Tiny()
    for call in (lambda: model.sample(torch.ones(2, 3), 2), model.state_dict,
                 lambda: model.device):
        with pytest.raises(GZSLError, match="test-tiny is not fitted: call fit"):
            call()


def test_device_and_modes_come_from_the_learned_modules():
    rng = torch.Generator()
    model = _Tiny().fit(_tiny_data(), rng=rng)
    assert model.seen_rng_ is rng and model.device == torch.device("cpu")
    with model._evaluating():
        assert not model.layer_.training and not torch.is_grad_enabled()
    assert model.layer_.training
    model._set_training(False)
    assert not model.layer_.training
