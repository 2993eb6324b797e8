"""Tiny randomly initialised models saved with the libraries' own calls, and generated images.

No weights can be downloaded here; a model built from a config and written by
``save_pretrained`` is loaded back by path through the same code as pretrained weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the vision extra (gzsl[vision]) is not installed")

from gzsl.features.shapes import draw  # noqa: E402  (after the skip)


def save_tiny_resnet(folder: Path, seed: int = 0) -> Path:
    """A two-stage ResNet (8 and 16 channels) with random weights, saved to ``folder``."""
    import torch
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(seed)
    config = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16],
                          depths=[1, 1], layer_type="basic")
    ResNetModel(config).save_pretrained(folder)
    return folder


def save_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A one-layer CLIP (32-px images, 12-d projection) with random weights, and a
    word-level tokenizer, saved to ``folder`` as a CLIP checkpoint would be."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    words = ["[UNK]", "[PAD]", "a", "photo", "of", "red", "green", "blue", "circle", "square",
             "triangle", "the", "shape"]
    config = CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "vocab_size": len(words),
                     "max_position_embeddings": 16, "bos_token_id": 0, "eos_token_id": 1,
                     "pad_token_id": 1},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=12)
    CLIPModel(config).save_pretrained(folder)
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)},
                                           unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]",
                            pad_token="[PAD]").save_pretrained(folder)
    return folder


def save_tiny_sentence_model(folder: Path, seed: int = 0) -> Path:
    """A one-layer BERT with mean pooling as a sentence-transformers model, saved to
    ``folder`` with ``SentenceTransformer.save``."""
    import torch
    from sentence_transformers import SentenceTransformer
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers before 6
        from sentence_transformers.models import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(seed)
    bert = folder / "bert"
    bert.mkdir(parents=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "red",
             "green", "blue", "circle", "square", "triangle", "the", "shape", "round",
             "with", "three", "corners"]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}).save_pretrained(bert)
    BertModel(BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=32)).save_pretrained(bert)
    word = Transformer(str(bert))
    pooling = Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[word, pooling]).save(str(folder / "model"))
    return folder / "model"


def write_shapes_folder(root: Path, classes: list[tuple[str, str]], per_class: int,
                        seed: int = 0, size: int = 64) -> Path:
    """One subfolder ``shape_colour`` per class holding ``per_class`` PNG images."""
    for c, (shape, colour) in enumerate(classes):
        folder = root / f"{shape}_{colour}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(shape, colour, size, seed=seed * 100003 + c * 1009 + i).save(
                folder / f"img_{i:03d}.png")
    return root

