"""VAE-cFlow at ImageNet-21K's shape with bounded memory: peak RSS and features per second.

The paper's large-scale setting (Sec. 4.2, Table 4): 1,000 seen classes (1,281,167
ImageNet-1K training images), 500-d semantics, 2048-d features, 150K generator iterations
at batch 256, and a softmax classifier on 50 real features per seen class plus 600
synthetic per unseen class. For each unseen count asked for (2-hops 1,509, 3-hops 7,678,
all 20,345), a fresh process (so that its peak RSS is its own):

* builds the paper-sized VAE-cFlow and trains it ``--fit-steps`` steps on rows read from
  a 1,281,167 x 2048 training "matrix" that is never stored (:class:`GeneratedRows`
  makes any row on demand, as an on-disk store would read it) through
  :class:`~gzsl.methods.rows.DeviceRows`;
* times the streamed min-max fit on ``--prep-rows`` training rows;
* synthesises the first block of the streamed classifier's synthetic set (``--block-rows``
  rows, whole classes), and trains the GZSL softmax classifier over all
  ``1000 + unseen`` classes for ``--steps`` steps of the real stream
  (:class:`~gzsl.evaluation.streamed.TrainingStream`: 50 real rows per seen class,
  600 synthetic per unseen class in regenerated blocks);
* scores ``--eval-rows`` test rows against all classes;
* reports the rates, the peak resident memory of the process, and an extrapolation to
  the full budget (the rates times the paper's counts; on a CPU that is days, which is
  why only a bounded number of steps is run).

Features are random (timing only; SYNTHETIC). Run with one thread on a shared machine:

    OMP_NUM_THREADS=1 python benchmarks/imagenet_scale.py --device cpu
    python benchmarks/imagenet_scale.py --device cuda --steps 200 --fit-steps 200 \\
        --prep-rows 1281167 --eval-rows 65536          # on a GPU (see README.md)

``--full OUT`` instead runs the whole budget end to end through
:func:`~gzsl.experiments.streamed.run_large` (150K generator iterations, 30 classifier
epochs: a GPU job) on a generated ImageNet-shaped task and writes a run folder per split.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch

from gzsl.data.preprocessing import Preprocessor
from gzsl.evaluation.classifier import SoftmaxClassifier, SoftmaxSettings
from gzsl.evaluation.streamed import (
    StreamSettings,
    SyntheticBlocks,
    TrainingStream,
    sample_per_class,
)
from gzsl.experiments.runner import make_generator, resolve_device
from gzsl.methods.base import CheckpointSchedule, SeenData
from gzsl.methods.rows import DeviceRows
from gzsl.methods.vaecflow import VAECFlow

N_SEEN, TRAIN_IMAGES, SEMANTIC_DIM = 1000, 1_281_167, 500
SPLITS = {"2H": 1509, "3H": 7678, "ALL": 20345}


class GeneratedRows:
    """A :class:`~gzsl.data.sources.FeatureSource` of ``n`` non-negative rows, each made
    on demand from its row number (nothing stored: stands in for an on-disk store)."""

    def __init__(self, n: int, dim: int) -> None:
        self.n, self.dim = n, dim
        self._phase = np.arange(dim, dtype=np.float32) * np.float32(0.618)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.dim)

    def __len__(self) -> int:
        return self.n

    def read(self, indices: np.ndarray) -> np.ndarray:
        rows = np.asarray(indices, dtype=np.float32)[:, None] * np.float32(0.37)
        return np.maximum(np.sin(rows + self._phase), 0, dtype=np.float32)


def clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def measure(n_unseen: int, args: argparse.Namespace) -> dict[str, Any]:
    """One unseen count, in this process."""
    device = resolve_device(args.device)
    dim, n_classes = args.dim, N_SEEN + n_unseen
    out: dict[str, Any] = {"unseen_classes": n_unseen, "classes": n_classes, "dim": dim,
                           "device": str(device), "threads": torch.get_num_threads()}
    rng = make_generator(0, device)
    generator = np.random.default_rng(0)
    semantics = torch.as_tensor(generator.random((n_classes, SEMANTIC_DIM), np.float32),
                                device=device)
    seen = torch.arange(N_SEEN, device=device)
    unseen = torch.arange(N_SEEN, n_classes, device=device)
    train_labels = np.repeat(np.arange(N_SEEN), -(-TRAIN_IMAGES // N_SEEN))[:TRAIN_IMAGES]
    train = GeneratedRows(TRAIN_IMAGES, dim)

    start = clock(device)
    Preprocessor().fit_source(GeneratedRows(args.prep_rows, dim), chunk_rows=8192)
    seconds = clock(device) - start
    out["preprocessing_fit_rows_per_s"] = args.prep_rows / seconds

    model = VAECFlow(iterations=args.fit_steps, batch_size=256, initialisation_size=1024)
    rows = DeviceRows(train, device)
    data = SeenData(rows, torch.as_tensor(train_labels, device=device), semantics, seen)
    stamps: list[float] = []
    model.fit(data, rng=rng, schedule=CheckpointSchedule(
        every=1, callback=lambda checkpoint: stamps.append(clock(device))))
    seconds = stamps[-1] - stamps[0]  # steps 2..last: building and the first step excluded
    out["generator_fit"] = {"steps_timed": len(stamps) - 1, "seconds": round(seconds, 2),
                            "rows_per_s": round((len(stamps) - 1) * 256 / seconds, 1),
                            "rows_read": rows.rows_read}

    settings = SoftmaxSettings(batch_size=256, epochs=1)
    seen_rows = sample_per_class(train_labels, 50, rng)
    blocks = SyntheticBlocks(model, semantics, unseen, args.n_synthetic,
                             block_rows=args.block_rows, rng=rng)
    classifier = SoftmaxClassifier(torch.sort(torch.cat([seen, unseen])).values, dim, settings)
    stream = TrainingStream(DeviceRows(train, device), seen_rows, train_labels, blocks,
                            classifier, settings.batch_size, rng, device)
    timed: dict[str, float] = {}

    def bounded(epoch: int):
        batches = stream(epoch)
        timed["synthesis"] = clock(device)
        first = next(batches)  # the first chunk's block is synthesised here
        timed["start"] = clock(device)
        yield first
        yield from itertools.islice(batches, args.steps)

    classifier.fit_batches(bounded, rng=rng, device=device)
    seconds = clock(device) - timed["start"]
    synthesis = timed["start"] - timed["synthesis"]
    out["synthesis"] = {"rows": blocks.synthesised_rows, "seconds": round(synthesis, 2),
                        "rows_per_s": round(blocks.synthesised_rows / synthesis, 1),
                        "blocks": len(blocks), "rows_per_block_max": max(
                            len(g) for g in blocks.groups) * args.n_synthetic}
    out["classifier"] = {"steps": args.steps + 1, "seconds": round(seconds, 2),
                         "rows_per_s": round((args.steps + 1) * 256 / seconds, 1),
                         "rows_per_epoch": stream.rows_per_epoch,
                         "parameters": sum(p.numel() for p in classifier.linear_.parameters())}

    test = DeviceRows(GeneratedRows(args.eval_rows, dim), device)
    start = clock(device)
    for first in range(0, args.eval_rows, 1024):
        classifier.predict(test[slice(first, min(first + 1024, args.eval_rows))])
    seconds = clock(device) - start
    out["evaluation_rows_per_s"] = round(args.eval_rows / seconds, 1)
    out["peak_rss_gib"] = round(peak_rss_gib(), 3)
    if device.type == "cuda":
        out["gpu_peak_allocated_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    out["classifier_state_gib"] = round(4 * out["classifier"]["parameters"] * 4 / 2**30, 3)
    out["full_budget_hours"] = extrapolate(out, n_unseen, args)
    return out


def extrapolate(out: dict[str, Any], n_unseen: int, args: argparse.Namespace
                ) -> dict[str, float]:
    """Hours of the paper's full budget at the measured rates (a linear estimate)."""
    synthetic = n_unseen * args.n_synthetic
    epochs = args.classifier_epochs
    gzsl_rows = epochs * (50 * N_SEEN + synthetic)
    hours = {
        "generator_150k_steps": 150_000 * 256 / out["generator_fit"]["rows_per_s"] / 3600,
        "synthesis_every_epoch": 2 * epochs * synthetic / out["synthesis"]["rows_per_s"] / 3600,
        "gzsl_classifier": gzsl_rows / out["classifier"]["rows_per_s"] / 3600,
        # the unseen-only classifier has n_unseen / (1000 + n_unseen) of the columns
        "zsl_classifier": epochs * synthetic / out["classifier"]["rows_per_s"]
        * n_unseen / (N_SEEN + n_unseen) / 3600,
    }
    hours["total"] = sum(hours.values())
    return {key: round(value, 2) for key, value in hours.items()}


def full_run(n_unseen: int, args: argparse.Namespace) -> dict[str, Any]:
    """The whole paper budget through :func:`~gzsl.experiments.streamed.run_large` on a
    generated ImageNet-shaped :class:`~gzsl.data.sources.LargeTask` (SYNTHETIC)."""
    from gzsl.data.sources import LargeTask
    from gzsl.experiments import progress
    from gzsl.experiments.config import resolve
    from gzsl.experiments.streamed import run_large

    n_classes, dim = N_SEEN + n_unseen, args.dim
    generator = np.random.default_rng(0)
    train_labels = np.repeat(np.arange(N_SEEN), -(-args.train_images // N_SEEN))
    train_labels = train_labels[:args.train_images]
    test_seen_labels = np.repeat(np.arange(N_SEEN), 50)
    test_unseen_labels = np.repeat(np.arange(N_SEEN, n_classes), args.test_per_class)
    task = LargeTask(
        name=f"generated-imagenet-{n_unseen}", train=GeneratedRows(len(train_labels), dim),
        train_labels=train_labels, test_seen=GeneratedRows(len(test_seen_labels), dim),
        test_seen_labels=test_seen_labels,
        test_unseen=GeneratedRows(len(test_unseen_labels), dim),
        test_unseen_labels=test_unseen_labels,
        semantics=generator.random((n_classes, SEMANTIC_DIM), np.float32),
        seen_classes=np.arange(N_SEEN), unseen_classes=np.arange(N_SEEN, n_classes),
        class_names=tuple(f"class_{c}" for c in range(n_classes)), synthetic=True,
        source={"layout": "generated on the fly by benchmarks/imagenet_scale.py (SYNTHETIC)"})
    config = resolve("vaecflow", task.name, selection="final", device=args.device, values={
        "method.iterations": args.generator_iterations, "method.batch_size": 256,
        "evaluation.n_synthetic": args.n_synthetic,
        "evaluation.classifier_epochs": args.classifier_epochs,
        "evaluation.checkpoint_every": max(1, args.generator_iterations // 30)})
    start = time.perf_counter()
    with progress.reporting(progress.ProgressReporter(every_seconds=300)):
        result, _, _ = run_large(config, task, out=f"{args.full}/{task.name}", overwrite=True,
                                 stream=StreamSettings(block_rows=args.block_rows))
    out = {"unseen_classes": n_unseen, "wall_seconds": round(time.perf_counter() - start, 1),
           "peak_rss_gib": round(peak_rss_gib(), 3), "run_dir": result.run_dir,
           "H": result.H, "T1": result.T1}
    if torch.cuda.is_available():
        out["gpu_peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--unseen", nargs="+", default=list(SPLITS),
                        help="unseen class counts or split names (2H 3H ALL)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--n-synthetic", type=int, default=600)
    parser.add_argument("--block-rows", type=int, default=65536)
    parser.add_argument("--steps", type=int, default=6, help="classifier steps timed")
    parser.add_argument("--fit-steps", type=int, default=4,
                        help="generator steps run (all but the first timed)")
    parser.add_argument("--prep-rows", type=int, default=32768)
    parser.add_argument("--eval-rows", type=int, default=2048)
    parser.add_argument("--classifier-epochs", type=int, default=30)
    parser.add_argument("--full", metavar="OUT",
                        help="run the whole budget end to end (run_large), run folders in OUT")
    parser.add_argument("--generator-iterations", type=int, default=150_000)
    parser.add_argument("--train-images", type=int, default=TRAIN_IMAGES)
    parser.add_argument("--test-per-class", type=int, default=20,
                        help="generated test images per unseen class (--full)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(full_run(args.child, args) if args.full else measure(args.child, args)))
        return
    results = []
    load = os.getloadavg()
    for name in args.unseen:
        n_unseen = SPLITS.get(name.upper()) or int(name)
        command = [sys.executable, __file__, *sys.argv[1:], "--child", str(n_unseen)]
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"load_average_before": load, "load_average_after": os.getloadavg(),
                      "runs": results}, indent=1))


if __name__ == "__main__":
    main()
