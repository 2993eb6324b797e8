"""The features commands as a user runs them, and the CLI's freedom from vision imports."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import run_main as run_main_here
from vision_helpers import draw, save_tiny_resnet


@pytest.fixture(scope="module")
def tiny_resnet(tmp_path_factory):
    return save_tiny_resnet(tmp_path_factory.mktemp("models") / "resnet")


def test_cli_imports_no_vision_library():
    code = ("import sys, gzsl, gzsl.cli; gzsl.cli._register_subcommands(); "
            "print(sorted(m for m in ('transformers', 'sentence_transformers', 'PIL') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_extract_command_lists_skipped_files(tmp_path, tiny_resnet, capsys):
    root = tmp_path / "images"
    for colour in ("red", "blue"):
        (root / colour).mkdir(parents=True)
        draw("circle", colour).save(root / colour / "a.png")
    (root / "red" / "broken.jpg").write_bytes(b"")
    code, output = run_main_here(capsys, "features", "extract", str(root),
                                 str(tmp_path / "f.npz"), "--backbone", str(tiny_resnet),
                                 "--resize", "40", "--crop", "32", "--no-progress",
                                 "--device", "cpu")
    assert code == 0, output
    assert "wrote" in output and "2 images, 16-d features" in output
    assert "skipped 1 file(s)" in output and "red/broken.jpg: empty file" in output
    code, output = run_main_here(capsys, "features", "extract", str(root),
                                 str(tmp_path / "f.npz"), "--backbone", str(tiny_resnet))
    assert code == 2 and "error:" in output and "--force" in output
    code, output = run_main_here(capsys, "features", "extract", str(root),
                                 str(tmp_path / "g.npz"), "--backbone", str(tmp_path / "none"),
                                 "--device", "cpu", "--no-progress")
    assert code == 2 and "cannot load backbone" in output
