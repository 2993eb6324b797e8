"""Shared pieces of the method interface."""

import io
import sys

import torch

from gzsl.methods.base import cpu_copy, deterministic_algorithms, show_progress


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
