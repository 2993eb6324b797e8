"""The thread policy: --threads, OMP_NUM_THREADS, scheduler grants, idle cores."""

from __future__ import annotations

import pytest
import torch

from gzsl import threads
from gzsl.data.errors import GZSLError


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """An 8-CPU machine with no limits and no load, no OMP_NUM_THREADS or SLURM setting."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(threads, "CGROUP_ROOT", tmp_path)
    return tmp_path


def test_an_idle_machine_without_limits_uses_every_core(machine):
    assert threads.default_threads().threads == 8


def test_a_busy_machine_leaves_the_busy_cores_and_keeps_at_least_one(machine, monkeypatch):
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (5.4, 5.0, 5.0))
    assert threads.default_threads().threads == 3
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (12.0, 5.0, 5.0))
    choice = threads.default_threads()
    assert choice.threads == 1 and "load" in choice.reason


def test_cpu_affinity_is_a_grant_whatever_the_load(machine, monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {2, 3})
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (30.0, 5.0, 5.0))
    assert threads.default_threads() == threads.ThreadChoice(2, "CPU affinity")


@pytest.mark.parametrize("text, expected", [("150000 100000", 2), ("50000 100000", 1),
                                            ("400000 100000", 4)])
def test_a_cgroup_v2_quota_rounds_up_to_whole_cpus(machine, text, expected):
    (machine / "cpu.max").write_text(text + "\n")
    assert threads.default_threads() == threads.ThreadChoice(expected, "cgroup cpu.max quota")


def test_an_unlimited_or_unreadable_cgroup_is_no_limit(machine):
    (machine / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpus(machine) is None
    (machine / "cpu.max").write_text("garbage\n")
    assert threads.cgroup_cpus(machine) is None
    assert threads.default_threads().threads == 8


def test_a_cgroup_v1_quota_is_read_too(machine):
    (machine / "cpu").mkdir()
    (machine / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (machine / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cgroup_cpus(machine) == 3.0
    (machine / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert threads.cgroup_cpus(machine) is None


def test_slurm_cpus_per_task_and_the_smallest_grant_wins(machine, monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert threads.default_threads() == threads.ThreadChoice(3, "SLURM_CPUS_PER_TASK")
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1})
    assert threads.default_threads() == threads.ThreadChoice(2, "CPU affinity")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "lots")
    assert threads.slurm_cpus() is None


def test_omp_num_threads_and_threads_option_come_first(machine, monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.choose_threads() == threads.ThreadChoice(1, "OMP_NUM_THREADS")
    assert threads.choose_threads(3) == threads.ThreadChoice(3, "--threads")
    with pytest.raises(GZSLError, match="--threads must be at least 1"):
        threads.choose_threads(0)


def test_apply_threads_sets_torch_and_remembers_why(machine, monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "_applied", None)
    try:
        assert threads.apply_threads(2) == threads.ThreadChoice(2, "--threads")
        assert torch.get_num_threads() == 2
        assert threads.applied() == threads.ThreadChoice(2, "--threads")
    finally:
        torch.set_num_threads(before)
