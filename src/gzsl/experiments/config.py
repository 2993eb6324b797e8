"""Experiment configuration: presets as TOML data files, ``--set`` overrides, resolution.

Importing this module does not import PyTorch (the CLI's ``--help`` uses it).
A preset (``presets/<method>/<dataset>.toml``) carries a method's settings for one
dataset beside the published numbers they should reproduce. Resolution turns a method,
a dataset, an optional preset and ``section.key=value`` overrides into one
:class:`ExperimentConfig` whose every field is recorded in the run directory.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from gzsl.data.errors import GZSLError, check_choice
from gzsl.data.loaders import LAYOUTS, SEMANTICS
from gzsl.data.preprocessing import Scaling
from gzsl.methods.base import (
    COUNT,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    NonEmpty,
    OneOf,
    Range,
    Settings,
    config_from_dict,
    get_method,
    upgrade_saved_settings,
)
from gzsl.utils import did_you_mean

PRESET_DIR = Path(__file__).resolve().parent / "presets"
Selection = Literal["val", "final", "test-oracle"]
SELECTIONS: tuple[str, ...] = ("val", "final", "test-oracle")
CLASSIFIERS: tuple[str, ...] = ("softmax", "weighted-softmax", "svm", "weighted-svm")
#: How ``val`` carries the chosen generator checkpoint to the final task.
TRANSFERS: tuple[str, ...] = ("epoch", "iteration")
SEEN_FEATURES: tuple[str, ...] = ("real", "synthetic")


@dataclass(frozen=True)
class DataConfig(Settings):
    """Which files to read and how to preprocess features (fitted on training data only)."""

    layout: Annotated[str | None, OneOf(LAYOUTS)] = None
    semantics: Annotated[str, OneOf(SEMANTICS)] = "att"
    preprocessing: Scaling = "minmax"
    l2: bool = False


@dataclass(frozen=True)
class EvaluationConfig(Settings):
    """How a generator is turned into a score: synthesis, final classifier, checkpoints.

    Attributes:
        n_synthetic: synthetic features per unseen class.
        n_synthetic_grid: multipliers of ``n_synthetic`` tried under ``val`` selection
            (the count moves H a lot, so it is chosen on the validation task, not fixed).
        classifier: final classifier (``softmax``; AMAZ adds weighted and SVM variants).
        classifier_lr, classifier_beta1, classifier_batch_size, classifier_epochs: the
            softmax classifier's Adam settings (SPEC: betas (0.5, 0.999)).
        checkpoint_every, checkpoint_after: evaluate the generator every so many
            iterations from ``checkpoint_after`` on (and always at the end).
        calibrated_stacking: subtract a constant from seen-class probabilities, chosen on
            the validation task (``val``) or the test set (``test-oracle``); off by default.
        zsl_classifier: also train a classifier over unseen classes on synthetic features
            alone for ZSL accuracy (T1), as the reference codes do.
        transfer: how ``val`` carries the generator checkpoint chosen on the validation
            task to the final task, whose training set is larger: at the same epoch
            (``"epoch"``, passes over the training features; the default), or after the
            same number of optimiser steps (``"iteration"``), for methods whose training
            dynamics follow the step count rather than the data seen, such as GANs.
        seen_features: what the final GZSL classifier learns the seen classes from:
            ``"real"`` (the seen classes' real training features; SPEC's protocol) or
            ``"synthetic"`` (``n_synthetic`` synthetic features per seen class, as AMAZ
            Sec. II-E and some other GZSL papers do).
        loss_every: record the mean of each loss over windows of this many iterations in
            ``losses.csv`` (a window also ends at each checkpoint); 0 (the default): about
            150 windows a phase. A display setting: it changes no result.
    """

    n_synthetic: Annotated[int, Range(1, 1_000_000, budget=True)] = 300
    n_synthetic_grid: Annotated[tuple[float, ...], NonEmpty(), POSITIVE] = (0.5, 1.0, 2.0)
    classifier: Annotated[str, OneOf(CLASSIFIERS)] = "softmax"
    classifier_lr: Annotated[float, POSITIVE] = 1e-3
    classifier_beta1: Annotated[float, FRACTION] = 0.5
    classifier_batch_size: Annotated[int, COUNT] = 256
    classifier_epochs: Annotated[int, Range(1, 10_000, budget=True)] = 30
    checkpoint_every: Annotated[int, COUNT] = 500
    checkpoint_after: Annotated[int, NON_NEGATIVE] = 0
    calibrated_stacking: bool = False
    zsl_classifier: bool = True
    transfer: Annotated[str, OneOf(TRANSFERS)] = "epoch"
    seen_features: Annotated[str, OneOf(SEEN_FEATURES)] = "real"
    loss_every: Annotated[int, NON_NEGATIVE] = 0


@dataclass(frozen=True)
class Preset:
    """One preset file, parsed but not yet resolved against a method's config class."""

    name: str
    method: str
    dataset: str
    description: str
    data: dict[str, Any] = field(default_factory=dict)
    method_settings: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    published: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    selection: str | None = None

    @property
    def settings(self) -> str:
        """``"paper"`` for a reading of a paper's settings (it carries that paper's published
        numbers), ``"ours"`` for settings of our own (demo, small, the ``-ours`` presets)."""
        return "paper" if self.published else "ours"


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines a run, fully resolved."""

    method: str
    dataset: str
    preset: str | None
    seed: int
    selection: str
    device: str
    data: DataConfig
    method_config: Any
    evaluation: EvaluationConfig
    published: dict[str, Any]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExperimentConfig:
        """Rebuild a config from :meth:`to_dict`'s output (a run's ``config.json``)."""

        try:
            method_cls = get_method(values["method"])
            return cls(
                method=method_cls.name, dataset=values["dataset"], preset=values.get("preset"),
                seed=int(values["seed"]), selection=values["selection"],
                device=values.get("device", "auto"),
                data=config_from_dict(DataConfig, values.get("data", {}), "data"),
                method_config=config_from_dict(
                    method_cls.Config,
                    upgrade_saved_settings(method_cls.name, values["method_config"]), "method"),
                evaluation=config_from_dict(EvaluationConfig, values.get("evaluation", {}),
                                            "evaluation"),
                published=dict(values.get("published", {})),
            )
        except (KeyError, TypeError) as error:
            raise GZSLError(f"incomplete run configuration: {error!r} missing or malformed") \
                from error

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method, "dataset": self.dataset, "preset": self.preset,
            "seed": self.seed, "selection": self.selection, "device": self.device,
            "data": dataclasses.asdict(self.data),
            "method_config": dataclasses.asdict(self.method_config),
            "evaluation": dataclasses.asdict(self.evaluation),
            "published": self.published,
        }


def list_presets() -> list[Preset]:
    """Every preset shipped with the package, sorted by method then dataset."""
    return [load_preset(path) for path in sorted(PRESET_DIR.glob("*/*.toml"))]


def find_preset(method: str, name: str) -> Path | None:
    """Path of ``name`` (a file path, or a preset name of ``method``) or None if absent."""
    candidate = Path(name)
    if candidate.suffix == ".toml" and candidate.is_file():
        return candidate
    path = PRESET_DIR / method.lower() / f"{name.lower()}.toml"
    return path if path.is_file() else None


def load_preset(path: Path, _chain: tuple[str, ...] = ()) -> Preset:
    """Parse one preset file; a clear error names the file when it is malformed.

    ``extends = "METHOD/NAME"`` starts from that shipped preset's ``method``, ``evaluation``
    and ``data`` settings, this file's own taking precedence key by key; its description,
    dataset, published numbers and selection are never inherited (a preset of our own
    settings must not carry a paper's numbers).
    """
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise GZSLError(f"cannot read preset {path}: {error}") from error
    allowed = {"description", "dataset", "method", "data", "method_settings", "evaluation",
               "published", "selection", "extends"}
    raw_method = raw.pop("method", {})
    unknown = set(raw) - allowed
    if unknown:
        raise GZSLError(f"preset {path}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    selection = raw.get("selection")
    if selection is not None and selection not in SELECTIONS:
        raise GZSLError(f"preset {path}: selection {selection!r} is not one of "
                        f"{', '.join(SELECTIONS)}")
    sections = {"method": dict(raw_method), "evaluation": dict(raw.get("evaluation", {})),
                "data": dict(raw.get("data", {}))}
    if "extends" in raw:
        base = _base_preset(path, str(raw["extends"]), (*_chain, str(path.resolve())))
        sections = {"method": {**base.method_settings, **sections["method"]},
                    "evaluation": {**base.evaluation, **sections["evaluation"]},
                    "data": {**base.data, **sections["data"]}}
    return Preset(
        name=path.stem,
        method=path.parent.name,
        dataset=str(raw.get("dataset", path.stem)),
        description=str(raw.get("description", "")),
        data=sections["data"],
        method_settings=sections["method"],
        evaluation=sections["evaluation"],
        published=dict(raw.get("published", {})),
        path=str(path),
        selection=selection,
    )


def _base_preset(path: Path, extends: str, chain: tuple[str, ...]) -> Preset:
    """The shipped preset ``METHOD/NAME`` that ``path`` extends, loaded (itself resolved)."""
    method, _, name = extends.partition("/")
    base = find_preset(method, name) if method and name and "/" not in name else None
    if base is None or base.suffix != ".toml" or not base.is_relative_to(PRESET_DIR):
        raise GZSLError(f"preset {path}: extends {extends!r} names no shipped preset; "
                        "write METHOD/NAME as `gzsl list` shows them, e.g. amaz/demo-awa2")
    if str(base.resolve()) in chain:
        raise GZSLError(f"preset {path}: extends {extends!r} leads back to itself")
    return load_preset(base, chain)


def parse_override(text: str) -> tuple[str, str, Any]:
    """``section.key=value`` (section: method, evaluation or data) into its three parts.

    Values are read as TOML literals (``3``, ``1e-3``, ``true``, ``[0.5, 1]``); anything that
    is not a TOML literal is taken as a string. A bare ``key=value`` means ``method.key``.
    """
    if "=" not in text:
        raise GZSLError(f"--set {text!r}: expected section.key=value, e.g. method.epochs=10")
    key, value_text = text.split("=", 1)
    section, _, name = key.strip().rpartition(".")
    section = section or "method"
    if section not in ("method", "evaluation", "data"):
        raise GZSLError(f"--set {text!r}: section must be method, evaluation or data")
    try:
        value = tomllib.loads(f"v = {value_text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = value_text.strip()
    return section, name, value


SECTIONS: tuple[str, ...] = ("method", "evaluation", "data")


def _check_names(method_cls: type, sections: dict[str, dict[str, Any]]) -> None:
    """Every setting named in ``sections`` exists; a mistyped one is an error naming the
    closest real one and the valid ones."""
    classes = {"method": method_cls.Config, "evaluation": EvaluationConfig, "data": DataConfig}
    for section, values in sections.items():
        names = sorted(f.name for f in dataclasses.fields(classes[section]))
        for key in values:
            if key not in names:
                raise GZSLError(f"unknown setting {section}.{key} for method "
                                f"{method_cls.name}."
                                + did_you_mean(f"{section}.{key}",
                                               [f"{section}.{n}" for n in names])
                                + f" (valid: {', '.join(names)})")


def section_of(method: str, name: str) -> str:
    """The section (``method``, ``evaluation`` or ``data``) that has a setting ``name``."""

    fields = {"method": get_method(method).Config, "evaluation": EvaluationConfig,
              "data": DataConfig}
    owners = [section for section, cls in fields.items()
              if name in {f.name for f in dataclasses.fields(cls)}]
    if len(owners) == 1:
        return owners[0]
    if owners:
        raise GZSLError(f"setting {name!r} exists in sections {' and '.join(owners)}; name "
                        f"it as section.key ({', '.join(f'{o}.{name}' for o in owners)})")
    every = [f.name for cls in fields.values() for f in dataclasses.fields(cls)]
    raise GZSLError(f"unknown setting {name!r} for method {get_method(method).name}."
                    f"{did_you_mean(name, every)} See docs/cli.md for the settings of each "
                    "section")


def resolve(method: str, dataset: str, *, preset: str | None = None,
            overrides: list[str] | tuple[str, ...] = (), seed: int = 0,
            selection: str | None = None, device: str = "auto",
            values: dict[str, Any] | None = None) -> ExperimentConfig:
    """Combine defaults, the preset (named, a path, or the dataset's own) and overrides.

    ``overrides`` are ``--set`` texts (``section.key=value``); ``values`` maps
    ``section.key`` (or a bare key, looked up with :func:`section_of`) to Python values,
    applied after them. ``selection`` None is the preset's own (its ``selection`` key;
    the ImageNet-21K presets say ``final``) or ``val``. A dataset without validation
    classes by definition (the ImageNet-21K splits) refuses ``val`` here, before any
    file is read (:func:`gzsl.data.imagenet.check_selection`).
    """
    from gzsl.data.imagenet import check_selection
    from gzsl.methods.base import available_methods

    methods = available_methods()
    if method.lower() not in methods:
        raise GZSLError(f"unknown method {method!r}.{did_you_mean(method, methods)} "
                        f"(available: {', '.join(methods)})")
    method_cls = get_method(method)
    if selection is not None:
        check_choice("selection", selection, SELECTIONS)
    path = find_preset(method_cls.name, preset or dataset)
    if preset is not None and path is None:
        names = [p.stem for p in sorted((PRESET_DIR / method_cls.name).glob("*.toml"))]
        raise GZSLError(f"no preset {preset!r} for method {method_cls.name}."
                        f"{did_you_mean(preset, names)} (available: "
                        f"{', '.join(names) or 'none'}; or pass a .toml path)")
    loaded = load_preset(path) if path is not None else None
    selection = selection or (loaded.selection if loaded else None) or "val"
    check_selection(dataset, selection)
    sections: dict[str, dict[str, Any]] = {
        "method": dict(loaded.method_settings) if loaded else {},
        "evaluation": dict(loaded.evaluation) if loaded else {},
        "data": dict(loaded.data) if loaded else {},
    }
    for text in overrides:
        section, name, value = parse_override(text)
        sections[section][name] = value
    for key, value in (values or {}).items():
        section, _, name = key.rpartition(".")
        section = section or section_of(method_cls.name, name)
        check_choice("settings section", section, SECTIONS)
        sections[section][name] = list(value) if isinstance(value, tuple) else value
    _check_names(method_cls, sections)
    return ExperimentConfig(
        method=method_cls.name,
        dataset=dataset,
        preset=loaded.path if loaded else None,
        seed=seed,
        selection=selection,
        device=device,
        data=config_from_dict(DataConfig, sections["data"], "data"),
        method_config=config_from_dict(method_cls.Config, sections["method"], "method"),
        evaluation=config_from_dict(EvaluationConfig, sections["evaluation"], "evaluation"),
        published=dict(loaded.published) if loaded else {},
    )


def preset_name(path: str | None) -> str | None:
    """A preset's name as users type it: ``gsmflow/demo`` for one shipped with the package,
    the file's path for a user's own, None for none."""
    if path is None:
        return None
    try:
        shipped = Path(path).resolve().relative_to(PRESET_DIR)
    except ValueError:
        return str(path)
    return shipped.with_suffix("").as_posix()


#: Settings that change how a run is shown or chunked, never its numbers.
DISPLAY_SETTINGS: frozenset[str] = frozenset({
    "method.progress", "method.synthesis_chunk", "evaluation.loss_every"})


def flat_settings(values: dict[str, Any]) -> dict[str, Any]:
    """A ``config.json``'s settings as ``section.key`` -> value, in ``--set`` spelling."""
    sections = {"data": "data", "method_config": "method", "evaluation": "evaluation"}
    return {f"{shown}.{key}": list(value) if isinstance(value, tuple) else value
            for section, shown in sections.items()
            for key, value in (values.get(section) or {}).items()}


def overrides_from_preset(values: dict[str, Any]) -> dict[str, Any] | None:
    """Settings of a run (its ``config.json`` as a dict) that differ from its preset's
    (or, without a preset, from the defaults), as ``section.key`` -> value; display
    settings left out. None when the preset cannot be read any more."""
    try:
        base = resolve(values["method"], values["dataset"], preset=values.get("preset"),
                       seed=int(values.get("seed", 0)),
                       selection=values.get("selection", "val")).to_dict()
    except (GZSLError, KeyError, TypeError, ValueError):
        return None
    if values.get("preset") is None and base.get("preset") is not None:
        return None  # the run used no preset, but the dataset has one now
    given, preset = flat_settings(values), flat_settings(base)
    return {key: value for key, value in given.items()
            if key not in DISPLAY_SETTINGS and preset.get(key, _MISSING) != value}


_MISSING = object()
