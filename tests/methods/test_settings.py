"""Settings are checked in one place, against one declared table per config class, before
anything runs: types (with the section and key named), ranges, choices and budget bounds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import pytest

from gzsl.data.errors import GZSLError
from gzsl.experiments.config import DataConfig, EvaluationConfig, resolve
from gzsl.methods.base import (
    COUNT,
    LIFT_BUDGET_BOUNDS,
    PROBABILITY,
    NonEmpty,
    OneOf,
    Range,
    Settings,
    config_from_dict,
)
from gzsl.methods.gsmflow import GSMFlow, GSMFlowConfig


@pytest.mark.parametrize(("override", "message"), [
    ("evaluation.n_synthetic=abc", "evaluation.n_synthetic='abc': expected an integer"),
    ("method.ridge=abc", "method.ridge='abc': expected a number"),
    ("evaluation.classifier_epochs=2.5", "evaluation.classifier_epochs=2.5: expected an integer"),
    ("evaluation.classifier_epochs=true", "classifier_epochs=True: expected an integer"),
    ("evaluation.classifier_lr='0.1'", "classifier_lr='0.1': expected a number"),
    ("evaluation.zsl_classifier=1", "zsl_classifier=1: expected true or false"),
    ("evaluation.n_synthetic_grid=[1, 'a']",
     "n_synthetic_grid=(1, 'a'): expected a list of numbers"),
    ("evaluation.n_synthetic_grid=[]", "n_synthetic_grid=(): must not be empty"),
    ("evaluation.n_synthetic_grid=[1, -2]", "n_synthetic_grid=(1, -2): must be > 0"),
    ("evaluation.n_synthetic=0", "evaluation.n_synthetic=0: must be >= 1"),
    ("evaluation.classifier=knn", "classifier='knn': must be one of softmax, "),
    ("evaluation.classifier_beta1=1", "classifier_beta1=1: must be in [0, 1)"),
    ("data.preprocessing=bogus", "data.preprocessing='bogus': expected one of minmax, none"),
    ("data.semantics=words", "data.semantics='words': must be one of att, sent"),
    ("data.l2=yes", "data.l2='yes': expected true or false"),
])
def test_bad_settings_are_one_line_errors_naming_section_key_value_and_expectation(
        override, message):
    with pytest.raises(GZSLError, match="^invalid setting ") as error:
        resolve("gaussian", "demo", overrides=[override])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_integers_are_accepted_for_numbers_and_lists_for_tuples():
    config = resolve("gaussian", "demo", overrides=["method.ridge=2", "evaluation.classifier_lr=1",
                                                    "evaluation.n_synthetic_grid=[1, 2]"])
    assert config.method_config.ridge == 2 and config.evaluation.n_synthetic_grid == (1, 2)


def test_absurd_budgets_are_caught_with_a_way_beyond_them(monkeypatch):
    monkeypatch.delenv(LIFT_BUDGET_BOUNDS, raising=False)
    with pytest.raises(GZSLError, match=f"must be <= 10000 .*{LIFT_BUDGET_BOUNDS}=1"):
        resolve("gaussian", "demo", overrides=["evaluation.classifier_epochs=1000000000"])
    with pytest.raises(GZSLError, match="method.epochs=1000000000: must be <= 100000"):
        resolve("gsmflow", "demo", overrides=["method.epochs=1000000000"])
    monkeypatch.setenv(LIFT_BUDGET_BOUNDS, "1")
    config = resolve("gaussian", "demo", overrides=["evaluation.classifier_epochs=1000000000"])
    assert config.evaluation.classifier_epochs == 10**9


def test_direct_construction_is_checked_too():
    with pytest.raises(GZSLError, match=r"GSMFlowConfig.perturbation_dropout=1.0: must be in"):
        GSMFlow(perturbation_dropout=1.0)
    with pytest.raises(GZSLError, match="EvaluationConfig.checkpoint_every=0"):
        EvaluationConfig(checkpoint_every=0)
    with pytest.raises(GZSLError, match="DataConfig.layout='zip'"):
        DataConfig(layout="zip")
    assert DataConfig(layout=None).layout is None


@dataclass(frozen=True)
class _Declared(Settings):
    count: Annotated[int, COUNT] = 1
    share: Annotated[float, PROBABILITY] = 0.5
    maybe: Annotated[float | None, Range(0, 10)] = None
    widths: Annotated[tuple[int, int], COUNT] = (1, 2)
    names: Annotated[tuple[str, ...], NonEmpty()] = ("a",)
    mode: Annotated[str, OneOf(("x", "y"))] = "x"


@pytest.mark.parametrize(("values", "message"), [
    ({"count": 0}, "count=0: must be >= 1"),
    ({"share": 1.5}, "share=1.5: must be in [0, 1]"),
    ({"maybe": 11}, "maybe=11: must be in [0, 10]"),
    ({"maybe": "x"}, "maybe='x': expected a number or none"),
    ({"widths": [1, 2, 3]}, "widths=(1, 2, 3): expected a list of 2 integers"),
    ({"widths": [1, 0]}, "widths=(1, 0): must be >= 1"),
    ({"names": [1]}, "names=(1,): expected a list of strings"),
    ({"mode": "z"}, "mode='z': must be one of x, y"),
])
def test_declared_constraints(values, message):
    with pytest.raises(GZSLError, match="invalid setting s\\.") as error:
        config_from_dict(_Declared, values, "s")
    assert message in str(error.value)
    assert config_from_dict(_Declared, {"maybe": 10, "share": 1, "widths": [3, 4]}).maybe == 10


def test_every_method_setting_has_a_type_that_is_checked():
    """No field escapes the table: each rejects a value of the wrong kind."""
    import dataclasses

    from gzsl.methods.base import available_methods

    wrong = {int: "abc", float: "abc", bool: "abc", str: 3}
    for method in available_methods().values():
        if not issubclass(method.Config, Settings):
            continue
        for field in dataclasses.fields(method.Config):
            value = wrong.get(type(field.default), ["?"])
            with pytest.raises(GZSLError, match=f"invalid setting method.{field.name}="):
                config_from_dict(method.Config, {field.name: value}, "method")


def test_gsmflow_betas_need_two_fractions():
    with pytest.raises(GZSLError, match="betas=.*expected a list of 2 numbers"):
        config_from_dict(GSMFlowConfig, {"betas": [0.9]}, "method")
