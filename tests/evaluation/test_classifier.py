"""The final softmax classifier: learns, respects sample weights, is deterministic."""

import torch

from gzsl.evaluation.classifier import SoftmaxClassifier, SoftmaxSettings


def _blobs(seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    labels = torch.tensor([1, 5, 9]).repeat_interleave(40)
    features = centres.repeat_interleave(40, dim=0) + 0.3 * torch.randn(120, 2, generator=g)
    return features, labels


def test_learns_separable_classes_with_global_ids():
    features, labels = _blobs()
    model = SoftmaxClassifier(torch.tensor([1, 5, 9]), 2,
                              SoftmaxSettings(lr=0.05, batch_size=32, epochs=20))
    model.fit(features, labels, rng=torch.Generator().manual_seed(0))
    assert (model.predict(features) == labels).float().mean() > 0.97
    assert torch.allclose(model.log_probabilities(features).exp().sum(1), torch.ones(120))


def test_on_epoch_called_every_epoch_and_deterministic():
    features, labels = _blobs()
    settings = SoftmaxSettings(lr=0.01, batch_size=16, epochs=4)
    seen_epochs = []
    first = SoftmaxClassifier(torch.tensor([1, 5, 9]), 2, settings).fit(
        features, labels, rng=torch.Generator().manual_seed(3),
        on_epoch=lambda e, _: seen_epochs.append(e))
    second = SoftmaxClassifier(torch.tensor([1, 5, 9]), 2, settings).fit(
        features, labels, rng=torch.Generator().manual_seed(3))
    assert seen_epochs == [1, 2, 3, 4]
    assert torch.equal(first.linear_.weight, second.linear_.weight)


def test_zero_weight_samples_are_ignored():
    features, labels = _blobs()
    # relabel 30 of class 9's 40 samples as class 1 with zero weight: they must not count
    corrupted = labels.clone()
    relabelled = torch.zeros_like(labels, dtype=torch.bool)
    relabelled[80:110] = True
    corrupted[relabelled] = 1
    weights = torch.where(relabelled, 0.0, 1.0)
    settings = SoftmaxSettings(lr=0.05, batch_size=32, epochs=15)
    g = torch.Generator().manual_seed(0)
    weighted = SoftmaxClassifier(torch.tensor([1, 5, 9]), 2, settings).fit(
        features, corrupted, rng=g, sample_weights=weights)
    unweighted = SoftmaxClassifier(torch.tensor([1, 5, 9]), 2, settings).fit(
        features, corrupted, rng=torch.Generator().manual_seed(0))
    region = features[labels == 9]
    assert (weighted.predict(region) == 9).float().mean() > 0.9
    assert (unweighted.predict(region) == 1).float().mean() > 0.5


def test_state_dict_round_trip():
    features, labels = _blobs()
    model = SoftmaxClassifier(torch.tensor([1, 5, 9]), 2, SoftmaxSettings(epochs=2)).fit(
        features, labels, rng=torch.Generator().manual_seed(0))
    again = SoftmaxClassifier.from_state_dict(model.state_dict())
    assert torch.equal(again.predict(features), model.predict(features))


def test_rejects_labels_outside_class_list():
    features, labels = _blobs()
    model = SoftmaxClassifier(torch.tensor([1, 5]), 2, SoftmaxSettings(epochs=1))
    try:
        model.fit(features, labels, rng=torch.Generator().manual_seed(0))
    except ValueError as error:
        assert "outside" in str(error)
    else:
        raise AssertionError("labels of class 9 were accepted by a classifier over [1, 5]")


def _reference_fit(features, targets, settings, seed, weights=None):
    """The SPEC's loss written out: mean (or weighted mean) NLL of log-softmax, same draws."""
    generator = torch.Generator().manual_seed(seed)
    init_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        linear = torch.nn.Linear(features.shape[1], 3)
        torch.nn.init.xavier_normal_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
    optimiser = torch.optim.Adam(linear.parameters(), lr=settings.lr,
                                 betas=(settings.beta1, 0.999))
    for _ in range(settings.epochs):
        order = torch.randperm(len(features), generator=generator)
        for start in range(0, len(features), settings.batch_size):
            index = order[start:start + settings.batch_size]
            log_probs = torch.log_softmax(linear(features[index]), dim=1)
            losses = -log_probs.gather(1, targets[index].unsqueeze(1)).squeeze(1)
            if weights is None:
                loss = losses.mean()
            else:
                loss = (losses * weights[index]).sum() / weights[index].sum().clamp_min(1e-12)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    return linear


def test_training_equals_the_written_out_loss_bit_for_bit():
    """Speed rewrites of the training step (fused loss kernels) must not move a result."""
    features, labels = _blobs()
    targets = torch.searchsorted(torch.tensor([1, 5, 9]), labels)
    weights = torch.rand(len(labels), generator=torch.Generator().manual_seed(4))
    settings = SoftmaxSettings(lr=0.05, batch_size=16, epochs=3)
    for sample_weights in (None, weights):
        model = SoftmaxClassifier(torch.tensor([1, 5, 9]), 2, settings).fit(
            features, labels, rng=torch.Generator().manual_seed(5),
            sample_weights=sample_weights)
        reference = _reference_fit(features, targets, settings, 5, sample_weights)
        assert torch.equal(model.linear_.weight, reference.weight)
        assert torch.equal(model.linear_.bias, reference.bias)
