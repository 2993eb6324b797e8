"""Do the paper presets' networks learn? Full-size networks on an AWA2-shaped SYNTHETIC world.

For each preset (the paper presets of AMAZ and VAE-cFlow by default, and the ``demo``
preset's settings for comparison) this trains the method with the preset's settings,
networks at full size, on the demo's feature generator at 2048 dimensions with AWA2's
real attributes, split and per-class image counts (``load_demo(scale=1, feature_dim=2048)``),
for a few hundred iterations instead of the preset's budget, and records what a user needs
before trusting a long run on real features:

* every loss at every checkpoint, and whether each moved (first vs last checkpoint);
* for synthetic features of the seen and of the unseen classes, the ratio of between-class
  to within-class spread (trace of the covariance of the class means over the mean
  within-class variance; the real features' ratio is printed beside it), and the mean
  distance of each synthetic class mean to the real class mean;
* T1 of a softmax trained on synthetic unseen features alone, scored on the real unseen
  test features (chance is 10 %).

Not a CI test: it takes minutes to hours on a CPU. The world is SYNTHETIC; nothing here is
an AWA2 result.

    OMP_NUM_THREADS=1 python benchmarks/paper_presets_learn.py --iterations 300
    python benchmarks/paper_presets_learn.py --presets amaz/awa2 amaz/demo --scale 0.25
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
from common import fit, fit_classifier, sample

from gzsl.data.demo import load_demo
from gzsl.data.preprocessing import Preprocessor
from gzsl.evaluation.classifier import SoftmaxClassifier, SoftmaxSettings
from gzsl.evaluation.metrics import mean_over_classes, per_class_accuracy
from gzsl.evaluation.protocol import TaskTensors
from gzsl.experiments.config import resolve
from gzsl.methods.base import CheckpointSchedule, get_method

DEFAULT_PRESETS = ("amaz/awa1", "amaz/awa2", "amaz/cub", "amaz/sun", "amaz/demo",
                   "vaecflow/awa1", "vaecflow/awa2", "vaecflow/cub", "vaecflow/sun",
                   "vaecflow/demo")


def spread_ratio(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Trace of the between-class covariance over the mean within-class variance."""
    classes = labels.unique()
    means = torch.stack([features[labels == c].mean(0) for c in classes])
    within = torch.stack([features[labels == c].var(0, unbiased=False).sum() for c in classes])
    between = means.var(0, unbiased=False).sum()
    return float(between / within.mean().clamp_min(1e-12))


def class_means(features: torch.Tensor, labels: torch.Tensor,
                classes: torch.Tensor) -> torch.Tensor:
    return torch.stack([features[labels == c].mean(0) for c in classes])


def run_preset(name: str, task: TaskTensors, iterations: int, n_per_class: int,
               every: int, seed: int) -> dict:
    method_name, preset = name.split("/")
    config = resolve(method_name, "demo-awa2", preset=preset).method_config
    budget = {"iterations": iterations}
    if "epochs" in {f.name for f in dataclasses.fields(config)}:
        budget["epochs"] = None
    config = dataclasses.replace(config, **budget)
    method = get_method(method_name)(config)
    losses: list[dict] = []

    start = time.perf_counter()

    def record(checkpoint) -> bool:
        losses.append({"iteration": checkpoint.iteration,
                       **{k: float(v) for k, v in checkpoint.losses.items()}})
        print(f"  {name}: iteration {checkpoint.iteration}/{iterations}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        return False

    rng = torch.Generator().manual_seed(seed)
    fit(method, task.seen_data(), rng, CheckpointSchedule(every=every, callback=record))
    seconds = time.perf_counter() - start

    result: dict = {"preset": name, "iterations": iterations, "train_seconds": seconds,
                    "losses": losses}
    first, last = losses[0], losses[-1]
    result["loss_moved"] = {k: abs(last[k] - first[k]) > 1e-3 * (1 + abs(first[k]))
                            for k in first if k != "iteration"}
    for kind, classes, real, real_labels in (
            ("seen", task.seen_classes, task.train_features, task.train_labels),
            ("unseen", task.unseen_classes, task.test_unseen_features, task.test_unseen_labels)):
        synthetic = sample(method, task.semantics[classes], n_per_class, rng).float()
        labels = classes.repeat_interleave(n_per_class)
        gap = (class_means(synthetic, labels, classes)
               - class_means(real, real_labels, classes)).norm(dim=1).mean()
        result[kind] = {"synthetic_spread_ratio": spread_ratio(synthetic, labels),
                        "real_spread_ratio": spread_ratio(real, real_labels),
                        "mean_gap_to_real_class_mean": float(gap),
                        "synthetic_finite": bool(torch.isfinite(synthetic).all())}
        if kind == "unseen":
            classifier = SoftmaxClassifier(classes, synthetic.shape[1],
                                           SoftmaxSettings(1e-3, 0.5, 256, 20))
            fit_classifier(classifier, synthetic, labels, rng)
            accuracy = per_class_accuracy(classifier.predict(task.test_unseen_features),
                                          task.test_unseen_labels, classes)
            result["T1_synthetic_to_real_unseen"] = 100 * mean_over_classes(accuracy)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS),
                        help="METHOD/PRESET names")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--every", type=int, default=50, help="checkpoint interval")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="share of AWA2's per-class image counts")
    parser.add_argument("--feature-dim", type=int, default=2048)
    parser.add_argument("--n-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("paper_presets_learn.json"))
    args = parser.parse_args()

    data = load_demo(scale=args.scale, feature_dim=args.feature_dim, seed=0)
    task = Preprocessor().transform_task(data.task("final"))
    tensors = TaskTensors.from_task(task, torch.device("cpu"))
    results = []
    for name in args.presets:
        result = run_preset(name, tensors, args.iterations, args.n_per_class, args.every,
                            args.seed)
        results.append(result)
        moved = sorted(k for k, v in result["loss_moved"].items() if v)
        print(f"{name}: {result['train_seconds']:.0f} s; losses moved: {', '.join(moved)}; "
              f"spread ratio unseen {result['unseen']['synthetic_spread_ratio']:.3f} "
              f"(real {result['unseen']['real_spread_ratio']:.3f}); "
              f"T1 synthetic->real unseen {result['T1_synthetic_to_real_unseen']:.1f} %",
              flush=True)
        args.out.write_text(json.dumps({"world": {"scale": args.scale,
                                                  "feature_dim": args.feature_dim,
                                                  "synthetic": True},
                                        "results": results}, indent=1))


if __name__ == "__main__":
    main()
