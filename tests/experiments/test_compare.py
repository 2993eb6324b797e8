"""``compare``: grouping, mean ± std and outputs, on hand-made results.json files."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

import gzsl.cli.results  # noqa: F401  (registers predict, plot, compare)
from gzsl.cli import app
from gzsl.data.errors import GZSLError
from gzsl.experiments.compare import (
    compare_runs,
    find_results,
    read_run,
    table_rows,
    to_csv,
    to_markdown,
)

PUBLISHED = {"source": "GSMFlow (ACM MM 2021), Table 1", "selection": "test-oracle",
             "U": 64.5, "S": 82.1, "H": 72.3, "T1": 72.7}


def write_run(folder: Path, *, method="gsmflow", dataset="AWA2", selection="val", seed=0,
              U=50.0, S=70.0, H=58.0, T1=60.0, synthetic=False, published=None,
              method_config=None) -> Path:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({
        "method": method, "dataset": dataset, "selection": selection, "seed": seed,
        "U": U, "S": S, "H": H, "T1": T1, "synthetic_data": synthetic,
        "published": published or {}}))
    if method_config is not None:
        (folder / "config.json").write_text(json.dumps({
            "method": method, "dataset": dataset, "seed": seed, "selection": selection,
            "device": "cpu", "preset": f"/somewhere/{seed}.toml", "data": {"l2": False},
            "method_config": method_config, "evaluation": {"n_synthetic": 300},
            "published": published or {}}))
    return folder


@pytest.fixture
def runs(tmp_path) -> Path:
    base = tmp_path / "runs"
    for seed, h in enumerate((50.0, 52.0, 54.0)):
        write_run(base / "val" / f"seed{seed}", seed=seed, H=h, U=40.0 + seed, T1=61.0,
                  published=PUBLISHED)
    for seed, h in enumerate((70.0, 72.0)):
        write_run(base / "oracle" / f"seed{seed}", selection="test-oracle", seed=seed, H=h,
                  published=PUBLISHED)
    write_run(base / "gaussian", method="gaussian", H=30.0)
    write_run(base / "demo", dataset="demo", synthetic=True, H=20.0)
    return base


def _groups(base: Path):
    return compare_runs(read_run(path) for path in find_results([base]))


def _group(groups, **wanted):
    found = [g for g in groups if all(getattr(g, k) == v for k, v in wanted.items())]
    assert len(found) == 1, found
    return found[0]


def test_mean_and_sample_std_per_group(runs):
    groups = _groups(runs)
    val = _group(groups, method="gsmflow", dataset="AWA2", selection="val")
    assert val.mean["H"] == pytest.approx(52.0) and val.std["H"] == pytest.approx(2.0)
    assert val.mean["U"] == pytest.approx(41.0) and val.std["U"] == pytest.approx(1.0)
    assert val.std["T1"] == 0.0 and val.seeds == (0, 1, 2)
    oracle = _group(groups, method="gsmflow", selection="test-oracle")
    assert oracle.mean["H"] == pytest.approx(71.0)
    assert oracle.std["H"] == pytest.approx(math.sqrt(2.0))
    single = _group(groups, method="gaussian")
    assert single.mean["H"] == 30.0 and single.std["H"] == 0.0


def test_selection_protocols_datasets_and_synthetic_data_are_never_pooled(runs):
    groups = _groups(runs)
    assert len(groups) == 4
    write_run(runs / "fake-awa2", synthetic=True, seed=7, H=1.0)
    groups = _groups(runs)
    assert len(groups) == 5
    assert _group(groups, method="gsmflow", selection="val", synthetic_data=False).mean[
        "H"] == pytest.approx(52.0)
    order = [(g.method, g.dataset, g.selection) for g in groups if g.method == "gsmflow"
             and not g.synthetic_data and g.dataset == "AWA2"]
    assert order == [("gsmflow", "AWA2", "val"), ("gsmflow", "AWA2", "test-oracle")]


def test_runs_with_different_settings_are_separate_variants(tmp_path):
    for seed in (0, 1):
        write_run(tmp_path / f"full{seed}", seed=seed, H=60.0 + seed,
                  method_config={"use_perturbation": True, "epochs": 10})
        write_run(tmp_path / f"ablated{seed}", seed=seed, H=50.0 + seed,
                  method_config={"use_perturbation": False, "epochs": 10})
    groups = _groups(tmp_path)
    labels = sorted(g.variant for g in groups)
    assert labels == ["method.use_perturbation=false", "method.use_perturbation=true"]
    ablated = _group(groups, variant="method.use_perturbation=false")
    assert ablated.mean["H"] == pytest.approx(50.5) and len(ablated.runs) == 2


def test_seed_and_device_do_not_make_variants(tmp_path):
    for seed in (0, 1):
        write_run(tmp_path / f"s{seed}", seed=seed, method_config={"epochs": 10})
    (groups,) = _groups(tmp_path)
    assert groups.variant == "" and len(groups.runs) == 2


def test_missing_metric_is_averaged_over_the_runs_that_have_it(tmp_path):
    write_run(tmp_path / "a", seed=0, T1=60.0)
    write_run(tmp_path / "b", seed=1, T1=None)
    (group,) = _groups(tmp_path)
    assert group.mean["T1"] == 60.0 and group.std["T1"] == 0.0
    assert group.mean["H"] == 58.0


def test_find_results_searches_recursively_once_per_file(runs):
    found = find_results([runs, runs / "val", runs / "val" / "seed0" / "results.json"])
    assert len(found) == 7
    assert len(find_results([runs / "val" / "seed1"])) == 1
    with pytest.raises(GZSLError, match="does not exist"):
        find_results([runs / "nowhere"])


def test_unreadable_results_name_the_file(tmp_path):
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(GZSLError, match=r"results\.json"):
        read_run(tmp_path / "results.json")
    (tmp_path / "results.json").write_text(json.dumps({"U": 1}))
    with pytest.raises(GZSLError, match="has no valid 'method'"):
        read_run(tmp_path / "results.json")


def test_csv_and_markdown_outputs(runs):
    groups = _groups(runs)
    rows = list(csv.DictReader(io.StringIO(to_csv(groups, published=True))))
    published = [r for r in rows if r["kind"] == "published"]
    assert len(published) == 1
    assert published[0]["method"] == "gsmflow" and float(published[0]["H_mean"]) == 72.3
    assert published[0]["selection"] == "test-oracle" and published[0]["H_std"] == ""
    val = next(r for r in rows if r["kind"] == "runs" and r["selection"] == "val"
               and r["method"] == "gsmflow" and r["dataset"] == "AWA2")
    assert float(val["H_mean"]) == 52.0 and float(val["H_std"]) == 2.0
    assert val["seeds"] == "0 1 2" and val["runs"] == "3"
    assert rows.index(published[0]) == rows.index(val) + 2  # after the AWA2 groups
    assert not [r for r in to_csv(groups).splitlines() if r.startswith("published")]
    markdown = to_markdown(groups, published=True)
    assert "| gsmflow | AWA2 | val | 3 (0 1 2) | 41.0 ± 1.0 | 70.0 ± 0.0 | 52.0 ± 2.0 |" in markdown
    assert "published: GSMFlow (ACM MM 2021), Table 1 | 64.5 | 82.1 | 72.3 | 72.7 |" in markdown
    assert "demo (SYNTHETIC)" in markdown


def test_published_row_says_not_stated_when_the_paper_gives_no_protocol(tmp_path):
    unstated = {k: v for k, v in PUBLISHED.items() if k != "selection"}
    write_run(tmp_path / "a", published=unstated)
    rows = table_rows(_groups(tmp_path), published=True)
    assert [r["selection"] for r in rows if r["kind"] == "published"] == ["not stated"]


def test_cli_compare_writes_csv_and_markdown(runs, tmp_path):
    result = CliRunner().invoke(app, ["compare", str(runs), "--published",
                                      "--csv", str(tmp_path / "t.csv"),
                                      "--markdown", str(tmp_path / "t.md")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "52.0 ± 2.0" in result.output and "72.3" in result.output
    assert "test-oracle" in result.output
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert len(rows) == 5  # four groups and one published row
    assert "52.0 ± 2.0" in (tmp_path / "t.md").read_text()


def test_cli_compare_without_results_is_a_user_error(tmp_path):
    result = CliRunner().invoke(app, ["compare", str(tmp_path)])
    assert isinstance(result.exception, GZSLError)
    assert "no results.json" in str(result.exception)


def test_cli_compare_names_unfinished_runs_it_leaves_out(runs):
    interrupted = runs / "val" / "seed3"
    interrupted.mkdir()
    (interrupted / "config.json").write_text("{}")
    (interrupted / "resume.pt").write_bytes(b"")
    result = CliRunner().invoke(app, ["compare", str(runs)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "1 unfinished run(s) left out" in result.output and "seed3" in result.output
    assert "52.0 ± 2.0" in result.output  # the three finished seeds only


def _preset_run(folder: Path, seed: int, H: float, **settings) -> None:
    """A run directory whose config.json is a real resolution of the gaussian demo preset."""
    from gzsl.experiments.config import resolve

    write_run(folder, method="gaussian", dataset="demo", seed=seed, H=H, synthetic=True)
    config = resolve("gaussian", "demo", values=settings, seed=seed).to_dict()
    (folder / "config.json").write_text(json.dumps(config))


def test_variants_are_named_by_overrides_relative_to_the_preset(tmp_path):
    _preset_run(tmp_path / "base0", 0, 40.0)
    _preset_run(tmp_path / "base1", 1, 42.0)
    _preset_run(tmp_path / "more", 0, 45.0, **{"evaluation.n_synthetic": 600})
    groups = _groups(tmp_path)
    assert sorted(g.variant for g in groups) == ["evaluation.n_synthetic=600", "preset values"]
    assert len(_group(groups, variant="preset values").runs) == 2


def test_a_display_setting_never_makes_a_variant(tmp_path):
    write_run(tmp_path / "a", seed=0, method_config={"epochs": 10, "progress": None,
                                                     "synthesis_chunk": 16384})
    write_run(tmp_path / "b", seed=1, method_config={"epochs": 10, "progress": False,
                                                     "synthesis_chunk": 1024})
    (group,) = _groups(tmp_path)
    assert group.variant == "" and len(group.runs) == 2


def test_a_single_run_shows_its_numbers_without_a_spread(runs):
    markdown = to_markdown(_groups(runs))
    assert "| gaussian | AWA2 | val | 1 (0) | 50.0 | 70.0 | 30.0 | 60.0 |" in markdown
    assert "± 0.0 |" in markdown  # T1 of the three val seeds is the same: a real zero spread


def test_the_test_oracle_note_only_when_such_numbers_are_shown(runs, tmp_path):
    def note(*args):
        result = CliRunner().invoke(app, ["compare", *args], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return [line for line in result.output.splitlines() if "chose checkpoints" in line]

    assert note(str(runs / "val")) == []
    assert note(str(runs / "demo"), "--published") == []  # no published numbers for demo
    assert "published numbers" in note(str(runs / "val"), "--published")[0]
    assert "test-oracle runs" in note(str(runs / "oracle"))[0]
