"""Seconds per GSMFlow training step at the awa2 preset's sizes, on generated data.

    OMP_NUM_THREADS=T python benchmarks/step.py STEPS

Times ``fit`` between checkpoints at every step after one warm-up step (2048-d
features, batch 256, the awa2 preset's network); chooses gzsl's default thread count
(benchmarks/README.md).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from speed import generated_dataset  # noqa: E402

from gzsl.evaluation.protocol import TaskTensors
from gzsl.experiments.config import resolve
from gzsl.experiments.runner import make_generator
from gzsl.methods.base import CheckpointSchedule, get_method

steps = int(sys.argv[1])
data = generated_dataset(23527, 100, 100, 2048, 85, 40, 10)
config = resolve("gsmflow", "awa2", preset="awa2", selection="test-oracle", device="cpu")
task = TaskTensors.from_task(data.task("final"), torch.device("cpu"))
times = []


def timer(checkpoint) -> bool:
    times.append(time.perf_counter())
    return checkpoint.iteration >= 1 + steps

method = get_method("gsmflow")(config.method_config)
method.fit(task.seen_data(), rng=make_generator(0, torch.device("cpu")),
           schedule=CheckpointSchedule(every=1, after=1, callback=timer))
print(f"threads={torch.get_num_threads()} steps={len(times) - 1} "
      f"seconds_per_step={(times[-1] - times[0]) / (len(times) - 1):.2f}")
