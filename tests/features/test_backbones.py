"""The backbone interface: transform geometry, pooling choices, devices and precision."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from vision_helpers import save_tiny_clip, save_tiny_resnet

from gzsl.data.errors import GZSLError
from gzsl.features.backbones import (
    TRANSFORMS,
    Transform,
    autocast_dtype,
    backbone_from_record,
    load_backbone,
)


def test_transform_resizes_the_shorter_side_then_crops_the_centre():
    image = Image.new("RGB", (400, 200), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 100, 200))  # left quarter white
    out = Transform(resize=64, crop=32)(image)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    # 400x200 -> 128x64; the centre 32x32 starts at x=48, well right of the white quarter
    black = (0 - np.array(TRANSFORMS["imagenet"].mean)) / np.array(TRANSFORMS["imagenet"].std)
    assert np.allclose(out[:, 0, 0], black, atol=1e-5)
    tall = Transform(resize=10, crop=10)(Image.new("RGB", (3, 7)))
    assert tall.shape == (3, 10, 10)
    with pytest.raises(GZSLError, match="resize .* must be at least crop"):
        Transform(resize=100, crop=224)


def test_mixed_precision_is_for_gpus_only():
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("fp32", cpu) is None
    with pytest.raises(GZSLError, match="precision fp16 is for GPUs"):
        autocast_dtype("fp16", cpu)
    assert autocast_dtype("auto", torch.device("cuda")) == torch.float16
    assert autocast_dtype("bf16", torch.device("cuda")) == torch.bfloat16


def test_clip_checkpoint_gives_its_image_embedding_with_the_clip_transform(tmp_path):
    folder = save_tiny_clip(tmp_path / "clip")
    backbone = load_backbone(str(folder), transform=replace(TRANSFORMS["clip"], resize=32,
                                                             crop=32))
    assert backbone.pooling == "image_features"
    assert backbone.embed(torch.zeros(2, 3, 32, 32)).shape == (2, 12)
    auto = load_backbone(str(folder))
    assert auto.transform == TRANSFORMS["clip"]


def test_pooling_choices_and_replay_from_the_record(tmp_path):
    folder = save_tiny_resnet(tmp_path / "resnet")
    pixels = torch.rand(3, 3, 32, 32)
    pooled = load_backbone(str(folder), transform=Transform(32, 32))
    mean = load_backbone(str(folder), transform=Transform(32, 32), pooling="mean")
    assert torch.allclose(pooled.embed(pixels), mean.embed(pixels), atol=1e-6)
    with pytest.raises(GZSLError, match="no image features"):
        load_backbone(str(folder), pooling="image_features")
    with pytest.raises(GZSLError, match="unknown backbone provider"):
        load_backbone(str(folder), provider="timm")
    again = backbone_from_record(pooled.describe())
    assert again.transform == pooled.transform and again.pooling == "pooler"
    assert torch.equal(again.embed(pixels), pooled.embed(pixels))
    if not torch.cuda.is_available():
        with pytest.raises(GZSLError, match="CUDA is not available"):
            load_backbone(str(folder), device="cuda")
