"""Throughput of studies: trials per hour with ``--jobs 1`` and ``--jobs N``, and the
study machinery's overhead per trial.

Runs one grid study (one parameter, ``--values`` points, ``--seeds`` seeds per trial) in
a fresh temporary folder once per ``--jobs`` value, each worker with ``--threads`` torch
threads, and prints JSON: wall seconds, trials per hour, and per trial the seconds spent
outside the runs' own training and scoring (trial duration in Optuna minus the runs'
``seconds``: data loading, configuration, storage, locks, reading results).

    python benchmarks/studies.py                      # gaussian on demo, jobs 1 and 2
    python benchmarks/studies.py --method gsmflow --param method.perturbation \
        --values 0.05 0.15 0.3 0.5 --jobs 1 2

Figures measured so far are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from gzsl.experiments.rundir import RunDir
from gzsl.experiments.studies import parse_study
from gzsl.experiments.studies.report import load_trials
from gzsl.experiments.studies.running import run_study


def study_text(args: argparse.Namespace) -> str:
    values = ", ".join(args.values)
    sets = ", ".join(f'"{s}"' for s in args.set)
    return (f'method = "{args.method}"\ndataset = "{args.dataset}"\n'
            f'seeds = [{", ".join(str(s) for s in range(args.seeds))}]\nsampler = "grid"\n'
            f"set = [{sets}]\n[space]\n\"{args.param}\" = [{values}]\n")


def measure(args: argparse.Namespace, jobs: int) -> dict:
    spec = parse_study(study_text(args), "benchmark.toml")
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        run_study(spec, Path(folder) / "study", jobs=jobs, root=args.root, device=args.device,
                  threads=args.threads, log=lambda line: None)
        wall = time.perf_counter() - started
        trials = [t for t in load_trials(Path(folder) / "study")[1]
                  if t.state.name == "COMPLETE"]
        overheads = []
        for trial in trials:
            duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
            runs = sum(RunDir(Path(folder) / "study" / trial.user_attrs["trial_dir"]
                              / f"seed{s}").results()["seconds"] for s in spec.seeds)
            overheads.append(duration - runs)
    return {"jobs": jobs, "threads_per_worker": args.threads, "trials": len(trials),
            "seeds_per_trial": args.seeds, "wall_seconds": round(wall, 1),
            "trials_per_hour": round(3600 * len(trials) / wall, 1),
            "overhead_seconds_per_trial": {
                "mean": round(statistics.fmean(overheads), 2),
                "max": round(max(overheads), 2)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="gaussian")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--root", default=None)
    parser.add_argument("--param", default="method.ridge")
    parser.add_argument("--values", nargs="+", default=["0.1", "0.3", "1.0", "3.0", "10.0",
                                                        "30.0"])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(json.dumps([measure(args, jobs) for jobs in args.jobs], indent=2))


if __name__ == "__main__":
    main()
