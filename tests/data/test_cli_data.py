"""``gzsl data check`` and ``gzsl data convert`` through typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from typer.testing import CliRunner

from gzsl.cli.data import app
from gzsl.data import DataError, GZSLError
from gzsl.data.loaders import load_dataset, load_npz

runner = CliRunner()


@pytest.fixture(scope="module")
def awa2_dir(tmp_path_factory, xlsa17_dir: Path) -> Path:
    """AWA2/ with generated 8-d features, the real labels and the real att_splits.mat."""
    directory = tmp_path_factory.mktemp("cli") / "AWA2"
    directory.mkdir()
    labels = np.load(xlsa17_dir / "AWA2" / "labels.npy")
    features = np.random.default_rng(0).random((8, len(labels)))
    scipy.io.savemat(directory / "res101.mat", {"features": features,
                                                "labels": labels.reshape(-1, 1)})
    (directory / "att_splits.mat").symlink_to(xlsa17_dir / "AWA2" / "att_splits.mat")
    return directory


def test_check_reports_a_sound_dataset(awa2_dir: Path):
    result = runner.invoke(app, ["check", str(awa2_dir)])
    assert result.exit_code == 0, result.output
    for expected in ("dataset AWA2", "50 (40 seen, 10 unseen)", "23527", "5882", "7913",
                     "no problems found"):
        assert expected in result.output
    assert "YES" not in result.output


def test_check_finds_the_dataset_folder_under_a_parent(awa2_dir: Path):
    result = runner.invoke(app, ["check", str(awa2_dir.parent), "--dataset", "awa2"])
    assert result.exit_code == 0, result.output
    assert "dataset AWA2" in result.output


def test_check_lists_problems_and_exits_1(tmp_path: Path, xlsa17_dir: Path):
    directory = tmp_path / "AWA2"
    directory.mkdir()
    labels = np.load(xlsa17_dir / "AWA2" / "labels.npy")
    features = np.zeros((8, len(labels)))
    features[0, 5] = np.nan
    scipy.io.savemat(directory / "res101.mat", {"features": features,
                                                "labels": labels.reshape(-1, 1)})
    content = {k: v for k, v in scipy.io.loadmat(xlsa17_dir / "AWA2" / "att_splits.mat").items()
               if not k.startswith("__")}
    content["test_seen_loc"] = np.concatenate([content["test_seen_loc"],
                                               content["trainval_loc"][:1]])
    scipy.io.savemat(directory / "att_splits.mat", content)
    result = runner.invoke(app, ["check", str(directory)])
    assert result.exit_code == 1
    assert "2 problem(s)" in result.output
    assert f"file {directory / 'res101.mat'}, key 'features'" in result.output
    assert f"file {directory / 'att_splits.mat'}, key 'test_seen_loc'" in result.output


def test_check_of_unreadable_files_still_reports(tmp_path: Path):
    (tmp_path / "X").mkdir()
    scipy.io.savemat(tmp_path / "X" / "res101.mat", {"features": np.ones((2, 3))})
    result = runner.invoke(app, ["check", str(tmp_path / "X")])
    assert result.exit_code == 1
    assert "res101.mat" in result.output and "att_splits.mat" in result.output


def test_check_demo_shows_synthetic_flag():
    result = runner.invoke(app, ["check", "demo"])
    assert result.exit_code == 0, result.output
    assert "YES" in result.output and "dataset demo" in result.output


def test_check_demo_awa2_needs_no_files_even_beside_a_folder_of_that_name(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other").mkdir()
    by_option = runner.invoke(app, ["check", "other", "--dataset", "DEMO-AWA2"])
    assert by_option.exit_code == 0, by_option.output
    assert "dataset demo-awa2" in by_option.output and "YES" in by_option.output


def test_check_missing_path_is_a_user_error(tmp_path: Path):
    result = runner.invoke(app, ["check", str(tmp_path / "absent")])
    assert isinstance(result.exception, DataError)
    assert "does not exist" in str(result.exception)


def test_bad_option_values_are_usage_errors(awa2_dir: Path):
    result = runner.invoke(app, ["check", str(awa2_dir), "--semantics", "words"])
    assert result.exit_code == 2 and "--semantics" in result.output
    result = runner.invoke(app, ["convert", str(awa2_dir), "o.npz", "--layout", "csv"])
    assert result.exit_code == 2 and "--layout" in result.output


def test_convert_round_trip(tmp_path: Path, awa2_dir: Path):
    out = tmp_path / "awa2.npz"
    result = runner.invoke(app, ["convert", str(awa2_dir), str(out)])
    assert result.exit_code == 0, result.output
    assert "37322 images, 50 classes (40 seen, 10 unseen)" in result.output
    original, converted = load_dataset("AWA2", awa2_dir), load_npz(out)
    assert converted.name == "AWA2" and converted.class_names == original.class_names
    for field in ("features", "labels", "semantics"):
        np.testing.assert_array_equal(getattr(converted, field), getattr(original, field))
    assert set(converted.splits) == set(original.splits)
    for split, index in original.splits.items():
        np.testing.assert_array_equal(converted.splits[split], index)
    checked = runner.invoke(app, ["check", str(out)])
    assert checked.exit_code == 0 and "dataset AWA2" in checked.output


def test_convert_refuses_to_overwrite_without_force(tmp_path: Path, awa2_dir: Path):
    out = tmp_path / "awa2.npz"
    out.write_bytes(b"keep me")
    result = runner.invoke(app, ["convert", str(awa2_dir), str(out)])
    assert isinstance(result.exception, GZSLError) and "--force" in str(result.exception)
    assert out.read_bytes() == b"keep me"
    result = runner.invoke(app, ["convert", str(awa2_dir), str(out), "--force"])
    assert result.exit_code == 0 and load_npz(out).n_classes == 50
    result = runner.invoke(app, ["convert", str(out), str(out), "--force"])
    assert isinstance(result.exception, GZSLError) and "input file" in str(result.exception)


def test_convert_needs_npz_suffix_and_sound_data(tmp_path: Path):
    result = runner.invoke(app, ["convert", "demo", str(tmp_path / "demo.mat")])
    assert isinstance(result.exception, GZSLError) and ".npz" in str(result.exception)
    (tmp_path / "X").mkdir()
    scipy.io.savemat(tmp_path / "X" / "res101.mat", {"features": np.ones((2, 3))})
    result = runner.invoke(app, ["convert", str(tmp_path / "X"), str(tmp_path / "x.npz")])
    assert isinstance(result.exception, DataError)
    assert not (tmp_path / "x.npz").exists()


def test_convert_demo_keeps_the_synthetic_flag(tmp_path: Path):
    result = runner.invoke(app, ["convert", "demo", str(tmp_path / "demo.npz")])
    assert result.exit_code == 0 and "SYNTHETIC" in result.output
    assert load_npz(tmp_path / "demo.npz").synthetic is True


@pytest.mark.parametrize("command", ["check", "convert"])
def test_help(command: str):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "--dataset" in result.output and "--semantics" in result.output
