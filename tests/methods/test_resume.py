"""Every method resumes exactly: a fit continued from a checkpoint's training state ends where
the uninterrupted fit ends (same weights, same later checkpoints, same random state)."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_same_state

from gzsl.data.errors import GZSLError
from gzsl.methods.amaz import AMAZ
from gzsl.methods.base import Checkpoint, CheckpointSchedule, Generator, SeenData, cpu_copy
from gzsl.methods.gaussian import GaussianBaseline
from gzsl.methods.gsmflow import GSMFlow
from gzsl.methods.vaecflow import VAECFlow

#: Tiny settings with checkpoints that fall mid-epoch and on epoch ends (GSMFlow: 3 steps
#: per epoch, checkpoints every 2; its StepLR steps each epoch so the schedule matters).
MODELS = {
    "gsmflow": lambda: GSMFlow(epochs=4, batch_size=60, lr=1e-3, lr_step_epochs=1,
                               lr_gamma=0.5, coupling_blocks=2, hidden_dim=16,
                               global_semantic_dim=8, prototype_weight=1.0, perturbation=0.05,
                               perturbation_dropout=0.3),
    "vaecflow": lambda: VAECFlow(iterations=12, encoder_hidden=(16, 16), decoder_hidden=8,
                                 coupling_hidden=8, batch_size=70, initialisation_size=100,
                                 zero_dequantisation=0.01),
    "amaz": lambda: AMAZ(iterations=8, n_way=3, support_shots=2, query_shots=2,
                         tasks_per_batch=2, generator_width=2.0, embedding_width=1.0,
                         critic_widths=(2.0, 1.0), classifier_widths=(2.0,),
                         attribute_discriminator_widths=(2.0,), critic_steps=2,
                         auxiliary_pretraining=2, real_auxiliaries=True, weight_average=0.9),
    "gaussian": GaussianBaseline,
}


def _run(model: Generator, data: SeenData, *, resume: dict | None = None,
         stop_after: int | None = None) -> tuple[list[Checkpoint], list[dict], torch.Generator]:
    """Fit with checkpoints every 2 iterations; the callback draws from the generator as an
    evaluation would, keeps every training state, and may stop training (an interruption)."""
    rng = torch.Generator().manual_seed(7)
    checkpoints, states = [], []

    def callback(checkpoint: Checkpoint) -> bool:
        torch.rand(3, generator=rng)
        checkpoints.append(checkpoint)
        states.append(checkpoint.training_state())
        return stop_after is not None and len(checkpoints) == stop_after

    model.fit(data, rng=rng, schedule=CheckpointSchedule(every=2, callback=callback),
              resume=resume)
    return checkpoints, states, rng


@pytest.mark.parametrize("name", ["gsmflow", "vaecflow", "amaz"])
def test_a_resumed_fit_ends_where_the_uninterrupted_one_ends(name, tiny_seen_data):
    uninterrupted = MODELS[name]()
    whole, whole_states, whole_rng = _run(uninterrupted, tiny_seen_data)
    semantics = tiny_seen_data.class_semantics[6:]
    expected_sample = uninterrupted.sample(semantics, 5, rng=torch.Generator().manual_seed(1))
    for stop in range(1, len(whole)):  # mid-epoch and epoch-end checkpoints alike
        cut, cut_states, _ = _run(MODELS[name](), tiny_seen_data, stop_after=stop)
        assert [c.iteration for c in cut] == [c.iteration for c in whole[:stop]]
        resumed = MODELS[name]()
        rest, rest_states, rest_rng = _run(resumed, tiny_seen_data, resume=cut_states[-1])
        assert [(c.iteration, c.epoch, c.losses) for c in rest] == \
            [(c.iteration, c.epoch, c.losses) for c in whole[stop:]]
        for left, right in zip(rest_states, whole_states[stop:], strict=True):
            assert_same_state(left, right)
        assert_same_state(cpu_copy(resumed.state_dict()), cpu_copy(uninterrupted.state_dict()))
        torch.testing.assert_close(rest_rng.get_state(), whole_rng.get_state(), rtol=0, atol=0)
        torch.testing.assert_close(
            resumed.sample(semantics, 5, rng=torch.Generator().manual_seed(1)),
            expected_sample, rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_the_state_at_the_last_checkpoint_resumes_to_a_finished_fit(name, tiny_seen_data):
    uninterrupted = MODELS[name]()
    _, states, _ = _run(uninterrupted, tiny_seen_data)
    resumed = MODELS[name]()
    rest, _, _ = _run(resumed, tiny_seen_data, resume=states[-1])
    assert rest == []
    assert_same_state(cpu_copy(resumed.state_dict()), cpu_copy(uninterrupted.state_dict()))
    semantics = tiny_seen_data.class_semantics[:2]
    torch.testing.assert_close(
        resumed.sample(semantics, 3, rng=torch.Generator().manual_seed(0)),
        uninterrupted.sample(semantics, 3, rng=torch.Generator().manual_seed(0)),
        rtol=0, atol=0)


def test_a_training_state_of_another_method_is_refused(tiny_seen_data):
    _, states, _ = _run(MODELS["gaussian"](), tiny_seen_data)
    with pytest.raises(GZSLError, match="cannot resume gsmflow"):
        MODELS["gsmflow"]().fit(tiny_seen_data, rng=torch.Generator(), resume=states[0])


def test_a_checkpoint_without_a_snapshot_says_so():
    with pytest.raises(GZSLError, match="does not save a training state"):
        Checkpoint(iteration=1, epoch=1.0).training_state()
