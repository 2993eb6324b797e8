"""gzsl features classes: attribute tables checked, text embedded (tiny saved models)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_main
from vision_helpers import save_tiny_clip, save_tiny_sentence_model

from gzsl.data.errors import GZSLError
from gzsl.features.semantics import (
    from_attribute_table,
    from_texts,
    load_text_encoder,
    prompts,
    read_semantics_file,
)


@pytest.fixture(scope="module")
def sentence_model(tmp_path_factory):
    return save_tiny_sentence_model(tmp_path_factory.mktemp("st"))


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("clip") / "clip")


def test_attribute_table_is_read_in_the_wanted_order_and_normalised(tmp_path):
    table = tmp_path / "att.tsv"
    table.write_text("class\tround\tred\tsize\nball\t1\t0\t3\napple\t1\t1\t1\nbox\t0\t0\t4\n")
    result = from_attribute_table(table, ["box", "ball"])
    assert result.class_names == ("box", "ball") and result.attribute_names == (
        "round", "red", "size")
    assert np.allclose(result.semantics[0], [0, 0, 1])
    assert np.allclose(np.linalg.norm(result.semantics, axis=1), 1)
    assert result.provenance["unused_rows"] == ["apple"]
    raw = from_attribute_table(table, l2=False)
    assert raw.class_names == ("ball", "apple", "box") and raw.semantics[2, 2] == 4


def test_attribute_table_problems_are_listed(tmp_path):
    table = tmp_path / "att.csv"
    table.write_text("class,a,b\nx,1,oops\ny,1\nx,0,1\nz,nan,1\n")
    with pytest.raises(GZSLError) as error:
        from_attribute_table(table)
    message = str(error.value)
    assert "line 2 (x), column 'b': 'oops' is not a finite number" in message
    assert "line 3 (y) has 1 values for 2 attributes" in message
    assert "class 'x' has two rows" in message and "line 5 (z), column 'a'" in message
    table.write_text("class,a\nx,1\n")
    with pytest.raises(GZSLError, match="no row for 2 class\\(es\\): y, w"):
        from_attribute_table(table, ["x", "y", "w"])
    table.write_text("class,a\nx,0\n")
    with pytest.raises(GZSLError, match="all-zero semantic vector"):
        from_attribute_table(table)


def test_names_with_templates_through_sentence_transformers(sentence_model):
    encoder = load_text_encoder("sentence-transformers", str(sentence_model))
    texts = prompts(["red_circle", "blue_square"], ["a photo of a {}.", "the {} shape"])
    assert texts["red_circle"] == ["a photo of a red circle.", "the red circle shape"]
    result = from_texts(texts, encoder, method="names")
    assert result.semantics.shape == (2, 16)
    assert np.allclose(np.linalg.norm(result.semantics, axis=1), 1, atol=1e-5)
    assert not np.allclose(result.semantics[0], result.semantics[1])
    assert result.provenance["encoder"]["weights"]["local_folder"]
    with pytest.raises(GZSLError, match="must hold one"):
        prompts(["x"], ["no slot"])


def test_clip_text_tower(tiny_clip):
    encoder = load_text_encoder("clip", str(tiny_clip))
    result = from_texts({"a": ["red circle"], "b": ["blue square"]}, encoder, method="names")
    assert result.semantics.shape == (2, 12) and np.isfinite(result.semantics).all()


def test_classes_command(tmp_path, sentence_model, capsys):
    (tmp_path / "classes.txt").write_text("red_circle\nblue_square\n")
    (tmp_path / "desc.csv").write_text("class,description\nred_circle,a round red shape\n"
                                       "blue_square,a blue shape with four corners\n")
    code, output = run_main(capsys, "features", "classes", str(tmp_path / "n.npz"), "--names",
                            "--classes", str(tmp_path / "classes.txt"), "--text-model",
                            str(sentence_model), "--template", "a photo of a {}.")
    assert code == 0, output
    assert "2 classes x 16 (names" in output
    stored = read_semantics_file(tmp_path / "n.npz")
    assert stored.class_names == ("red_circle", "blue_square")
    assert stored.provenance["templates"] == ["a photo of a {}."]
    code, output = run_main(capsys, "features", "classes", str(tmp_path / "d.npz"),
                            "--descriptions", str(tmp_path / "desc.csv"), "--text-model",
                            str(sentence_model))
    assert code == 0, output
    assert read_semantics_file(tmp_path / "d.npz").provenance["method"] == "descriptions"
    code, output = run_main(capsys, "features", "classes", str(tmp_path / "x.npz"), "--names",
                            "--attributes", str(tmp_path / "desc.csv"))
    assert code == 2 and "exactly one of" in output
