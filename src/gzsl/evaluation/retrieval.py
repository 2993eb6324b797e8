"""Zero-shot image retrieval (AMAZ, Sec. III-D).

For each unseen class the generator synthesises 100 features from the class's semantic
vector; their mean is the query. Real unseen test images are ranked by their distance to
the query and the precision of the top 5 and top 10 is reported, averaged over classes.
The paper retrieves "the images that are nearest to the representatives", so the default
ranking is by Euclidean distance; cosine similarity is available as an option.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from gzsl.data.errors import GZSLError
from gzsl.methods.base import Generator

Metric = Literal["euclidean", "cosine"]


def synthetic_queries(generator_model: Generator, semantics: Tensor, n: int = 100, *,
                      rng: torch.Generator | None = None) -> Tensor:
    """``(K, D)`` retrieval queries: the mean of ``n`` synthetic features per semantic row."""
    samples = generator_model.sample(semantics, n, rng=rng)
    return samples.reshape(len(semantics), n, -1).mean(dim=1)


def retrieval_precision(query_features: Tensor, query_classes: Tensor,
                        gallery_features: Tensor, gallery_labels: Tensor,
                        ks: Sequence[int] = (5, 10), *,
                        metric: Metric = "euclidean") -> dict[str, float]:
    """Precision of the top-k gallery images of each query, in percent.

    Args:
        query_features: ``(K, D)`` one query per class.
        query_classes: ``(K,)`` distinct class ids of the queries.
        gallery_features: ``(G, D)`` real images to rank.
        gallery_labels: ``(G,)`` their class ids.
        ks: cut-offs.
        metric: ``"euclidean"`` ranks by ascending Euclidean distance, ``"cosine"`` by
            descending cosine similarity. Ties go to the lower gallery index.

    Returns:
        ``"precision@k"``: the mean over classes of the share of the top k that belong to
        the query's class; ``"precision@k/<class id>"``: that share for each class.
    """
    device = query_features.device
    query_classes = query_classes.to(device)
    gallery_features, gallery_labels = gallery_features.to(device), gallery_labels.to(device)
    if len(query_features) != len(query_classes):
        raise GZSLError(f"{len(query_features)} queries but {len(query_classes)} query classes")
    if len(torch.unique(query_classes)) != len(query_classes):
        raise GZSLError("query classes repeat; give one query per class")
    if not ks or min(ks) < 1 or max(ks) > len(gallery_features):
        raise GZSLError(f"cut-offs {tuple(ks)} must lie in 1..{len(gallery_features)} "
                        "(the gallery size)")
    if metric == "euclidean":
        distances = torch.cdist(query_features.double(), gallery_features.double(),
                                compute_mode="donot_use_mm_for_euclid_dist")
    elif metric == "cosine":
        query = torch.nn.functional.normalize(query_features.double(), dim=1)
        gallery = torch.nn.functional.normalize(gallery_features.double(), dim=1)
        distances = -(query @ gallery.T)
    else:
        raise GZSLError(f"unknown retrieval metric {metric!r}; use 'euclidean' or 'cosine'")
    ranking = torch.sort(distances, dim=1, stable=True).indices[:, : max(ks)]
    hits = (gallery_labels[ranking] == query_classes.unsqueeze(1)).double()
    result: dict[str, float] = {}
    for k in ks:
        per_class = (100.0 * hits[:, :k].mean(dim=1)).tolist()
        result[f"precision@{k}"] = sum(per_class) / len(per_class)
        for cls, value in zip(query_classes.tolist(), per_class, strict=True):
            result[f"precision@{k}/{cls}"] = value
    return result
