"""Presets, overrides and their errors."""


import pytest

from gzsl.data.errors import GZSLError
from gzsl.experiments.config import (
    PRESET_DIR,
    list_presets,
    load_preset,
    parse_override,
    resolve,
)
from gzsl.methods.base import config_from_dict, get_method


def test_parse_override_types():
    assert parse_override("method.epochs=10") == ("method", "epochs", 10)
    assert parse_override("evaluation.classifier_lr=1e-3") == ("evaluation", "classifier_lr", 1e-3)
    assert parse_override("data.l2=true") == ("data", "l2", True)
    assert parse_override("evaluation.n_synthetic_grid=[1, 2]")[2] == [1, 2]
    assert parse_override("ridge=0.5") == ("method", "ridge", 0.5)
    assert parse_override("data.semantics=sent") == ("data", "semantics", "sent")


@pytest.mark.parametrize("bad", ["no-equals", "weird.key=1"])
def test_parse_override_errors(bad):
    with pytest.raises(GZSLError):
        parse_override(bad)


def test_unknown_setting_names_the_valid_ones():
    with pytest.raises(GZSLError, match="valid:.*ridge"):
        resolve("gaussian", "demo", overrides=("method.ridg=1",))


def test_unknown_method_and_preset_and_selection():
    with pytest.raises(GZSLError, match="unknown method"):
        resolve("nope", "demo")
    with pytest.raises(GZSLError, match="no preset"):
        resolve("gaussian", "demo", preset="missing")
    with pytest.raises(GZSLError, match="unknown selection"):
        resolve("gaussian", "demo", selection="best")


def test_overrides_beat_preset_values():
    config = resolve("gaussian", "demo", overrides=("evaluation.n_synthetic=7",))
    assert config.evaluation.n_synthetic == 7


def test_every_shipped_preset_resolves_against_its_method():
    presets = list_presets()
    assert presets, "no presets shipped"
    for preset in presets:
        method = get_method(preset.method)
        config_from_dict(method.Config, preset.method_settings)
        config = resolve(preset.method, preset.dataset, preset=preset.path)
        for metric, value in preset.published.items():
            if metric in ("U", "S", "H", "T1"):
                assert 0 < float(value) < 100, (preset.path, metric)
        assert config.data.semantics in ("att", "sent")


def test_ours_presets_extend_the_demo_awa2_recipe_with_their_twins_data():
    presets = {f"{p.method}/{p.name}": p for p in list_presets()}
    recipe = presets["amaz/demo-awa2"]
    for name in ("amaz/awa1-ours", "amaz/awa2-ours", "amaz/cub-ours", "amaz/sun-ours"):
        ours, twin = presets[name], presets[name.removesuffix("-ours")]
        assert ours.method_settings == recipe.method_settings
        assert ours.evaluation == recipe.evaluation
        assert ours.data == twin.data and ours.dataset == twin.dataset
        assert ours.published == {} and ours.settings == "ours"


def test_extends_overrides_key_by_key_and_inherits_no_published_numbers(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('extends = "amaz/awa2"\ndataset = "AWA2"\n[method]\niterations = 7\n'
                    '[evaluation]\nn_synthetic = 5\n')
    mine, paper = load_preset(path), load_preset(PRESET_DIR / "amaz" / "awa2.toml")
    assert mine.method_settings == {**paper.method_settings, "iterations": 7}
    assert mine.evaluation == {**paper.evaluation, "n_synthetic": 5}
    assert mine.data == paper.data
    assert mine.published == {} and mine.description == "" and paper.published


@pytest.mark.parametrize("extends, message", [
    ("amaz/nope", "names no shipped preset"),
    ("awa2", "names no shipped preset"),
    ("amaz/../gsmflow/awa2", "names no shipped preset"),
])
def test_extends_naming_no_shipped_preset_is_a_clear_error(tmp_path, extends, message):
    path = tmp_path / "mine.toml"
    path.write_text(f'extends = "{extends}"\n')
    with pytest.raises(GZSLError, match=message):
        load_preset(path)


def test_extends_cycle_is_a_clear_error(tmp_path, monkeypatch):
    from gzsl.experiments import config

    root = tmp_path / "presets"
    (root / "amaz").mkdir(parents=True)
    (root / "amaz" / "a.toml").write_text('extends = "amaz/b"\n')
    (root / "amaz" / "b.toml").write_text('extends = "amaz/a"\n')
    monkeypatch.setattr(config, "PRESET_DIR", root)
    with pytest.raises(GZSLError, match="leads back to itself"):
        load_preset(root / "amaz" / "a.toml")
