"""SYNTHETIC shapes x colours images: the end-to-end example of bringing your own images.

Classes are (shape, colour) pairs; their attributes are one-hot shape + one-hot colour;
the unseen classes are new combinations of seen shapes and seen colours (the diagonal of
the shape x colour grid), so zero-shot recognition must compose attributes it has seen.
Nothing here is a real photograph: every image is drawn, and every file and message says
SYNTHETIC.

``python -m gzsl.features.shapes OUT`` writes, under ``OUT``:

* ``images/SHAPE_COLOUR/*.png``: labelled training images, one folder per class;
* ``new_images/*.png``: unlabelled images to predict (the true class in the name);
* ``attributes.csv``: the class x attribute table;
* ``unseen.txt``: the unseen classes;
* ``backbone/``: a small ResNet with RANDOM weights saved by ``save_pretrained`` (used
  because no weights can be downloaded where this demo must run; with network access
  use the default ``microsoft/resnet-101``).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220)}


def class_names() -> list[str]:
    return [f"{shape}_{colour}" for shape in SHAPES for colour in COLOURS]


def unseen_classes() -> list[str]:
    """The diagonal: each shape and each colour is seen in other combinations."""
    colours = list(COLOURS)
    return [f"{shape}_{colours[i]}" for i, shape in enumerate(SHAPES)]


def draw(shape: str, colour: str, size: int = 64, seed: int = 0):  # noqa: ANN201
    """One SYNTHETIC image: a filled ``shape`` in ``colour`` on a light background, with
    position, size, shade and background jittered by ``seed``."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    background = tuple(int(v) for v in rng.integers(200, 256, size=3))
    image = Image.new("RGB", (size, size), background)
    pen = ImageDraw.Draw(image)
    radius = size * rng.uniform(0.22, 0.35)
    cx = size / 2 + rng.uniform(-0.1, 0.1) * size
    cy = size / 2 + rng.uniform(-0.1, 0.1) * size
    fill = tuple(int(np.clip(v + rng.integers(-20, 21), 0, 255)) for v in COLOURS[colour])
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape == "circle":
        pen.ellipse(box, fill=fill)
    elif shape == "square":
        pen.rectangle(box, fill=fill)
    else:
        pen.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)],
                    fill=fill)
    return image


def write_images(root: Path, per_class: int, seed: int = 0, size: int = 64) -> None:
    """``per_class`` images of every class under ``root/SHAPE_COLOUR/``."""
    for c, name in enumerate(class_names()):
        shape, colour = name.split("_")
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(shape, colour, size, seed=seed * 1_000_003 + c * 1009 + i).save(
                folder / f"synthetic_{i:03d}.png")


def write_attributes(path: Path) -> None:
    """One-hot shape + one-hot colour per class."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", *SHAPES, *COLOURS])
        for name in class_names():
            shape, colour = name.split("_")
            writer.writerow([name, *(int(shape == s) for s in SHAPES),
                             *(int(colour == c) for c in COLOURS)])


def save_random_backbone(folder: Path, seed: int = 0) -> Path:
    """A small ResNet (4 stages, 256-d pooled) with RANDOM weights, via save_pretrained."""
    import torch
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(seed)
    config = ResNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[32, 64, 128, 256],
                          depths=[1, 1, 1, 1], layer_type="basic")
    ResNetModel(config).save_pretrained(folder)
    return folder


def write_demo(out: Path, *, per_class: int = 20, new_per_class: int = 4, seed: int = 0,
               size: int = 64) -> Path:
    """Everything the shapes x colours walk-through needs, under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    write_images(out / "images", per_class, seed=seed, size=size)
    new = out / "new_images"
    new.mkdir(exist_ok=True)
    for c, name in enumerate(class_names()):
        shape, colour = name.split("_")
        for i in range(new_per_class):
            draw(shape, colour, size, seed=(seed + 1) * 7_000_003 + c * 1009 + i).save(
                new / f"synthetic_{name}_{i}.png")
    write_attributes(out / "attributes.csv")
    (out / "unseen.txt").write_text("\n".join(unseen_classes()) + "\n")
    save_random_backbone(out / "backbone", seed=seed)
    (out / "README.txt").write_text(
        "SYNTHETIC images (drawn shapes, not photographs) and a RANDOM-weight backbone,\n"
        "made by python -m gzsl.features.shapes for the bring-your-own-images demo.\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the SYNTHETIC shapes x colours demo "
                                     "inputs (images, attributes, unseen list, random backbone).")
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_demo(args.out, per_class=args.per_class, seed=args.seed)
    print(f"wrote SYNTHETIC shapes x colours images, attributes.csv, unseen.txt and a random "
          f"backbone under {args.out}")


if __name__ == "__main__":
    main()
