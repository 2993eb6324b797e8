"""``gzsl predict`` and ``gzsl plot`` end to end, and the docs that describe the CLI."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import typer
from conftest import invoke_cli as invoke
from conftest import make_tiny_dataset, train_tiny_run
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

import gzsl.cli.results  # noqa: F401  (registers predict, plot, compare)
import gzsl.cli.run  # noqa: F401  (registers train, reproduce, ablate, list)
from gzsl.cli import app
from gzsl.cli import data as data_cli
from gzsl.cli import features as features_cli
from gzsl.cli import study as study_cli
from gzsl.data.errors import GZSLError
from gzsl.experiments.trained import load_run

DOCS = Path(__file__).resolve().parents[1] / "docs"
FAST = ("--set", "evaluation.classifier_epochs=4", "--set", "evaluation.classifier_lr=0.05",
        "--set", "evaluation.classifier_batch_size=32", "--set", "evaluation.n_synthetic=10")


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread():
    """t-SNE's OpenMP threads spin against each other on a busy shared test machine."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield



@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A run trained through ``gzsl train`` on the tiny dataset stored as ``tiny.npz``."""
    folder = tmp_path_factory.mktemp("cli")
    return train_tiny_run(folder, *FAST), folder


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_predict_writes_names_and_top_k_for_each_row(trained, tmp_path):
    run_dir, _ = trained
    features = make_tiny_dataset().task("final").test_unseen_features[::7]
    np.save(tmp_path / "f.npy", features)
    result = invoke("predict", str(run_dir), str(tmp_path / "f.npy"), "--top", "2",
                    "--out", str(tmp_path / "p.csv"))
    assert result.exit_code == 0, result.output
    rows = _csv((tmp_path / "p.csv").read_text())
    run = load_run(run_dir)
    assert [r["predicted"] for r in rows] == run.predict(features)
    assert [int(r["index"]) for r in rows] == list(range(len(features)))
    assert list(rows[0]) == ["index", "predicted", "probability", "top1_class",
                             "top1_probability", "top2_class", "top2_probability"]
    probabilities = run.predict_proba(features)
    for row, expected in zip(rows, probabilities, strict=True):
        column = run.class_names.index(row["predicted"])
        assert float(row["probability"]) == pytest.approx(expected[column], rel=1e-5)
        assert row["top1_class"] == row["predicted"]
        assert float(row["top2_probability"]) <= float(row["top1_probability"])
    assert f"wrote {tmp_path / 'p.csv'}: {len(features)} rows" in result.output


def test_predict_reads_npz_and_transposed_mat_and_prints_csv(trained, tmp_path):
    run_dir, _ = trained
    features = make_tiny_dataset().task("final").test_seen_features[:5]
    np.savez(tmp_path / "two.npz", feats=features, ids=np.arange(5))
    scipy.io.savemat(tmp_path / "f.mat", {"features": features.T})
    expected = load_run(run_dir).predict(features)
    for extra in (["two.npz", "--key", "feats"], ["f.mat"]):
        result = invoke("predict", str(run_dir), str(tmp_path / extra[0]), *extra[1:])
        assert result.exit_code == 0, result.output
        assert [r["predicted"] for r in _csv(result.stdout)] == expected
    result = invoke("predict", str(run_dir), str(tmp_path / "two.npz"))
    assert isinstance(result.exception, GZSLError)
    assert "feats (5, 16), ids (5,)" in str(result.exception) and "--key" in str(
        result.exception)


def test_predict_rejects_wrong_dimension_and_missing_run(trained, tmp_path):
    run_dir, _ = trained
    np.save(tmp_path / "bad.npy", np.zeros((4, 10)))
    result = invoke("predict", str(run_dir), str(tmp_path / "bad.npy"))
    assert isinstance(result.exception, GZSLError) and "16-d" in str(result.exception)
    result = invoke("predict", str(tmp_path / "nowhere"), str(tmp_path / "bad.npy"))
    assert isinstance(result.exception, GZSLError)
    assert "does not exist" in str(result.exception)


def test_plot_reloads_the_recorded_dataset(trained):
    run_dir, folder = trained
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["root"] == str((folder / "tiny.npz").resolve())
    result = invoke("plot", str(run_dir), "--max-classes", "3", "--per-class", "6")
    assert result.exit_code == 0, result.output
    assert "4 plot(s)" in result.output
    rows = _csv((run_dir / "plots" / "tsne.csv").read_text())
    assert len({r["class_id"] for r in rows}) == 3 and len(rows) == 3 * 12


def test_plot_with_root_when_the_dataset_moved(trained, tmp_path):
    run_dir, folder = trained
    moved = tmp_path / "run"
    moved.mkdir()
    for path in run_dir.iterdir():
        if path.is_file():
            (moved / path.name).write_bytes(path.read_bytes())
    metadata = json.loads((moved / "metadata.json").read_text())
    metadata["root"] = str(tmp_path / "gone.npz")
    (moved / "metadata.json").write_text(json.dumps(metadata))
    result = invoke("plot", str(moved), "--per-class", "4")
    assert result.exit_code == 0, result.output
    assert "skipped tsne" in result.output and not (moved / "plots" / "tsne.png").exists()
    result = invoke("plot", str(moved), "--per-class", "4", "--root", str(folder / "tiny.npz"))
    assert result.exit_code == 0, result.output
    assert (moved / "plots" / "tsne.png").is_file()


def test_plot_of_an_empty_folder_is_a_user_error(tmp_path):
    result = invoke("plot", str(tmp_path))
    assert isinstance(result.exception, GZSLError)
    assert "no plot could be drawn" in str(result.exception)


def _commands() -> dict:
    """Every leaf command of the CLI, by its full name (``data check``...)."""
    out = {name: command for name, command in typer.main.get_command(app).commands.items()
           if not hasattr(command, "commands")}  # `data`, once registered: its leaves below
    for group, sub in (("data", data_cli.app), ("features", features_cli.app),
                       ("study", study_cli.app)):
        for name, command in typer.main.get_command(sub).commands.items():
            out[f"{group} {name}"] = command
    return out


def test_cli_page_documents_every_command_and_option():
    page = (DOCS / "cli.md").read_text()
    commands = _commands()
    assert {"train", "predict", "plot", "compare", "data check", "features extract",
            "study run"} <= set(commands)
    for name, command in commands.items():
        assert f"## `gzsl {name}`" in page, f"docs/cli.md lacks a section on gzsl {name}"
        section = page.split(f"## `gzsl {name}`", 1)[1].split("\n## ", 1)[0]
        for parameter in command.params:
            for option in getattr(parameter, "opts", []):
                if option.startswith("--") and option != "--help":
                    assert option in section, f"docs/cli.md: gzsl {name} {option} missing"


def _walkthrough_script() -> str:
    page = (DOCS / "bring-your-own-data.md").read_text()
    marker = "<!-- tested: tests/test_cli_results.py::test_bring_your_own_data_walkthrough -->"
    assert marker in page
    match = re.search(r"```python\n(.*?)```", page.split(marker, 1)[1], flags=re.S)
    assert match is not None
    return match.group(1)


def test_bring_your_own_data_walkthrough(tmp_path, monkeypatch):
    """The page's script turns a feature folder + attribute table into a trainable .npz."""
    rng = np.random.default_rng(1)
    names = [f"animal{i}" for i in range(10)]
    attributes = rng.random((10, 5))
    centres = attributes @ rng.normal(size=(5, 12)) * 3 + 5
    root = tmp_path / "my_data"
    for c, name in enumerate(names):
        (root / "features" / name).mkdir(parents=True)
        for i in range(15):
            vector = centres[c] + 0.3 * rng.random(12)
            np.save(root / "features" / name / f"img_{i:04d}.npy", vector.astype(np.float32))
    with open(root / "attributes.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", *(f"attribute{a}" for a in range(5))])
        writer.writerows([name, *values] for name, values in zip(names, attributes,
                                                                  strict=True))
    monkeypatch.chdir(tmp_path)
    exec(compile(_walkthrough_script(), "bring-your-own-data.md", "exec"), {})
    result = CliRunner().invoke(data_cli.app, ["check", "mine.npz"])
    assert result.exit_code == 0, result.output
    assert "no problems found" in result.output and "10 (8 seen, 2 unseen)" in result.output
    assert re.search(r"validation split\W+yes", result.output)
    result = invoke("train", "gaussian", "mine", "--root", "mine.npz", "--device", "cpu",
                    "--out", "runs/mine", *FAST)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "runs" / "mine" / "results.json").read_text())
    assert results["selection"] == "val" and results["dataset"] == "mine"
    assert not results["synthetic_data"]
