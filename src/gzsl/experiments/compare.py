"""One table over many runs: mean ± standard deviation over seeds, grouped honestly.

Runs are grouped by method, dataset, selection protocol and whether the features were
synthetic; a selection protocol is never pooled with another (a ``test-oracle`` number
is an upper bound, a ``val`` number an honest estimate). When the runs of one group
differ in any setting recorded in their ``config.json`` (an ablation, a changed
``--set``), each setting is its own *variant* row, labelled with the settings that
differ, named by their overrides relative to the preset (``preset values``: the
preset's own on those settings); settings that only change display or chunking
(:data:`~gzsl.experiments.config.DISPLAY_SETTINGS`) never make a variant. The standard
deviation is the sample one (``n - 1``), 0 for a single run, as in
:func:`gzsl.experiments.reproduce.summarise`; tables show a single run's mean alone.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gzsl.data.errors import GZSLError
from gzsl.experiments.config import DISPLAY_SETTINGS, overrides_from_preset
from gzsl.experiments.reproduce import METRICS
from gzsl.experiments.rundir import CONFIG, RunDir, run_status
from gzsl.methods.base import upgrade_saved_settings
from gzsl.utils import atomic_write

__all__ = ["Group", "RunRecord", "compare_runs", "find_results", "read_run", "to_csv",
           "to_markdown"]

#: ``config.json`` sections whose settings tell variants apart (seed and device do not).
SETTING_SECTIONS = {"data": "data", "method_config": "method", "evaluation": "evaluation"}
#: Shown for a setting one run's config.json has and another's lacks.
UNSET = "(unset)"
#: Label of the variant whose settings, where variants differ, are the preset's.
PRESET_VALUES = "preset values"


@dataclass(frozen=True)
class RunRecord:
    """The parts of one run's ``results.json`` (and ``config.json``) that a comparison uses."""

    path: Path
    method: str
    dataset: str
    selection: str
    seed: int | None
    metrics: dict[str, float]
    synthetic_data: bool
    published: dict[str, Any]
    settings: dict[str, Any] | None = None
    overrides: dict[str, Any] | None = None


@dataclass(frozen=True)
class Group:
    """Runs of one method, dataset, selection protocol (and variant), summarised."""

    method: str
    dataset: str
    selection: str
    synthetic_data: bool
    variant: str
    runs: tuple[RunRecord, ...]
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    published: dict[str, Any] = field(default_factory=dict)

    @property
    def seeds(self) -> tuple[int | None, ...]:
        return tuple(sorted((r.seed for r in self.runs), key=lambda s: (s is None, s or 0)))

    @property
    def duplicate_seeds(self) -> bool:
        """True when two runs of the group share a seed (the same run copied twice?)."""
        known = [s for s in self.seeds if s is not None]
        return len(known) != len(set(known))

    @property
    def dataset_label(self) -> str:
        return f"{self.dataset} (SYNTHETIC)" if self.synthetic_data else self.dataset


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    """Every ``results.json`` under ``paths`` (run directories, or folders searched
    recursively, or ``results.json`` files), each once, in a stable order."""
    found: dict[Path, None] = {}
    for path in map(Path, paths):
        if path.is_file() and path.name == "results.json":
            found[path.resolve()] = None
        elif path.is_dir():
            for result in sorted(path.rglob("results.json")):
                found[result.resolve()] = None
        elif path.exists():
            raise GZSLError(f"{path} is neither a run directory nor a results.json file. "
                            "Fix: pass run directories or folders holding them")
        else:
            raise GZSLError(f"{path} does not exist. Fix: check the path")
    return list(found)


def find_unfinished(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories under ``paths`` that started but have no results yet (interrupted,
    or still running): ``config.json`` without ``results.json``."""
    found: dict[Path, None] = {}
    for path in map(Path, paths):
        if not path.is_dir():
            continue
        for config in sorted(path.rglob("config.json")):
            if run_status(config.parent) == "unfinished":
                found[config.parent.resolve()] = None
    return list(found)


def _metric(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _flatten(config: dict[str, Any]) -> dict[str, Any]:
    """``config.json`` settings as ``section.key`` -> value (``--set`` spelling)."""
    flat: dict[str, Any] = {}
    for section, shown in SETTING_SECTIONS.items():
        values = config.get(section) or {}
        if section == "method_config":  # settings renamed since, under today's names
            values = upgrade_saved_settings(str(config.get("method", "")).lower(), values)
        for key, value in values.items():
            if f"{shown}.{key}" in DISPLAY_SETTINGS:
                continue
            flat[f"{shown}.{key}"] = json.dumps(value, sort_keys=True) if isinstance(
                value, list | dict) else value
    return flat


def read_run(path: str | Path) -> RunRecord:
    """One ``results.json`` (and the ``config.json`` beside it, when there is one), checked."""
    path = Path(path)
    folder = RunDir(path.parent)
    results = folder.results()
    config = folder.config() if folder.file(CONFIG).is_file() else None
    settings = _flatten(config) if config is not None else None
    overrides = overrides_from_preset(config) if config is not None else None
    seed = results.get("seed")
    return RunRecord(path=path, method=results["method"], dataset=results["dataset"],
                     selection=results["selection"], seed=seed,
                     metrics={m: _metric(results.get(m)) for m in METRICS},
                     synthetic_data=bool(results.get("synthetic_data", False)),
                     published=dict(results.get("published") or {}), settings=settings,
                     overrides=overrides)


def _variants(runs: list[RunRecord]) -> dict[str, list[RunRecord]]:
    """Split runs of one method / dataset / selection by the settings they differ in."""
    configured = [r.settings for r in runs if r.settings is not None]
    keys = sorted({k for settings in configured for k in settings})
    differing = [k for k in keys if len({json.dumps(settings.get(k, UNSET), default=str)
                                         for settings in configured}) > 1]
    variants: dict[str, list[RunRecord]] = {}
    for run in runs:
        if run.settings is None:
            label = "config.json missing" if differing else ""
        elif run.overrides is not None and differing:
            label = ", ".join(f"{k}={_shown(run.overrides[k])}" for k in differing
                              if k in run.overrides) or PRESET_VALUES
        else:
            label = ", ".join(f"{k}={_shown(run.settings.get(k, UNSET))}" for k in differing)
        variants.setdefault(label, []).append(run)
    return variants


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _summary(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    mean = statistics.fmean(finite)
    return mean, statistics.stdev(finite) if len(finite) > 1 else 0.0


def compare_runs(records: Iterable[RunRecord]) -> list[Group]:
    """Group runs (method, dataset, selection, synthetic, variant) and summarise each.

    Groups come sorted by method, dataset, then selection in the order val, final,
    test-oracle (honest first), then variant. A metric missing from some runs (T1 of a
    run without a ZSL classifier) is averaged over the runs that have it.
    """
    order = {"val": 0, "final": 1, "test-oracle": 2}
    base: dict[tuple[str, str, str, bool], list[RunRecord]] = {}
    for record in records:
        key = (record.method, record.dataset, record.selection, record.synthetic_data)
        base.setdefault(key, []).append(record)
    groups = []
    for (method, dataset, selection, synthetic), runs in base.items():
        for variant, members in _variants(runs).items():
            mean, std = {}, {}
            for metric in METRICS:
                mean[metric], std[metric] = _summary([r.metrics[metric] for r in members])
            published = next((r.published for r in members if r.published), {})
            groups.append(Group(method, dataset, selection, synthetic, variant, tuple(members),
                                mean, std, published))
    groups.sort(key=lambda g: (g.method, g.dataset.lower(), g.synthetic_data,
                               order.get(g.selection, 9), g.selection, g.variant))
    return groups


def _published_value(published: dict[str, Any], metric: str) -> float:
    return _metric(published.get(metric)) if metric in published else math.nan


def published_rows(groups: list[Group]) -> dict[tuple[str, str], dict[str, Any]]:
    """The published numbers of each (method, dataset), from the first group carrying them."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for group in groups:
        if group.published and (group.method, group.dataset) not in out:
            out[(group.method, group.dataset)] = group.published
    return out


def table_rows(groups: list[Group], *, published: bool = False) -> list[dict[str, Any]]:
    """Flat rows (one per group, plus one per published entry) for CSV and display.

    A published row follows the last group of its method and dataset; its ``selection``
    is the paper's protocol as its preset records it (``test-oracle`` where the authors'
    code selects on test data), ``not stated`` where the paper does not say.
    """
    papers = published_rows(groups) if published else {}
    rows: list[dict[str, Any]] = []
    for number, group in enumerate(groups):
        row: dict[str, Any] = {
            "kind": "runs", "method": group.method, "dataset": group.dataset,
            "synthetic_data": group.synthetic_data, "selection": group.selection,
            "variant": group.variant, "runs": len(group.runs),
            "seeds": " ".join("?" if s is None else str(s) for s in group.seeds),
            "source": ""}
        for metric in METRICS:  # one run has no spread to show
            row[f"{metric}_mean"] = group.mean[metric]
            row[f"{metric}_std"] = group.std[metric] if len(group.runs) > 1 else math.nan
        rows.append(row)
        key = (group.method, group.dataset)
        following = groups[number + 1] if number + 1 < len(groups) else None
        last_of_key = following is None or (following.method, following.dataset) != key
        if key in papers and last_of_key:
            paper = papers[key]
            entry: dict[str, Any] = {
                "kind": "published", "method": group.method, "dataset": group.dataset,
                "synthetic_data": False,
                "selection": str(paper.get("selection", "not stated")), "variant": "",
                "runs": "", "seeds": "", "source": str(paper.get("source", "paper"))}
            for metric in METRICS:
                entry[f"{metric}_mean"] = _published_value(paper, metric)
                entry[f"{metric}_std"] = math.nan
            rows.append(entry)
    return rows


def format_metric(mean: float, std: float) -> str:
    """``64.5 ± 1.2``; ``64.5`` for a published number; ``—`` when absent."""
    if not math.isfinite(mean):
        return "—"
    return f"{mean:.1f}" if not math.isfinite(std) else f"{mean:.1f} ± {std:.1f}"


def to_csv(groups: list[Group], *, published: bool = False) -> str:
    """The comparison as CSV text: means and standard deviations in separate columns."""
    rows = table_rows(groups, published=published)
    header = ["kind", "method", "dataset", "synthetic_data", "selection", "variant", "runs",
              "seeds", *(f"{m}_{s}" for m in METRICS for s in ("mean", "std")), "source"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else
                             round(v, 4) if isinstance(v, float) else v)
                         for k, v in row.items()})
    return buffer.getvalue()


def to_markdown(groups: list[Group], *, published: bool = False) -> str:
    """The comparison as a Markdown table, ``mean ± std`` per metric."""
    rows = table_rows(groups, published=published)
    with_variant = any(row["variant"] for row in rows)
    header = ["method", "dataset", "selection", *(["variant"] if with_variant else []),
              "runs (seeds)", *METRICS]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * (len(header) - len(METRICS)) + ["---:"] * len(METRICS))
             + "|"]
    for row in rows:
        dataset = f"{row['dataset']} (SYNTHETIC)" if row["synthetic_data"] else row["dataset"]
        if row["kind"] == "published":
            runs = f"published: {row['source']}"
        else:
            runs = f"{row['runs']} ({row['seeds']})"
        cells = [row["method"], dataset, row["selection"],
                 *([row["variant"]] if with_variant else []), runs,
                 *(format_metric(row[f"{m}_mean"], row[f"{m}_std"]) for m in METRICS)]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; a clear error when that cannot be done."""
    path = Path(path)
    if path.is_dir():
        raise GZSLError(f"{path} is a folder. Fix: give a file path to write to")
    try:
        return atomic_write(path, lambda handle: handle.write(text.encode()))
    except OSError as error:
        raise GZSLError(f"cannot write {path}: {error.strerror or error}. Fix: choose a "
                        "writable location with free space") from error
