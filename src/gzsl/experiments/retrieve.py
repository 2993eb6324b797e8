"""Zero-shot image retrieval with a trained run (AMAZ Sec. III-D), for any method."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gzsl.data.errors import GZSLError
from gzsl.evaluation.retrieval import retrieval_precision, synthetic_queries
from gzsl.experiments.trained import load_run


def retrieval_report(run_dir: Path, *, root: Path | None = None, n: int = 100,
                     ks: tuple[int, ...] = (5, 10), metric: str = "euclidean",
                     seed: int = 0) -> dict:
    """Zero-shot retrieval (AMAZ Sec. III-D) with a run's generator; the ``retrieval.json``.

    Each unseen class's query is the mean of ``n`` synthetic features (drawn with ``seed``);
    the gallery is every real ``test_unseen`` image of the run's dataset, in the run's
    preprocessed feature space. Precision@k is in percent, per class and averaged.
    """
    run = load_run(run_dir, root=root)
    final = run.dataset().task("final")
    unseen = np.asarray(run.unseen_classes, dtype=np.int64)
    if len(unseen) == 0:
        raise GZSLError(f"run {run_dir} has no unseen classes to retrieve")
    gallery = torch.as_tensor(run.preprocess(final.test_unseen_features), device=run.device)
    labels = torch.as_tensor(final.test_unseen_labels, dtype=torch.long, device=run.device)
    semantics = torch.as_tensor(run.semantics()[unseen], dtype=torch.float32,
                                device=run.device)
    generator = torch.Generator(device=run.device).manual_seed(int(seed))
    with torch.no_grad():
        queries = synthetic_queries(run.generator_, semantics, n, rng=generator)
    precision = retrieval_precision(queries, torch.as_tensor(unseen, device=run.device),
                                    gallery, labels, ks, metric=metric)  # type: ignore[arg-type]
    counts = np.bincount(final.test_unseen_labels, minlength=len(run.all_class_names))
    per_class = {
        run.all_class_names[int(c)]: {
            "class_id": int(c), "gallery_images": int(counts[c]),
            **{f"precision@{k}": precision[f"precision@{k}/{int(c)}"] for k in ks}}
        for c in unseen}
    return {"method": run.results.get("method"), "dataset": run.results.get("dataset"),
            "synthetic_data": run.synthetic_data, "n": n, "ks": list(ks), "metric": metric,
            "seed": seed, "gallery_images": len(labels),
            "mean": {f"precision@{k}": precision[f"precision@{k}"] for k in ks},
            "per_class": per_class}
