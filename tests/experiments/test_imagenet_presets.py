"""The ImageNet-21K presets of VAE-cFlow: published numbers, selection, refusals."""

import pytest
from conftest import run_main

from gzsl.data.errors import GZSLError
from gzsl.data.imagenet import dataset_names
from gzsl.experiments.config import load_preset, resolve

# VAE-cFlow supplement, Tables 5 (ZSL top-1) and 6 (GZSL H), as SPEC.md quotes them.
PUBLISHED = {"2H": (11.5, 6.3), "3H": (2.5, 2.2), "M500": (16.5, 13.6), "M1K": (11.3, 9.3),
             "M5K": (3.9, 2.6), "L500": (7.6, 5.9), "L1K": (4.6, 3.8), "L5K": (1.4, 1.0),
             "ALL": (1.1, 0.8)}


@pytest.mark.parametrize("dataset", dataset_names())
def test_each_split_has_a_preset_with_the_papers_settings_and_numbers(dataset):
    config = resolve("vaecflow", dataset)
    assert config.preset is not None and config.preset.endswith(f"{dataset.lower()}.toml")
    assert config.selection == "final"
    assert config.method_config.iterations == 150000
    assert config.method_config.batch_size == 256
    assert config.evaluation.n_synthetic == 600
    split = dataset.split("-", 1)[1]
    assert (config.published["T1"], config.published["H"]) == PUBLISHED[split]
    assert "U" not in config.published


def test_val_is_refused_for_imagenet_and_stays_the_default_elsewhere():
    with pytest.raises(GZSLError, match="IMAGENET-M1K has no validation classes"):
        resolve("vaecflow", "imagenet-m1k", selection="val")
    with pytest.raises(GZSLError, match="IMAGENET-2H runs out of core, where --selection "
                       "test-oracle .* use --selection final"):
        resolve("vaecflow", "IMAGENET-2H", selection="test-oracle")
    assert resolve("vaecflow", "demo").selection == "val"
    assert resolve("gaussian", "demo", selection="final").selection == "final"


def test_a_preset_selection_must_be_a_protocol(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('dataset = "demo"\nselection = "best"\n')
    with pytest.raises(GZSLError, match="selection 'best' is not one of val, final"):
        load_preset(path)


def test_the_command_line_refuses_val_in_one_line_and_lists_the_datasets(capsys, tmp_path):
    code, output = run_main(capsys, "reproduce", "vaecflow", "IMAGENET-2H", "--root",
                            str(tmp_path), "--selection", "val")
    assert code == 2
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--selection final" in lines[0]
    code, output = run_main(capsys, "list")
    assert code == 0 and "IMAGENET-2H" in output and "IMAGENET-ALL" in output
