"""Where an evaluation's time goes, and what the ``val`` protocol's n_synthetic grid costs.

Fits a method briefly on the validation task of a dataset (default: the bundled ``demo``
data, as ``gzsl train`` preprocesses it), then times, for each count of the preset's
``n_synthetic_grid``, the synthesis alone and one whole :func:`evaluate_generator` (with
and without the separate ZSL classifier), as one ``val`` checkpoint does. It also times
what sampling the largest count once would cost, and, on a generated matrix of the same
size, variants of one softmax-classifier training step, with whether each trains
bit-identically to the current step. Timings are CPU time of this process (steadier than
wall time on a shared machine) unless the device is CUDA.

    OMP_NUM_THREADS=1 python benchmarks/evaluation_speed.py
    OMP_NUM_THREADS=1 python benchmarks/evaluation_speed.py --method gsmflow --preset demo \\
        --set method.epochs=2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from common import evaluate, fit, sample, synchronize
from torch import Tensor, nn

from gzsl.data.demo import load_demo
from gzsl.data.preprocessing import Preprocessor
from gzsl.evaluation.classifier import SoftmaxSettings
from gzsl.evaluation.protocol import TaskTensors
from gzsl.experiments.config import resolve
from gzsl.experiments.runner import make_generator, resolve_device
from gzsl.methods.base import get_method


def clock(device: torch.device) -> float:
    """CPU time of the process on the CPU (robust to other jobs), wall time on CUDA."""
    synchronize(device)
    return time.perf_counter() if device.type == "cuda" else time.process_time()


def best_of(repeats: int, device: torch.device, work: Callable[[], Any]) -> float:
    """Shortest of ``repeats`` timings of ``work()``."""
    times = []
    for _ in range(repeats):
        start = clock(device)
        work()
        times.append(clock(device) - start)
    return min(times)


def classifier_step_variants(rows: int, dim: int, classes: int, settings: SoftmaxSettings,
                             device: torch.device, repeats: int) -> dict[str, Any]:
    """One classifier training (all epochs) per variant of its step, on random data.

    ``written_out`` is the loss as the SPEC states it (log-softmax, gather, mean: gzsl's
    step until cross_entropy replaced it); ``cross_entropy`` is gzsl's step now; the others
    are options. ``identical``: the trained weights equal ``written_out``'s bit for bit.
    """
    data = torch.Generator().manual_seed(0)
    features = torch.rand(rows, dim, generator=data).to(device)
    targets = torch.randint(0, classes, (rows,), generator=data).to(device)

    def train(cross_entropy: bool = False, gathered: bool = False,
              fused: bool = False) -> tuple[Tensor, Tensor]:
        rng = torch.Generator(device=device).manual_seed(1)
        torch.manual_seed(2)
        linear = nn.Linear(dim, classes).to(device)
        nn.init.xavier_normal_(linear.weight)
        nn.init.zeros_(linear.bias)
        optimiser = torch.optim.Adam(linear.parameters(), lr=settings.lr,
                                     betas=(settings.beta1, 0.999),
                                     **({"fused": True} if fused else {}))
        for _ in range(settings.epochs):
            order = torch.randperm(rows, generator=rng, device=device)
            epoch_x, epoch_y = (features[order], targets[order]) if gathered else (None, None)
            for start in range(0, rows, settings.batch_size):
                if gathered:
                    x = epoch_x[start:start + settings.batch_size]
                    y = epoch_y[start:start + settings.batch_size]
                else:
                    index = order[start:start + settings.batch_size]
                    x, y = features[index], targets[index]
                if cross_entropy:
                    loss = F.cross_entropy(linear(x), y)
                else:
                    log_probs = torch.log_softmax(linear(x), dim=1)
                    loss = -log_probs.gather(1, y.unsqueeze(1)).squeeze(1).mean()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
        return linear.weight.detach().cpu(), linear.bias.detach().cpu()

    variants = {"written_out": {}, "cross_entropy": {"cross_entropy": True},
                "gathered_epoch": {"gathered": True},
                "cross_entropy+gathered_epoch": {"cross_entropy": True, "gathered": True},
                "fused_adam": {"fused": True}}
    reference = train()
    out: dict[str, Any] = {"rows": rows, "dim": dim, "classes": classes,
                           "epochs": settings.epochs, "batch_size": settings.batch_size}
    for name, options in variants.items():
        weight, bias = train(**options)
        seconds = best_of(repeats, device, lambda options=options: train(**options))
        out[name] = {"seconds": seconds,
                     "identical": bool(torch.equal(weight, reference[0])
                                       and torch.equal(bias, reference[1])),
                     "max_abs_weight_difference": float((weight - reference[0]).abs().max())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="gsmflow")
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timings kept: the shortest")
    parser.add_argument("--set", action="append", default=["method.epochs=2"],
                        help="section.key=value (default: method.epochs=2, a short fit)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    config = resolve(args.method, "demo", preset=args.preset,
                     overrides=tuple(args.set), device=str(device))
    data = load_demo()
    preprocessor = Preprocessor(config.data.preprocessing, config.data.l2)
    task = TaskTensors.from_task(preprocessor.transform_task(data.task("validation")), device)
    model = get_method(args.method)(config.method_config)
    fit(model, task.seen_data(), make_generator(0, device))
    evaluation = config.evaluation
    settings = SoftmaxSettings(evaluation.classifier_lr, evaluation.classifier_beta1,
                               evaluation.classifier_batch_size, evaluation.classifier_epochs)
    grid = sorted({max(1, round(m * evaluation.n_synthetic))
                   for m in evaluation.n_synthetic_grid})
    unseen = task.semantics[task.unseen_classes]
    report: dict[str, Any] = {
        "method": args.method, "preset": args.preset, "overrides": args.set,
        "device": str(device), "torch_threads": torch.get_num_threads(),
        "timing": "CPU time of the process" if device.type == "cpu" else "wall",
        "validation_task": {"train_rows": len(task.train_labels),
                            "unseen_classes": len(unseen),
                            "feature_dim": int(task.train_features.shape[1])},
        "classifier": {"epochs": settings.epochs, "batch_size": settings.batch_size},
        "grid": {}}
    for n in grid:
        def one(zsl: bool, n: int = n) -> None:
            evaluate(model, task, make_generator(1, device), n_synthetic=n, settings=settings,
                     classifier=evaluation.classifier, zsl=zsl)

        report["grid"][n] = {
            "synthesis_seconds": best_of(args.repeats, device, lambda n=n: sample(
                model, unseen, n, make_generator(1, device))),
            "evaluation_seconds": best_of(args.repeats, device, lambda one=one: one(True)),
            "evaluation_without_zsl_classifier_seconds": best_of(
                args.repeats, device, lambda one=one: one(False))}
    rows = report["grid"].values()
    per_checkpoint = sum(r["evaluation_seconds"] for r in rows)
    synthesis = sum(r["synthesis_seconds"] for r in rows)
    largest = report["grid"][max(grid)]["synthesis_seconds"]
    report["per_val_checkpoint"] = {
        "evaluation_seconds": per_checkpoint,
        "of_which_synthesis_seconds": synthesis,
        "option_sample_largest_once_saves_seconds": synthesis - largest,
        "option_no_zsl_classifier_saves_seconds": per_checkpoint - sum(
            r["evaluation_without_zsl_classifier_seconds"] for r in rows)}
    middle = grid[len(grid) // 2]
    report["classifier_step_variants"] = classifier_step_variants(
        len(task.train_labels) + middle * len(unseen), task.train_features.shape[1],
        len(task.classes), settings, device, args.repeats)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
