"""``gzsl data make-imagenet-synthetic``, ``convert-imagenet`` and ``check`` on a store,
through the console entry point (one ``error:`` line and status 2 for unreadable files,
the problems and status 1 for a store that reads but is wrong)."""

from __future__ import annotations

import numpy as np
from conftest import run_main
from test_imagenet_xian import write_files

from gzsl.data.store import FEATURES_FILE, open_store

TINY = ("--seen", "6", "--unseen", "40", "--dim", "32", "--semantic-dim", "8",
        "--train-per-class", "3", "--test-per-class", "2", "--unseen-images", "2")


def test_make_synthetic_then_check_says_synthetic_and_lists_every_split(tmp_path, capsys):
    out = tmp_path / "imagenet-synthetic"
    code, output = run_main(capsys, "data", "make-imagenet-synthetic", str(out), *TINY)
    assert code == 0, output
    assert "SYNTHETIC features" in output and "2H 3" in output and "ALL 40" in output
    code, output = run_main(capsys, "data", "check", str(tmp_path), "--dataset",
                            "IMAGENET-L500")
    assert code == 0, output
    assert "YES: SYNTHETIC" in output and "split L5K" in output and "verified" in output
    code, output = run_main(capsys, "data", "make-imagenet-synthetic", str(out), *TINY)
    assert code == 2 and output.count("error:") == 1 and "--force" in output


def test_check_of_a_damaged_store_lists_the_problem_and_exits_1(tmp_path, capsys):
    out = tmp_path / "s"
    run_main(capsys, "data", "make-imagenet-synthetic", str(out), *TINY)
    matrix = np.load(out / FEATURES_FILE, mmap_mode="r+")
    matrix[0, 0] = 123.0
    matrix.flush()
    del matrix
    code, output = run_main(capsys, "data", "check", str(out))
    assert code == 1
    assert "1 problem(s):" in output and "checksum mismatch" in output


def test_check_of_a_truncated_store_is_one_error_line(tmp_path, capsys):
    out = tmp_path / "s"
    run_main(capsys, "data", "make-imagenet-synthetic", str(out), *TINY)
    path = out / FEATURES_FILE
    path.write_bytes(path.read_bytes()[:1000])
    code, output = run_main(capsys, "data", "check", str(out))
    assert code == 2
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "features.npy is truncated" in errors[0]


def test_convert_imagenet_writes_the_chosen_splits(tmp_path, capsys):
    source = tmp_path / "xian"
    (source / "ImageNet_w2v").mkdir(parents=True)
    write_files(source, np.random.default_rng(2))
    out = tmp_path / "imagenet-21k"
    code, output = run_main(capsys, "data", "convert-imagenet", str(source), str(out),
                            "--splits", "2h,m500")
    assert code == 0, output
    assert open_store(out).splits == ["2H", "M500"]
    assert "SYNTHETIC" not in output
    code, output = run_main(capsys, "data", "convert-imagenet", str(source),
                            str(tmp_path / "x"), "--splits", "9H")
    assert code == 2 and "unknown split(s) 9H" in output
