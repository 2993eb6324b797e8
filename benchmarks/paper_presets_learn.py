"""Do the paper presets' networks learn? Full-size networks on an AWA2-shaped SYNTHETIC world.

For each preset (the paper presets of AMAZ and VAE-cFlow by default, and the ``demo``
preset's settings for comparison) this trains the method with the preset's settings,
networks at full size, on the demo's feature generator at 2048 dimensions with AWA2's
real attributes, split and per-class image counts (``load_demo(scale=1, feature_dim=2048)``),
for a few hundred iterations instead of the preset's budget, and records what a user needs
before trusting a long run on real features:

* every loss at every checkpoint, and whether each moved (first vs last checkpoint);
* at every checkpoint, from a random stream of its own (training is unchanged), the
  unseen classes' spread ratio, mean gap and T1 below, so a trajectory shows;
* for synthetic features of the seen and of the unseen classes, the ratio of between-class
  to within-class spread (trace of the covariance of the class means over the mean
  within-class variance; the real features' ratio is printed beside it), and the mean
  distance of each synthetic class mean to the real class mean;
* T1 of a softmax trained on synthetic unseen features alone, scored on the real unseen
  test features (chance is 10 %; ``--task validation``: the 13 validation classes act as
  unseen, chance 7.7 %, the task on which to choose settings).

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
from gzsl.experiments.runner import resolve_device
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


def structure(method, task: TaskTensors, kind: str, n_per_class: int,
              rng: torch.Generator) -> dict:
    """How class-specific ``method``'s synthetic features of the ``kind`` classes are."""
    classes, real, real_labels = (
        (task.seen_classes, task.train_features, task.train_labels) if kind == "seen"
        else (task.unseen_classes, task.test_unseen_features, task.test_unseen_labels))
    synthetic = sample(method, task.semantics[classes], n_per_class, rng).float()
    labels = classes.repeat_interleave(n_per_class)
    gap = (class_means(synthetic, labels, classes)
           - class_means(real, real_labels, classes)).norm(dim=1).mean()
    result = {"synthetic_spread_ratio": spread_ratio(synthetic, labels),
              "real_spread_ratio": spread_ratio(real, real_labels),
              "mean_gap_to_real_class_mean": float(gap),
              "synthetic_finite": bool(torch.isfinite(synthetic).all())}
    if kind == "unseen":
        classifier = SoftmaxClassifier(classes, synthetic.shape[1],
                                       SoftmaxSettings(1e-3, 0.5, 256, 20))
        fit_classifier(classifier, synthetic, labels, rng)
        accuracy = per_class_accuracy(classifier.predict(real), real_labels, classes)
        result["T1_synthetic_to_real_unseen"] = 100 * mean_over_classes(accuracy)
    return result


def run_preset(name: str, task: TaskTensors, iterations: int, n_per_class: int,
               every: int, seed: int, overrides: tuple[str, ...] = ()) -> dict:
    method_name, preset = name.split("/")
    config = resolve(method_name, "demo-awa2", preset=preset, overrides=overrides).method_config
    budget = {"iterations": iterations}
    if "epochs" in {f.name for f in dataclasses.fields(config)}:
        budget["epochs"] = None
    config = dataclasses.replace(config, **budget)
    method = get_method(method_name)(config)
    checkpoints: list[dict] = []
    device = task.train_features.device
    probe_rng = torch.Generator(device=device).manual_seed(seed + 1)
    start = time.perf_counter()
    probing = 0.0

    def record(checkpoint) -> bool:
        nonlocal probing
        began = time.perf_counter()
        unseen = structure(method, task, "unseen", n_per_class, probe_rng)
        probing += time.perf_counter() - began
        checkpoints.append({"iteration": checkpoint.iteration,
                            **{k: float(v) for k, v in checkpoint.losses.items()},
                            "unseen_spread_ratio": unseen["synthetic_spread_ratio"],
                            "unseen_gap": unseen["mean_gap_to_real_class_mean"],
                            "T1": unseen["T1_synthetic_to_real_unseen"]})
        print(f"  {name}: iteration {checkpoint.iteration}/{iterations}, "
              f"{time.perf_counter() - start - probing:.0f} s training; unseen spread ratio "
              f"{unseen['synthetic_spread_ratio']:.3f}, T1 "
              f"{unseen['T1_synthetic_to_real_unseen']:.1f} %", flush=True)
        return False

    rng = torch.Generator(device=device).manual_seed(seed)
    fit(method, task.seen_data(), rng, CheckpointSchedule(every=every, callback=record))
    seconds = time.perf_counter() - start - probing

    result: dict = {"preset": name, "overrides": list(overrides), "iterations": iterations,
                    "train_seconds": seconds,
                    "checkpoints": checkpoints}
    loss_names = [k for k in checkpoints[0]
                  if k not in ("iteration", "unseen_spread_ratio", "unseen_gap", "T1")]
    first, last = checkpoints[0], checkpoints[-1]
    result["loss_moved"] = {k: abs(last[k] - first[k]) > 1e-3 * (1 + abs(first[k]))
                            for k in loss_names}
    for kind in ("seen", "unseen"):
        result[kind] = structure(method, task, kind, n_per_class, rng)
    result["T1_synthetic_to_real_unseen"] = result["unseen"].pop("T1_synthetic_to_real_unseen")
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
    parser.add_argument("--task", choices=("validation", "final"), default="final",
                        help="validation: the 13 validation classes act as unseen (choose settings "
                             "here); final: the 10 unseen classes")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="method.KEY=VALUE", help="override a setting of every preset")
    parser.add_argument("--out", type=Path, default=Path("paper_presets_learn.json"))
    args = parser.parse_args()

    data = load_demo(scale=args.scale, feature_dim=args.feature_dim, seed=0)
    task = Preprocessor().transform_task(data.task(args.task))
    device = resolve_device(args.device)
    tensors = TaskTensors.from_task(task, device)
    results = []
    for name in args.presets:
        result = run_preset(name, tensors, args.iterations, args.n_per_class, args.every,
                            args.seed, tuple(args.overrides))
        results.append(result)
        moved = sorted(k for k, v in result["loss_moved"].items() if v)
        print(f"{name}: {result['train_seconds']:.0f} s; losses moved: {', '.join(moved)}; "
              f"spread ratio unseen {result['unseen']['synthetic_spread_ratio']:.3f} "
              f"(real {result['unseen']['real_spread_ratio']:.3f}); "
              f"T1 synthetic->real unseen {result['T1_synthetic_to_real_unseen']:.1f} %",
              flush=True)
        args.out.write_text(json.dumps({"world": {"scale": args.scale,
                                                  "feature_dim": args.feature_dim,
                                                  "task": args.task, "synthetic": True},
                                        "device": str(device),
                                        "results": results}, indent=1))


if __name__ == "__main__":
    main()
