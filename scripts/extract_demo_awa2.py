"""One-off: extract the small AWA2 bookkeeping file shipped as ``gzsl/data/demo_awa2.json``.

Reads the real xlsa17 AWA2 split file and image labels (``att_splits.mat`` and
``labels.npy``, the ``labels`` field of ``res101.mat``) and writes the class names, the
85 x 50 ``att`` matrix (stored class-major, one row of 85 attributes per class, rounded to
6 significant digits), the proposed 40 / 10 seen / unseen split, the xlsa17 validation
classes (27 train / 13 val, checked disjoint) and the real per-class image counts. No
visual feature and no image index is copied: the demo dataset generates its own features.

Not run by the tests; the tests compare the shipped JSON against the same real files.

Usage::

    python scripts/extract_demo_awa2.py [../shared/xlsa17/AWA2] [src/gzsl/data/demo_awa2.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import scipy.io as sio

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "xlsa17" / "AWA2"
DEFAULT_TARGET = ROOT / "src" / "gzsl" / "data" / "demo_awa2.json"
SIGNIFICANT_DIGITS = 6

SOURCE_NOTE = (
    "Class names, the 85 x 50 attribute matrix 'att' (L2-normalised columns, as stored), the "
    "proposed 40/10 seen/unseen split, the train/val validation classes and the per-class "
    "image counts of Animals with Attributes 2 (AWA2; Xian, Lampert, Schiele and Akata, "
    "'Zero-Shot Learning - A Comprehensive Evaluation of the Good, the Bad and the Ugly', "
    "IEEE TPAMI 2018; 'xlsa17' proposed splits, att_splits.mat and the labels of res101.mat). "
    "AWA2 images and attributes: Xian et al. 2018, after Lampert et al.'s Animals with "
    "Attributes. No image features are included."
)


def _classes_of(labels: np.ndarray, one_based_index: np.ndarray) -> list[int]:
    """Sorted 0-based class ids of the images a 1-based xlsa17 index set points at."""
    images = one_based_index.ravel().astype(np.int64) - 1
    return sorted(int(c) - 1 for c in np.unique(labels[images]))


def extract(source: Path) -> dict:
    """The JSON document for ``demo_awa2.json`` from the real AWA2 files in ``source``."""
    splits = sio.loadmat(source / "att_splits.mat")
    labels = np.load(source / "labels.npy")
    names = [str(np.asarray(entry).ravel()[0]) for entry in splits["allclasses_names"].ravel()]
    attributes = splits["att"].T
    n_classes = attributes.shape[0]
    classes = {k: _classes_of(labels, splits[f"{k}_loc"])
               for k in ("trainval", "test_seen", "test_unseen", "train", "val")}
    if classes["trainval"] != classes["test_seen"]:
        raise ValueError("trainval and test_seen classes differ")
    if set(classes["train"]) & set(classes["val"]):
        raise ValueError("train and val classes overlap")
    if sorted(classes["train"] + classes["val"]) != classes["trainval"]:
        raise ValueError("train and val classes do not make up the trainval classes")
    if set(classes["trainval"]) & set(classes["test_unseen"]):
        raise ValueError("seen and unseen classes overlap")
    counts = np.bincount(labels - 1, minlength=n_classes)
    seen_images = int(counts[classes["trainval"]].sum())
    rounded = [[float(f"{v:.{SIGNIFICANT_DIGITS}g}") for v in row] for row in attributes]
    return {
        "name": "AWA2",
        "source": SOURCE_NOTE,
        "attributes_note": "att from att_splits.mat transposed to classes x attributes; "
                           f"values rounded to {SIGNIFICANT_DIGITS} significant digits",
        "class_names": names,
        "attributes": rounded,
        "seen_classes": classes["trainval"],
        "unseen_classes": classes["test_unseen"],
        "train_classes": classes["train"],
        "val_classes": classes["val"],
        "images_per_class": [int(c) for c in counts],
        "seen_images": seen_images,
        "test_seen_images": int(splits["test_seen_loc"].size),
    }


def to_text(document: dict) -> str:
    """Compact but diff-friendly JSON: one top-level key per line, one class row per line."""
    lines = []
    for key, value in document.items():
        if key == "attributes":
            rows = ",\n  ".join(json.dumps(row, separators=(",", ":")) for row in value)
            lines.append(f'"{key}": [\n  {rows}\n ]')
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value, separators=(',', ':'))}")
    return "{\n " + ",\n ".join(lines) + "\n}\n"


def main(argv: list[str]) -> None:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    target = Path(argv[2]) if len(argv) > 2 else DEFAULT_TARGET
    document = extract(source)
    text = to_text(document)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target} ({len(text) / 1024:.1f} KiB)")


if __name__ == "__main__":
    main(sys.argv)
