"""Several seeds of one configuration, summarised as mean and standard deviation.

``reproduce`` runs a preset over seeds and sets the result beside the published numbers;
``ablate`` does the same for each of a method's named ablations (its ``ablations`` table).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gzsl.data.dataset import GZSLData
from gzsl.data.errors import GZSLError
from gzsl.experiments.config import ExperimentConfig, resolve
from gzsl.experiments.resume import comparable_config, resume_run
from gzsl.experiments.rundir import RunDir
from gzsl.experiments.runner import Log, RunResult, is_out_of_core, load_data, run_experiment
from gzsl.methods.base import get_method

METRICS: tuple[str, ...] = ("U", "S", "H", "T1")


@dataclass(frozen=True)
class Summary:
    """Mean and standard deviation (sample, 0 for one seed) of each metric over seeds."""

    label: str
    selection: str
    seeds: tuple[int, ...]
    mean: dict[str, float]
    std: dict[str, float]
    published: dict[str, Any]


def summarise(label: str, results: list[RunResult]) -> Summary:
    """Aggregate runs of one configuration (all must share the selection protocol)."""
    if not results:
        raise ValueError("no results to summarise")
    selections = {r.selection for r in results}
    if len(selections) != 1:
        raise ValueError(f"cannot pool selection protocols {sorted(selections)}")
    mean, std = {}, {}
    for metric in METRICS:
        values = [getattr(r, metric) for r in results]
        mean[metric] = statistics.fmean(values)
        std[metric] = statistics.stdev(values) if len(values) > 1 else 0.0
    return Summary(label, results[0].selection, tuple(r.seed for r in results), mean, std,
                   results[0].published)


def run_seeds(method: str, dataset: str, seeds: list[int], *, root: str | Path | None = None,
              preset: str | None = None, overrides: tuple[str, ...] = (),
              selection: str = "val", device: str = "auto", out: str | Path | None = None,
              data: GZSLData | None = None, log: Log | None = None,
              resume: bool = False, overwrite: bool = False, jobs: int = 1) -> list[RunResult]:
    """One run per seed, each with its own run directory ``out/seed<N>`` when ``out`` is set.

    With ``resume``, a seed whose directory holds a finished run of the same settings is
    read back instead of run again, and an interrupted one is continued (see
    :func:`gzsl.experiments.resume.resume_run`); with ``overwrite``, seeds are run again
    over what their folders hold; with neither, a folder that holds anything is an error.
    With ``jobs`` > 1 the seeds run in that many worker processes, each with its share of
    the cores as torch threads; every run is the one a sequential call would make.
    """
    configs = {seed: resolve(method, dataset, preset=preset, overrides=overrides, seed=seed,
                             selection=selection, device=device) for seed in seeds}
    plans = {seed: _plan(Path(out) / f"seed{seed}" if out is not None else None, configs[seed],
                         resume, overwrite) for seed in seeds}  # every refusal before any work
    if jobs > 1 and len(seeds) > 1:
        return _parallel_seeds(seeds, jobs, log, method=method, dataset=dataset, root=root,
                               preset=preset, overrides=overrides, selection=selection,
                               device=device, out=out, resume=resume, overwrite=overwrite)
    results = []
    for seed in seeds:
        config, (action, run_dir) = configs[seed], plans[seed]
        if log:
            log(f"seed {seed}")
        if action == "read":
            if log:
                log(f"  finished before: reading {run_dir / 'results.json'}")
            results.append(read_result(run_dir))
            continue
        if data is None and not is_out_of_core(config.dataset):
            data = load_data(config, root)
        if action == "resume":
            results.append(resume_run(run_dir, root=root, device=device, data=data, log=log))
        else:
            results.append(run_experiment(config, root=root, out=run_dir, data=data,
                                          log=log, overwrite=overwrite))
    return results


def _parallel_seeds(seeds: list[int], jobs: int, log: Log | None, **settings: Any
                    ) -> list[RunResult]:
    """Each seed in its own worker process (``spawn``), at most ``jobs`` at once."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from gzsl.threads import worker_threads

    threads = worker_threads(jobs)
    if log:
        log(f"{len(seeds)} seeds in {min(jobs, len(seeds))} worker processes, {threads} torch "
            f"thread(s) each")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(seeds)), mp_context=context) as pool:
        futures = {seed: pool.submit(_seed_worker, seed, threads, settings) for seed in seeds}
        results = []
        for seed in seeds:
            results.append(futures[seed].result())
            if log:
                log(f"seed {seed} done: H {results[-1].H:.2f}")
    return results


def _seed_worker(seed: int, threads: int, settings: dict[str, Any]) -> RunResult:
    """One seed of :func:`run_seeds` in a worker process with ``threads`` torch threads."""
    import torch

    torch.set_num_threads(threads)
    return run_seeds(seeds=[seed], **settings)[0]


def _plan(run_dir: Path | None, config: ExperimentConfig, resume: bool, overwrite: bool
          ) -> tuple[str, Path | None]:
    """``run``, ``read`` (finished before) or ``resume`` for one seed's directory."""
    if run_dir is None:
        return "run", None
    folder = RunDir(run_dir)
    status = folder.status
    if status == "new" or (overwrite and not resume):
        folder.check(overwrite=overwrite)
        return "run", run_dir
    if not resume or status == "foreign":
        folder.check()  # the refusal that names the folder's state and the fixes
    if not same_settings(run_dir, config):
        raise GZSLError(f"{run_dir} holds a run with other settings; --resume continues "
                        f"only the same command (or choose another --out)")
    return ("read" if status == "finished" else "resume"), run_dir


def same_settings(run_dir: Path, config: ExperimentConfig) -> bool:
    """Whether the run in ``run_dir`` was made with ``config`` (its device aside)."""
    saved = RunDir(run_dir).config()
    return comparable_config(saved) == comparable_config(config.to_dict())


def read_result(run_dir: Path) -> RunResult:
    """The :class:`RunResult` a finished run wrote to ``results.json``."""
    folder = RunDir(run_dir)
    results = folder.results()
    try:
        return RunResult.from_dict(results)
    except (GZSLError, TypeError) as error:
        raise GZSLError(f"{folder.file('results.json')}: {error}") from error


def ablation_overrides(method: str, names: list[str] | None = None) -> dict[str, tuple[str, ...]]:
    """``--set``-style overrides of each named ablation of ``method`` ("full" first)."""
    table = get_method(method).ablations
    if not table:
        raise GZSLError(f"method {method!r} defines no ablations")
    chosen = names or list(table)
    unknown = [n for n in chosen if n not in table]
    if unknown:
        raise GZSLError(f"unknown ablation(s) {', '.join(unknown)}; available: {', '.join(table)}")
    return {name: tuple(f"method.{k}={_toml(v)}" for k, v in table[name].items())
            for name in chosen}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)
