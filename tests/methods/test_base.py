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
