"""The command line as a new user meets it: quick help, suggestions, fix lines, notes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import invoke_cli, run_main

import gzsl
from gzsl import cli
from gzsl.data.errors import GZSLError


def _help_imports_torch(*args: str) -> bool:
    code = ("import sys, atexit; atexit.register(lambda: print('torch' in sys.modules)); "
            "from gzsl.cli import main; sys.argv = ['gzsl', *sys.argv[1:]]; main()")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize("args", [("--help",), ("train", "-h"), ("compare", "--help")])
def test_help_does_not_import_torch(args):
    assert not _help_imports_torch(*args)


def test_short_help_and_version(capsys):
    code, output = run_main(capsys, "--version")
    assert code == 0 and output.strip() == f"gzsl {gzsl.__version__}"
    code, output = run_main(capsys, "data", "check", "-h")
    assert code == 0 and "Usage: gzsl data check" in output


def test_help_names_values_conventionally_and_lists_choices(capsys):
    code, output = run_main(capsys, "train", "--help")
    assert code == 0
    for shown in ("METHOD", "DATASET", "[val|final|test-oracle]", "[auto|cpu|cuda]",
                  "--root", "DIR"):
        assert shown in output
    assert "<str>" not in output and "<path>" not in output


@pytest.mark.parametrize("args, suggestion", [
    (("train", "gsmflw", "demo"), "Did you mean 'gsmflow'?"),
    (("train", "gsmflow", "dmeo"), "Did you mean 'demo'?"),
    (("reproduce", "gaussian", "awa"), "Did you mean 'AWA"),
    (("train", "gsmflow", "demo", "--preset", "dmeo"), "Did you mean 'demo'?"),
    (("train", "gsmflow", "demo", "--set", "method.epoch=3"), "Did you mean 'method.epochs'?"),
    (("train", "gsmflow", "demo", "--set", "evaluation.n_synthetc=3"),
     "Did you mean 'evaluation.n_synthetic'?"),
])
def test_a_mistyped_name_gets_the_closest_real_one(capsys, args, suggestion):
    code, output = run_main(capsys, *args)
    assert code == 2 and suggestion in output, output
    assert output.startswith("error:") and len(output.strip().splitlines()) == 1


def test_data_check_fix_line_names_its_own_argument(capsys, tmp_path):
    code, output = run_main(capsys, "data", "check", str(tmp_path / "nope.npz"))
    assert code == 2 and "--root" not in output and "PATH" in output, output


def test_list_is_one_line_per_preset_and_verbose_shows_the_whole_text():
    short = invoke_cli("list").output
    presets = short.split("presets", 1)[1]
    assert "AMAZ on AWA1 with the paper's settings" in presets
    assert "meta-iterations" not in presets and "``" not in short
    assert "see the module docstring" not in short
    long = invoke_cli("list", "--verbose").output
    assert "meta-iterations" in long.split("presets", 1)[1]


def test_list_says_which_presets_read_a_paper_and_which_are_ours():
    from gzsl.experiments.config import list_presets

    presets = {f"{p.method}/{p.name}": p for p in list_presets()}
    assert presets["amaz/awa2"].settings == "paper"
    assert presets["gsmflow/demo"].settings == "ours"
    ours = [name for name in presets if name.endswith("-ours")]
    assert ours, "no -ours preset shipped"
    for name in ours:
        twin = presets[name.removesuffix("-ours")]
        assert presets[name].settings == "ours" and twin.settings == "paper"
        assert presets[name].dataset == twin.dataset
        assert "OUR settings, not the paper's" in presets[name].description
        assert f"use {twin.method}/{twin.name} for the paper's" in presets[name].description
    rows = {tuple(cell.strip() for cell in line.split("│")[1:5])
            for line in invoke_cli("list").output.splitlines() if line.count("│") > 5}
    assert ("amaz", "awa2", "AWA2", "paper") in rows
    assert ("amaz", "awa2-ours", "AWA2", "ours") in rows


def test_every_method_has_a_small_preset_for_own_data_shown_by_list():
    from gzsl.experiments.config import list_presets

    small = {p.method: p for p in list_presets() if p.name == "small"}
    assert set(small) == {"gaussian", "gsmflow", "vaecflow", "amaz"}  # the built-in methods
    assert all(p.dataset == "any" and "your own data on a CPU" in p.description
               for p in small.values())
    rows = [line for line in invoke_cli("list").output.splitlines()
            if " small " in line and " any " in line]
    assert len(rows) == len(small)


def test_warnings_of_gzsl_are_note_lines_and_others_stay_python_warnings(capsys, monkeypatch):
    inside = str(Path(gzsl.__file__).parent / "methods" / "amaz.py")
    cli._note(UserWarning("AMAZ: 3 seen classes cannot fill 5-way tasks"), UserWarning,
              inside, 534)
    assert capsys.readouterr().err.strip() == "note: AMAZ: 3 seen classes cannot fill 5-way tasks"
    shown = []
    monkeypatch.setattr(cli, "_show_warning", lambda *args: shown.append(args))
    cli._note(UserWarning("from elsewhere"), UserWarning, "/usr/lib/other.py", 7)
    assert capsys.readouterr().err == "" and shown[0][2:4] == ("/usr/lib/other.py", 7)


def test_embedded_datasets_need_no_root_and_near_misses_are_named():
    from gzsl.cli.run import _check_dataset

    _check_dataset("demo-awa2", None)
    _check_dataset("DEMO", None)
    with pytest.raises(GZSLError, match="Did you mean 'demo-awa2'"):
        _check_dataset("demo-awa", None)
