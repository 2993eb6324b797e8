"""One short, time-boxed check of the GPU speed targets, written as one JSON file.

Made to run once on a GPU lent for a few minutes (``benchmarks/gpu_check.sh`` sets up
Python and calls this). On features generated at AWA2's sizes (2048-d, 85-d attributes,
40 seen / 10 unseen classes, 23,527 training images; random, SYNTHETIC: timings only) it
measures, each part under its own time box, with the AWA2 presets' settings:

* ``gsmflow``: flow training iterations/s at batch 256, the time of one evaluation
  (synthesis of ``n_synthetic`` per unseen class + the final GZSL and ZSL classifiers,
  scored every epoch, on test sets of AWA2's sizes), one resume-state save, and the
  projected time of the whole preset under each selection protocol;
* ``vaecflow`` and ``amaz``: training steps/s and the projected training time;
* ``round_trip``: a fitted GSMFlow saved on the device, loaded on the CPU, saved there and
  loaded back on the device; samples with one seed must agree;
* peak memory (``torch.cuda.max_memory_allocated`` per part, host RSS).

The JSON is rewritten after every part, so a part that fails or runs out of time leaves
its error string and the other parts' figures. ``--tiny`` runs the same code at toy sizes
on any device in seconds (the test suite does, so this script cannot rot unnoticed).

    python benchmarks/gpu_check.py --out gpu_check.json          # full, on CUDA if present
    python benchmarks/gpu_check.py --tiny --device cpu --out /tmp/tiny.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import platform
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from common import evaluate, fit, generated_dataset, peak_memory, sample, synchronize

from gzsl.evaluation.classifier import SoftmaxSettings
from gzsl.evaluation.protocol import STACKING_GAMMAS, TaskTensors
from gzsl.experiments.config import ExperimentConfig, resolve
from gzsl.experiments.runner import make_generator, resolve_device
from gzsl.methods.base import (
    Checkpoint,
    CheckpointSchedule,
    Generator,
    atomic_torch_save,
    deterministic_algorithms,
    get_method,
)


@dataclass(frozen=True)
class Sizes:
    """Dimensions and image counts of one task."""

    feature_dim: int
    semantic_dim: int
    n_seen: int
    n_unseen: int
    n_train: int
    n_test_seen: int
    n_test_unseen: int


#: AWA2 in the xlsa17 split files (att 85 x 50; trainval / test_seen / test_unseen counts).
AWA2 = Sizes(2048, 85, 40, 10, 23527, 5882, 7913)
#: The validation task ``--selection val`` cuts from AWA2's trainval (gzsl.data.dataset:
#: 27 train classes less 20 % of each held out as "test seen", the 13 val classes as
#: "unseen"); counted once from the real att_splits.mat and labels.npy.
AWA2_VALIDATION = Sizes(2048, 85, 27, 13, 12950, 3237, 7340)
TINY = Sizes(16, 85, 40, 10, 400, 100, 100)


@dataclass(frozen=True)
class Timing:
    """How one method's training is timed: checkpoints every ``every`` steps (the only
    host-device syncs), ``warmup`` steps untimed, then up to ``steps`` or ``seconds``."""

    every: int
    warmup: int
    steps: int
    seconds: float


@dataclass(frozen=True)
class Plan:
    """Everything the check does, at full size or tiny; ``boxes`` are per-part time limits."""

    sizes: Sizes
    timings: dict[str, Timing]
    overrides: dict[str, tuple[str, ...]]
    boxes: dict[str, float]
    budget: float


FULL = Plan(
    sizes=AWA2,
    timings={"gsmflow": Timing(every=25, warmup=50, steps=4000, seconds=25.0),
             "vaecflow": Timing(every=50, warmup=100, steps=5000, seconds=20.0),
             "amaz": Timing(every=10, warmup=20, steps=1000, seconds=25.0)},
    overrides={"gsmflow": (), "vaecflow": (), "amaz": ()},
    boxes={"setup": 60, "gsmflow_train": 75, "gsmflow_evaluation": 120, "round_trip": 40,
           "vaecflow": 50, "amaz": 60},
    budget=400.0,
)
TINY_PLAN = Plan(
    sizes=TINY,
    timings={name: Timing(every=1, warmup=2, steps=4, seconds=10.0)
             for name in ("gsmflow", "vaecflow", "amaz")},
    overrides={
        "gsmflow": ("method.hidden_dim=16", "method.global_semantic_dim=8",
                    "method.batch_size=32", "evaluation.n_synthetic=20",
                    "evaluation.classifier_epochs=2", "evaluation.classifier_batch_size=64"),
        "vaecflow": ("method.encoder_hidden=[16, 16]", "method.decoder_hidden=16",
                     "method.coupling_hidden=16", "method.initialisation_size=64"),
        "amaz": ("method.tasks_per_batch=2",),
    },
    boxes=dict.fromkeys(("setup", "gsmflow_train", "gsmflow_evaluation", "round_trip",
                         "vaecflow", "amaz"), 60.0),
    budget=300.0,
)


class TimeBoxError(Exception):
    """A part ran past its time box."""


@contextlib.contextmanager
def time_box(seconds: float) -> Iterator[None]:
    """Raise :class:`TimeBoxError` in the block after ``seconds`` (main thread, POSIX)."""
    def expire(signum: int, frame: Any) -> None:
        raise TimeBoxError(f"time box of {seconds:.0f} s exceeded")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class StepTimer:
    """Checkpoint callback that times training steps and stops the fit when done.

    ``on_last`` runs inside the last callback, while the checkpoint's live training state
    can still be snapshotted.
    """

    timing: Timing
    device: torch.device
    marks: list[tuple[int, float]] = field(default_factory=list)
    on_last: Callable[[Checkpoint], None] | None = None

    def __call__(self, checkpoint: Checkpoint) -> bool:
        synchronize(self.device)
        now = time.perf_counter()
        if checkpoint.iteration < self.timing.warmup:
            return False
        self.marks.append((checkpoint.iteration, now))
        first_iteration, first_time = self.marks[0]
        last = (checkpoint.iteration - first_iteration >= self.timing.steps
                or now - first_time >= self.timing.seconds)
        if last and self.on_last is not None:
            self.on_last(checkpoint)
        return last

    def summary(self) -> dict[str, Any]:
        if len(self.marks) < 2:
            raise RuntimeError("training ended before two timed checkpoints")
        (first, start), (last, stop) = self.marks[0], self.marks[-1]
        return {"warmup_iterations": first, "timed_iterations": last - first,
                "timed_seconds": stop - start, "iterations_per_second": (last - first)
                / (stop - start), "seconds_per_iteration": (stop - start) / (last - first),
                "sync_every": self.timing.every}


class Check:
    """Runs the parts in order and keeps the report written to ``path`` after each."""

    def __init__(self, plan: Plan, device: torch.device, path: Path, mode: str) -> None:
        self.plan, self.device, self.path = plan, device, path
        self.started = time.perf_counter()
        self.models: dict[str, Generator] = {}
        self.peaks: dict[str, float] = {}
        self.report: dict[str, Any] = {
            "script": "benchmarks/gpu_check.py", "mode": mode,
            "data": "generated on the fly: random features (SYNTHETIC), timings only",
            "sizes": dataclasses.asdict(plan.sizes), "errors": {}}

    def setup(self, result: dict[str, Any]) -> None:
        """Describe the machine; generate the data and move it to the device."""
        self.report["environment"] = environment(self.device)
        sizes = self.plan.sizes
        start = time.perf_counter()
        data = generated_dataset(sizes.n_train, sizes.n_test_seen, sizes.n_test_unseen,
                                 sizes.feature_dim, sizes.semantic_dim, sizes.n_seen,
                                 sizes.n_unseen)
        result["generate_seconds"] = time.perf_counter() - start
        self.task = TaskTensors.from_task(data.task("final"), self.device)
        synchronize(self.device)
        result["seconds"] = time.perf_counter() - start

    def config(self, method: str) -> ExperimentConfig:
        overrides = self.plan.overrides[method]
        return resolve(method, "awa2", preset="awa2", overrides=overrides,
                       selection="test-oracle", device=str(self.device))

    def part(self, name: str, work: Callable[[dict[str, Any]], None]) -> None:
        """Run ``work`` (which fills its dict as it goes) under its time box; keep errors."""
        result: dict[str, Any] = {}
        self.report[name] = result
        left = self.plan.budget - (time.perf_counter() - self.started)
        box = min(self.plan.boxes[name], left)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        try:
            if left <= 1:
                raise TimeBoxError("no time left in the check's budget")
            with time_box(box), deterministic_algorithms():
                work(result)
        except Exception as error:  # every failure is recorded; the other parts still run
            traceback.print_exc()
            result["error"] = self.report["errors"][name] = f"{type(error).__name__}: {error}"
        with contextlib.suppress(Exception):  # a broken device is reported above already
            synchronize(self.device)
        result["part_seconds"] = time.perf_counter() - start
        result["time_box_seconds"] = box
        with contextlib.suppress(Exception):
            result["peak_memory"] = peak_memory(self.device)
            for key, value in result["peak_memory"].items():
                self.peaks[key] = max(value, self.peaks.get(key, 0.0))
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        self.write()
        status = f"error: {result['error']}" if "error" in result else "ok"
        print(f"[gpu_check] {name}: {result['part_seconds']:.1f} s, {status}", file=sys.stderr,
              flush=True)

    def write(self) -> None:
        self.report["seconds_total"] = time.perf_counter() - self.started
        self.report["peak_memory"] = dict(self.peaks)  # the largest of any part
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(finite(self.report), indent=2) + "\n")
        temporary.replace(self.path)

    def train(self, method_name: str, result: dict[str, Any],
              on_last: Callable[[Checkpoint], None] | None = None) -> Generator:
        """Fit ``method_name`` with its AWA2 preset until the timer stops it; time the steps."""
        config = self.config(method_name)
        method = get_method(method_name)(config.method_config)
        timing = self.plan.timings[method_name]
        result["settings"] = dataclasses.asdict(config.method_config)
        result["preset"] = str(config.preset)
        timer = StepTimer(timing, self.device, on_last=on_last)
        schedule = CheckpointSchedule(every=timing.every, callback=timer)
        fit(method, self.task.seen_data(), make_generator(0, self.device), schedule)
        result["train"] = timer.summary()
        total = method.total_iterations(self.plan.sizes.n_train)
        result["preset_iterations"] = total
        result["projected_training_seconds"] = total * result["train"]["seconds_per_iteration"]
        self.models[method_name] = method
        return method

    def gsmflow_train(self, result: dict[str, Any]) -> None:
        def save_state(checkpoint: Checkpoint) -> None:  # as a run writes resume.pt
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                atomic_torch_save(checkpoint.training_state(), Path(folder) / "resume.pt")
                result["resume_state_save"] = {
                    "seconds": time.perf_counter() - start,
                    "mib": (Path(folder) / "resume.pt").stat().st_size / 2**20}

        self.train("gsmflow", result, on_last=save_state)

    def gsmflow_evaluation(self, result: dict[str, Any]) -> None:
        model = self.models.get("gsmflow")
        if model is None:
            raise RuntimeError("needs the GSMFlow model of the gsmflow_train part")
        config = self.config("gsmflow")
        evaluation = config.evaluation
        n = evaluation.n_synthetic
        unseen = self.task.semantics[self.task.unseen_classes]
        result["n_synthetic"] = n
        result["synthetic_features"] = n * len(unseen)
        synchronize(self.device)
        start = time.perf_counter()
        synthetic = sample(model, unseen, n, make_generator(1, self.device))
        synchronize(self.device)
        result["synthesis_seconds"] = time.perf_counter() - start
        del synthetic
        settings = SoftmaxSettings(evaluation.classifier_lr, evaluation.classifier_beta1,
                                   evaluation.classifier_batch_size,
                                   evaluation.classifier_epochs)
        result["classifier"] = {"kind": evaluation.classifier, "epochs": settings.epochs,
                                "batch_size": settings.batch_size,
                                "zsl_classifier": evaluation.zsl_classifier}
        start = time.perf_counter()
        evaluate(model, self.task, make_generator(2, self.device), n_synthetic=n,
                 settings=settings, keep="best", classifier=evaluation.classifier,
                 zsl=evaluation.zsl_classifier,
                 gammas=STACKING_GAMMAS if evaluation.calibrated_stacking else (0.0,))
        synchronize(self.device)
        result["seconds"] = time.perf_counter() - start
        train = self.report["gsmflow_train"]["train"]
        result["projection"] = project(model, config, train["seconds_per_iteration"],
                                       result["seconds"], self.plan.sizes,
                                       AWA2_VALIDATION if self.plan.sizes == AWA2 else
                                       self.plan.sizes)

    def round_trip(self, result: dict[str, Any]) -> None:
        model = self.models.get("gsmflow")
        if model is None:
            raise RuntimeError("needs the GSMFlow model of the gsmflow_train part")
        result.update(round_trip(model, self.task.semantics[self.task.unseen_classes],
                                 self.device))

    def run(self) -> dict[str, Any]:
        self.part("setup", self.setup)
        if "error" in self.report["setup"]:
            return self.report
        self.part("gsmflow_train", self.gsmflow_train)
        self.part("gsmflow_evaluation", self.gsmflow_evaluation)
        self.part("round_trip", self.round_trip)
        self.models.pop("gsmflow", None)
        self.part("vaecflow", lambda result: self.train("vaecflow", result))
        self.part("amaz", lambda result: self.train("amaz", result))
        self.report["gsmflow"] = self.report.pop("gsmflow_train")
        self.report["gsmflow"]["evaluation"] = self.report.pop("gsmflow_evaluation")
        self.write()
        return self.report


def evaluated_checkpoints(total: int, every: int, after: int) -> int:
    """Checkpoints a run evaluates: every ``every`` steps from ``after`` on, and the last
    (gzsl.experiments.runner.Experiment._fit)."""
    after = min(after, total)
    return len({*range(math.ceil(after / every) * every, total + 1, every), total})


def project(model: Generator, config: ExperimentConfig, seconds_per_iteration: float,
            evaluation_seconds: float, sizes: Sizes, validation: Sizes) -> dict[str, Any]:
    """Whole-preset time from one step's and one evaluation's time, per selection protocol.

    Evaluations on other counts are scaled by the rows the two final classifiers train on
    (``n_train + 2 * n * unseen``: GZSL on real + synthetic, ZSL on synthetic): an estimate.
    """
    evaluation = config.evaluation
    n, every, after = evaluation.n_synthetic, evaluation.checkpoint_every, \
        evaluation.checkpoint_after

    def rows(task: Sizes, count: int) -> int:
        return task.n_train + 2 * count * task.n_unseen

    def evaluation_time(task: Sizes, count: int) -> float:
        return evaluation_seconds * rows(task, count) / rows(sizes, n)

    total = model.total_iterations(sizes.n_train)
    checkpoints = evaluated_checkpoints(total, every, after)
    train = total * seconds_per_iteration
    total_val = model.total_iterations(validation.n_train)
    fraction = total_val / max(1, total)  # as Experiment._run_val scales checkpoint_after
    val_checkpoints = evaluated_checkpoints(total_val, every, int(after * fraction))
    grid = sorted({max(1, round(m * n)) for m in evaluation.n_synthetic_grid})
    val_evaluations = sum(val_checkpoints * evaluation_time(validation, g) for g in grid)
    return {
        "iterations": total, "evaluated_checkpoints": checkpoints,
        "training_seconds": train,
        "test_oracle_seconds": train + checkpoints * evaluation_seconds,
        "final_seconds": train + evaluation_seconds,
        "val_seconds_at_most": (total_val * seconds_per_iteration + val_evaluations + train
                                + evaluation_time(sizes, max(grid))),
        "val_detail": {"validation_iterations": total_val,
                       "validation_checkpoints": val_checkpoints, "n_synthetic_grid": grid,
                       "validation_evaluation_seconds": val_evaluations},
        "note": "excludes resume-state saves (gzsl train writes one per checkpoint by "
                "default; see resume_state_save) and data loading; val: the final task "
                "trained to the end (the longest it can take); evaluations at other sizes "
                "scaled by classifier rows",
    }


def round_trip(model: Generator, semantics: torch.Tensor, device: torch.device,
               n_per_class: int = 64, seed: int = 7) -> dict[str, Any]:
    """Save on ``device``, load on the CPU, save there, load back; compare samples.

    Samples drawn with one seed on the device before and after must agree. The CPU and
    CUDA random streams differ, so across devices the noise-free part is compared: the
    samples at latent noise zero, which pass through the whole network.
    """
    cpu = torch.device("cpu")
    with tempfile.TemporaryDirectory() as folder:
        first, second = Path(folder) / "device.pt", Path(folder) / "cpu.pt"
        model.save(first)
        on_cpu = Generator.load(first, cpu)
        on_cpu.save(second)
        back = Generator.load(second, device)
        size_mib = first.stat().st_size / 2**20
    before = sample(model, semantics, n_per_class, make_generator(seed, device))
    after = sample(back, semantics, n_per_class, make_generator(seed, device))
    same_device = float((before - after).abs().max())
    with noise_free(model), noise_free(on_cpu):
        mean_device = sample(model, semantics, 1, make_generator(seed, device)).cpu()
        mean_cpu = sample(on_cpu, semantics, 1, make_generator(seed, cpu))
    cross = float((mean_device - mean_cpu).abs().max())
    scale = float(mean_cpu.abs().max())
    tolerance = 1e-3 * max(1.0, scale)
    return {"device": str(device), "saved_mib": size_mib, "samples_compared": len(before),
            "max_abs_difference": same_device, "agree": same_device <= 1e-6,
            "cpu_vs_device_noise_free_max_abs_difference": cross,
            "noise_free_sample_max_abs": scale, "cpu_vs_device_tolerance": tolerance,
            "cpu_vs_device_agree": cross <= tolerance}


@contextlib.contextmanager
def noise_free(model: Generator) -> Iterator[None]:
    """The model sampling with latent noise zero inside the block (GSMFlow's
    ``sample_noise_std``, VAE-cFlow's ``temperature``)."""
    config = model.config
    field = "sample_noise_std" if hasattr(config, "sample_noise_std") else "temperature"
    model.config = dataclasses.replace(config, **{field: 0.0})
    try:
        yield
    finally:
        model.config = config


def environment(device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "device": str(device), "torch_threads": torch.get_num_threads(),
                           "cuda_available": torch.cuda.is_available(),
                           "deterministic_algorithms": "on, as gzsl runs train"}
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        out.update(device_name=properties.name, cuda=torch.version.cuda,
                   gpu_memory_gib=properties.total_memory / 2**30,
                   tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
    return out


def finite(value: Any) -> Any:
    """``value`` with non-finite floats as None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/gpu_check.json"))
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cuda, cpu")
    parser.add_argument("--tiny", action="store_true",
                        help="toy sizes and a few steps (seconds, any device)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "the CPU"
    print(f"[gpu_check] torch {torch.__version__} on {name}; {'tiny' if args.tiny else 'full'} "
          f"check, JSON to {args.out}", file=sys.stderr, flush=True)
    plan = TINY_PLAN if args.tiny else FULL
    check = Check(plan, device, args.out, "tiny" if args.tiny else "full")
    report = check.run()
    print(json.dumps(finite(report), indent=2))
    print(f"[gpu_check] wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
