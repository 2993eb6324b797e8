"""Zero-shot image retrieval (AMAZ, Sec. III-D): rankings and precision computed by hand."""

from __future__ import annotations

import pytest
import torch

from gzsl.data.errors import GZSLError
from gzsl.evaluation.retrieval import retrieval_precision, synthetic_queries
from gzsl.methods.gaussian import GaussianBaseline


def test_precision_of_hand_ranked_gallery():
    # 1-d gallery; labels per position.
    gallery = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0], [3.0]])
    labels = torch.tensor([4, 4, 9, 9, 9, 4, 9])
    queries = torch.tensor([[0.2], [11.2]])
    classes = torch.tensor([4, 9])
    # query 0 (class 4): nearest 0, 1, 2, 3(pos 6), 10 -> labels 4, 4, 9, 9, 9
    # query 1 (class 9): nearest 11, 12 / 10, ... -> 11 (9), 12 (4), 10 (9), 3 (9), 2 (9)
    result = retrieval_precision(queries, classes, gallery, labels, ks=(1, 3, 5))
    assert result["precision@1/4"] == pytest.approx(100.0)
    assert result["precision@3/4"] == pytest.approx(200 / 3)
    assert result["precision@5/4"] == pytest.approx(40.0)
    assert result["precision@1/9"] == pytest.approx(100.0)
    assert result["precision@3/9"] == pytest.approx(200 / 3)
    assert result["precision@5/9"] == pytest.approx(80.0)
    assert result["precision@5"] == pytest.approx(60.0)
    assert result["precision@3"] == pytest.approx(200 / 3)


def test_euclidean_and_cosine_rank_differently():
    gallery = torch.tensor([[10.0, 0.0], [0.7, 0.7]])
    labels = torch.tensor([0, 1])
    query, cls = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    # Euclidean: |q - g0| = 9 > |q - g1| = 0.76 -> wrong image first; cosine: g0 aligned.
    assert retrieval_precision(query, cls, gallery, labels, ks=(1,))["precision@1"] == 0.0
    assert retrieval_precision(query, cls, gallery, labels, ks=(1,),
                               metric="cosine")["precision@1"] == 100.0


def test_ties_go_to_the_lower_gallery_index():
    gallery = torch.tensor([[1.0], [-1.0], [1.0]])
    query = torch.tensor([[0.0]])
    assert retrieval_precision(query, torch.tensor([5]), gallery, torch.tensor([5, 6, 6]),
                               ks=(1, 2))["precision@2"] == 50.0
    assert retrieval_precision(query, torch.tensor([6]), gallery, torch.tensor([5, 6, 6]),
                               ks=(1,))["precision@1"] == 0.0


def test_bad_requests_are_errors():
    gallery, labels = torch.zeros(3, 2), torch.tensor([0, 1, 1])
    with pytest.raises(GZSLError, match="gallery size"):
        retrieval_precision(torch.zeros(1, 2), torch.tensor([0]), gallery, labels, ks=(5,))
    with pytest.raises(GZSLError, match="repeat"):
        retrieval_precision(torch.zeros(2, 2), torch.tensor([1, 1]), gallery, labels, ks=(1,))
    with pytest.raises(GZSLError, match="metric"):
        retrieval_precision(torch.zeros(1, 2), torch.tensor([1]), gallery, labels, ks=(1,),
                            metric="manhattan")


def test_synthetic_queries_are_class_means_of_samples(tiny_seen_data):
    model = GaussianBaseline().fit(tiny_seen_data, rng=torch.Generator().manual_seed(0))
    semantics = tiny_seen_data.class_semantics[6:8]
    queries = synthetic_queries(model, semantics, n=7, rng=torch.Generator().manual_seed(1))
    samples = model.sample(semantics, 7, rng=torch.Generator().manual_seed(1))
    assert queries.shape == (2, 8)
    torch.testing.assert_close(queries[0], samples[:7].mean(0))
    torch.testing.assert_close(queries[1], samples[7:].mean(0))
