"""Bring-your-own-images benchmarks: extraction speed, and the shapes x colours pipeline
over seeds.

``speed``: images per second of ``gzsl features extract``'s embedding step (decode,
transform, forward pass) at full size (224 x 224), for backbones of the default's shape
(ResNet-101, 2048-d) and of ViT-B/16, with RANDOM weights built from their configs (no
weights can be downloaded where this runs; the arithmetic is the same as for trained ones).
The images are generated JPEGs of 500 x 375 pixels (a typical photo's size).

``pipeline``: the SYNTHETIC shapes x colours walk-through (tests/features/
test_end_to_end.py's settings) for several seeds, through the library calls the CLI
makes: extract -> classes -> data make -> train gaussian (val selection) -> predict on
new images. Prints U, S, H, T1 and the accuracy of predictions on the new images.

    python benchmarks/images.py speed --images 32 --batch-size 16
    python benchmarks/images.py pipeline --seeds 0 1 2 3 4

Figures measured so far are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def speed(n_images: int, batch_size: int, workers: int, device: str) -> list[dict]:
    from PIL import Image
    from transformers import ResNetConfig, ResNetModel, ViTConfig, ViTModel

    from gzsl.features.backbones import load_backbone
    from gzsl.features.extract import embed_files

    folder = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    files = []
    for i in range(n_images):
        pixels = rng.integers(0, 256, size=(375, 500, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)
        files.append(folder / f"{i}.jpg")
    shapes = {
        "resnet-101 (default shape)": ResNetModel(ResNetConfig(
            embedding_size=64, hidden_sizes=[256, 512, 1024, 2048], depths=[3, 4, 23, 3],
            layer_type="bottleneck")),
        "vit-b/16": ViTModel(ViTConfig(image_size=224, patch_size=16), add_pooling_layer=False),
    }
    results = []
    for name, model in shapes.items():
        model.save_pretrained(folder / "model")
        backbone = load_backbone(str(folder / "model"), device=device)
        embed_files(backbone, files[:batch_size], batch_size=batch_size, workers=workers)
        start = time.perf_counter()
        features, kept, _ = embed_files(backbone, files, batch_size=batch_size, workers=workers)
        seconds = time.perf_counter() - start
        results.append({"backbone": name, "feature_dim": int(features.shape[1]),
                        "images": len(kept), "seconds": round(seconds, 2),
                        "images_per_second": round(len(kept) / seconds, 2),
                        "batch_size": batch_size, "device": device,
                        "torch_threads": torch.get_num_threads()})
        print(json.dumps(results[-1]), flush=True)
    return results


def pipeline(seed: int, per_class: int = 16) -> dict:
    import gzsl
    from gzsl.data.io import save_npz
    from gzsl.data.make import SplitSpec, make_dataset
    from gzsl.features import shapes
    from gzsl.features.backbones import Transform, load_backbone
    from gzsl.features.extract import extract_features, list_images, read_features_file
    from gzsl.features.predict import expand_inputs, predict_images
    from gzsl.features.semantics import from_attribute_table

    folder = Path(tempfile.mkdtemp())
    demo = shapes.write_demo(folder / "demo", per_class=per_class, new_per_class=3, seed=seed)
    backbone = load_backbone(str(demo / "backbone"), transform=Transform(64, 64))
    extract_features(list_images(demo / "images"), backbone, folder / "f.npz", progress=False,
                     name="shapes")
    images = read_features_file(folder / "f.npz")
    semantics = from_attribute_table(demo / "attributes.csv", images.class_names)
    data = make_dataset(images.features, images.labels, images.class_names,
                        semantics.semantics, semantics.class_names,
                        SplitSpec(unseen=tuple(shapes.unseen_classes()), val_count=2, seed=seed),
                        name="shapes", source={"features": images.provenance})
    save_npz(data, folder / "d.npz")
    run = gzsl.train("gaussian", "shapes", root=folder / "d.npz", preset="demo", seed=seed,
                     selection="val", device="cpu", out=folder / "run", ridge=0.1,
                     classifier_lr=0.01, classifier_epochs=50)
    files, names, _, _ = predict_images(run, expand_inputs([demo / "new_images"]), top=1,
                                        progress=False)
    correct = [name[0] in f.name for f, name in zip(files, names, strict=True)]
    return {"seed": seed, **{k: round(v, 1) for k, v in run.metrics.items()},
            "new_images_accuracy": round(100 * float(np.mean(correct)), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    timing = sub.add_parser("speed")
    timing.add_argument("--images", type=int, default=32)
    timing.add_argument("--batch-size", type=int, default=16)
    timing.add_argument("--workers", type=int, default=2)
    timing.add_argument("--device", default="cpu")
    seeds = sub.add_parser("pipeline")
    seeds.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    if args.what == "speed":
        speed(args.images, args.batch_size, args.workers, args.device)
        return
    rows = []
    for seed in args.seeds:
        rows.append(pipeline(seed))
        print(json.dumps(rows[-1]), flush=True)
    for key in ("U", "S", "H", "T1", "new_images_accuracy"):
        values = [row[key] for row in rows]
        print(f"{key}: min {min(values):.1f} mean {np.mean(values):.1f} max {max(values):.1f}")


if __name__ == "__main__":
    main()
