"""Shared pieces of the method interface."""

import io
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import assert_same_state

from gzsl.data.errors import GZSLError
from gzsl.methods.base import (
    CheckpointSchedule,
    Generator,
    Pace,
    SeenData,
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


def test_loss_windows_end_every_k_steps_at_checkpoints_and_at_the_end():
    model = _Tiny().fit(_tiny_data(), rng=torch.Generator())
    windows, checkpoints = [], []
    schedule = CheckpointSchedule(every=4, callback=checkpoints.append, losses_every=3,
                                  on_losses=lambda *window: windows.append(window))
    with model._training_log(schedule, total=10, loss_names=("a",), device="cpu",
                             rng=torch.Generator(), optimisers={}, epoch=float) as log:
        for iteration in range(1, 11):
            log.step(iteration, torch.tensor([float(iteration)]))
    # multiples of 3, checkpoints (4, 8) and the end (10); each the mean of its own steps
    assert windows == [(3, 3, {"a": 2.0}), (4, 1, {"a": 4.0}), (6, 2, {"a": 5.5}),
                       (8, 2, {"a": 7.5}), (9, 1, {"a": 9.0}), (10, 1, {"a": 10.0})]
    assert [c.losses for c in checkpoints] == [{"a": 2.5}, {"a": 6.5}, {"a": 9.5}]


def test_a_fit_is_the_same_with_loss_windows_and_a_named_bar():
    from gzsl.methods.gsmflow import GSMFlow

    generator = torch.Generator().manual_seed(3)
    features = torch.rand(60, 6, generator=generator)
    data = SeenData(features, torch.arange(60) % 3, torch.rand(4, 5, generator=generator),
                    torch.arange(3))
    states, windows = [], []
    for schedule in (None, CheckpointSchedule(every=5, callback=lambda c: None,
                                              losses_every=2, label="validation task",
                                              on_losses=lambda *w: windows.append(w))):
        model = GSMFlow(epochs=2, hidden_dim=8, global_semantic_dim=4, batch_size=16,
                        progress=schedule is not None)
        model.fit(data, rng=torch.Generator().manual_seed(0), schedule=schedule)
        states.append(model.state_dict())
    assert_same_state(*states)
    assert [w[0] for w in windows] == [2, 4, 5, 6]  # 3 steps an epoch, 2 epochs
    assert set(windows[0][2]) == {"nll", "prototype", "total"}


def test_the_bar_names_the_phase_and_its_eta_counts_scoring_to_come():
    model = _Tiny().fit(_tiny_data(), rng=torch.Generator())
    model.progress = True
    descriptions = []
    schedule = CheckpointSchedule(every=5, label="validation task", scored_from=10,
                                  callback=lambda c: descriptions.append(log.bar.desc))
    with model._training_log(schedule, total=20, loss_names=("a",), device="cpu",
                             rng=torch.Generator(), optimisers={}, epoch=float) as log:
        for iteration in range(1, 11):
            log.step(iteration, torch.ones(1))
        text = str(log.bar)
    assert descriptions == ["validation task", "validation task: scoring iteration 10"]
    assert text.startswith("validation task: ") and "10/20" in text
    assert text.endswith(", ETA 0s]")  # both scored checkpoints left took no time


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_pace_counts_checkpoints_left_and_adds_their_timed_cost():
    schedule = CheckpointSchedule(every=10, callback=lambda c: None, scored_from=30,
                                  at=frozenset({25}))
    clock = _Clock()
    pace = Pace(total=55, start=0, schedule=schedule, clock=clock)
    assert pace.eta() is None and pace.eta_text() == "ETA ?"
    # after 0: 10, 20, 25 (at) plain; 30, 40, 50 and the end (55) scored
    assert pace.checkpoints_left() == (4, 3)
    clock.now = 10.0  # 10 steps in 10 s, then a plain checkpoint of 2 s
    pace.step(10)
    with pace.checkpoint(10):
        clock.now += 2.0
    assert pace.checkpoints_left() == (4, 2)
    seconds, untimed = pace.eta()
    assert seconds == pytest.approx(45 * 1.0 + 2 * 2.0) and untimed
    assert pace.eta_text() == "ETA 49s + scoring"
    clock.now += 20.0  # to iteration 30 in 20 s, then a scored checkpoint of 30 s
    pace.step(30)
    with pace.checkpoint(30):
        clock.now += 30.0
    seconds, untimed = pace.eta()
    assert pace.checkpoints_left() == (3, 0) and not untimed
    assert seconds == pytest.approx(25 * 1.0 + 3 * 30.0)
    assert pace.eta_text() == "ETA 1m55s"
    never = Pace(total=55, start=0, schedule=CheckpointSchedule(every=10,
                                                                callback=lambda c: None))
    assert never.checkpoints_left() == (0, 6)
