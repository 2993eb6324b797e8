"""How many CPU threads PyTorch uses: the CPUs a scheduler grants, not one per core.

PyTorch's default (one thread per core) oversubscribes a busy machine: every small
operation of these models waits for threads the operating system has given to other
jobs. Measured on a 2-core machine with other jobs running (benchmarks/README.md):
``gzsl train gsmflow demo --set method.epochs=4`` and the AWA2-size GSMFlow step were
several times slower with two threads than with one. Hence the default:

1. ``--threads N`` (:func:`apply_threads` with ``requested``), when given;
2. else ``OMP_NUM_THREADS``, when set (PyTorch has read it already; it is kept);
3. else, when a scheduler grants this process fewer CPUs than the machine has (CPU
   affinity, a cgroup ``cpu.max`` quota, ``SLURM_CPUS_PER_TASK``), those CPUs: they
   are this job's, whatever else runs on the machine;
4. else the cores nobody else is using: the machine's CPUs less the one-minute load
   average, at least one.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from gzsl.data.errors import GZSLError

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and why it was chosen (recorded in ``metadata.json``)."""

    threads: int
    reason: str


def affinity_cpus() -> int | None:
    """CPUs this process may run on (``os.sched_getaffinity``), None where unknown."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def cgroup_cpus(root: Path | None = None) -> float | None:
    """CPUs a cgroup quota allows (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), None if none.

    ``root`` is the cgroup file system (default :data:`CGROUP_ROOT`).
    """
    root = CGROUP_ROOT if root is None else root
    try:
        text = (root / "cpu.max").read_text().split()
        if len(text) == 2 and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, ZeroDivisionError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def slurm_cpus() -> int | None:
    """``SLURM_CPUS_PER_TASK`` as a number, None when unset or not a positive integer."""
    try:
        value = int(os.environ.get("SLURM_CPUS_PER_TASK", ""))
    except ValueError:
        return None
    return value if value > 0 else None


def granted_cpus() -> tuple[int, str] | None:
    """The fewest CPUs any scheduler limit grants, and which limit, when one is below the
    machine's CPU count; None when nothing limits this process."""
    machine = os.cpu_count() or 1
    limits: list[tuple[int, str]] = []
    affinity = affinity_cpus()
    if affinity is not None and affinity < machine:
        limits.append((affinity, "CPU affinity"))
    quota = cgroup_cpus()
    if quota is not None and quota < machine:
        limits.append((max(1, math.ceil(quota)), "cgroup cpu.max quota"))
    slurm = slurm_cpus()
    if slurm is not None:
        limits.append((slurm, "SLURM_CPUS_PER_TASK"))
    return min(limits) if limits else None


def worker_threads(jobs: int, cores: int | None = None) -> int:
    """Each of ``jobs`` worker processes' share of the CPUs this process is granted (or the
    machine's) as torch threads, at least one, so parallel workers never oversubscribe."""
    if cores is None:
        granted = granted_cpus()
        cores = granted[0] if granted is not None else (os.cpu_count() or 1)
    return max(1, cores // max(1, jobs))


def free_cpus() -> int:
    """The machine's CPUs less its one-minute load average, at least one."""
    machine = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return machine
    return max(1, min(machine, machine - round(load)))


def default_threads() -> ThreadChoice:
    """The thread count without ``--threads``: see the module's docstring."""
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return ThreadChoice(int(omp), "OMP_NUM_THREADS")
    granted = granted_cpus()
    if granted is not None:
        return ThreadChoice(granted[0], granted[1])
    return ThreadChoice(free_cpus(), "idle cores (CPUs less the load average)")


def choose_threads(requested: int | None = None) -> ThreadChoice:
    """``requested`` (``--threads``) when given, else :func:`default_threads`."""
    if requested is not None:
        if requested < 1:
            raise GZSLError(f"--threads must be at least 1, got {requested}")
        return ThreadChoice(requested, "--threads")
    return default_threads()


_applied: ThreadChoice | None = None


def apply_threads(requested: int | None = None) -> ThreadChoice:
    """Choose the thread count and set it in PyTorch; remembered for :func:`applied`."""
    import torch

    global _applied
    choice = choose_threads(requested)
    torch.set_num_threads(choice.threads)
    _applied = choice
    return choice


def applied() -> ThreadChoice | None:
    """What :func:`apply_threads` last set in this process (None: PyTorch's own default)."""
    return _applied
