"""Speed and memory of a method at a preset's full dimensions, on generated data.

Measures generator training iterations per second, synthesis throughput, final
classifier time, the time and size of one resume-state save, and peak memory, for one
preset, with features generated on the fly at the real dataset's sizes (AWA2-like by
default: 2048-d features, 85-d attributes, 40 seen / 10 unseen classes, 23,527 training
images). The data are random, so the timings are
meaningful and the accuracies are not.

    python benchmarks/speed.py --method gsmflow --preset awa2 --device auto
    python benchmarks/speed.py --method gsmflow --preset awa2 --full   # whole preset, test-oracle

Figures measured so far are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from common import (
    fit,
    fit_classifier,
    generated_dataset,
    peak_memory,
    sample,
    synchronize,
)

from gzsl.evaluation.classifier import SoftmaxClassifier, SoftmaxSettings
from gzsl.evaluation.protocol import TaskTensors
from gzsl.experiments.config import resolve
from gzsl.experiments.runner import make_generator, resolve_device, run_experiment
from gzsl.methods.base import Checkpoint, CheckpointSchedule, atomic_torch_save, get_method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="gsmflow")
    parser.add_argument("--preset", default="awa2")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--iterations", type=int, default=200, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--n-train", type=int, default=23527)
    parser.add_argument("--feature-dim", type=int, default=2048)
    parser.add_argument("--semantic-dim", type=int, default=85)
    parser.add_argument("--seen", type=int, default=40)
    parser.add_argument("--unseen", type=int, default=10)
    parser.add_argument("--full", action="store_true",
                        help="also time the whole preset (all evaluations) under test-oracle")
    parser.add_argument("--n-synthetic", type=int, default=None,
                        help="synthetic features per unseen class to time (default: preset's)")
    parser.add_argument("--set", action="append", default=[], help="section.key=value")
    args = parser.parse_args()

    device = resolve_device(args.device)
    data = generated_dataset(args.n_train, 5882, 7913, args.feature_dim, args.semantic_dim,
                             args.seen, args.unseen)
    config = resolve(args.method, args.preset, preset=args.preset, overrides=tuple(args.set),
                     selection="test-oracle", device=str(device))
    task = TaskTensors.from_task(data.task("final"), device)
    report: dict = {"method": args.method, "preset": args.preset, "device": str(device),
                    "device_name": torch.cuda.get_device_name(device)
                    if device.type == "cuda" else "cpu",
                    "torch_threads": torch.get_num_threads(), "data": "generated (SYNTHETIC)",
                    "feature_dim": args.feature_dim, "n_train": args.n_train}

    method = get_method(args.method)(config.method_config)
    times: list[float] = []

    def timer(checkpoint: Checkpoint) -> bool:
        synchronize(device)
        times.append(time.perf_counter())
        last = checkpoint.iteration >= args.warmup + args.iterations
        if last and checkpoint.snapshot is not None:  # what a run writes at each checkpoint
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                atomic_torch_save(checkpoint.training_state(), Path(folder) / "resume.pt")
                report["resume_state"] = {
                    "seconds": time.perf_counter() - start,
                    "mib": (Path(folder) / "resume.pt").stat().st_size / 2**20}
        return last

    schedule = CheckpointSchedule(every=1, after=args.warmup, callback=timer)
    fit(method, task.seen_data(), make_generator(0, device), schedule)
    steps = len(times) - 1
    report["train_iterations_per_second"] = steps / (times[-1] - times[0]) if steps > 0 else None
    report["total_iterations_of_preset"] = method.total_iterations(args.n_train)

    n = args.n_synthetic or config.evaluation.n_synthetic
    generator = make_generator(1, device)
    synchronize(device)
    start = time.perf_counter()
    synthetic = sample(method, task.semantics[task.unseen_classes], n, generator)
    synchronize(device)
    elapsed = time.perf_counter() - start
    report["synthesis"] = {"features": len(synthetic), "seconds": elapsed,
                           "features_per_second": len(synthetic) / elapsed}

    evaluation = config.evaluation
    settings = SoftmaxSettings(evaluation.classifier_lr, evaluation.classifier_beta1,
                               evaluation.classifier_batch_size, evaluation.classifier_epochs)
    features = torch.cat([task.train_features, synthetic])
    labels = torch.cat([task.train_labels, task.unseen_classes.repeat_interleave(n)])
    synchronize(device)
    start = time.perf_counter()
    fit_classifier(SoftmaxClassifier(task.classes, features.shape[1], settings), features,
                   labels, generator)
    synchronize(device)
    report["classifier"] = {"samples": len(features), "epochs": settings.epochs,
                            "seconds": time.perf_counter() - start}
    del synthetic, features, labels

    if args.full:
        start = time.perf_counter()
        run_experiment(config, data=data)
        report["full_preset_seconds_test_oracle"] = time.perf_counter() - start
    report["peak_memory"] = peak_memory(device)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
