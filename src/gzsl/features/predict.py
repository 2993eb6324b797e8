"""Classify images with a trained run: the run's own backbone and transform, then its
preprocessing and classifier.

The backbone is the one recorded in the provenance of the run's dataset (a dataset made by
``gzsl data make`` from ``gzsl features extract`` output records it), so new images are
embedded exactly as the training images were.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gzsl.data.errors import GZSLError

_GLOB = set("*?[")


def backbone_record(metadata: dict[str, Any]) -> dict[str, Any]:
    """The backbone record in a run's ``metadata.json`` (its dataset's provenance), or a
    clear error when the run's features were not extracted by ``gzsl features extract``."""
    data = metadata.get("data") if isinstance(metadata, dict) else None
    for record in (data, (data or {}).get("converted_from")):
        if isinstance(record, dict):
            features = record.get("features")
            if isinstance(features, dict) and isinstance(features.get("backbone"), dict):
                return features["backbone"]
    raise GZSLError("the run's dataset has no recorded backbone: its features were not "
                    "extracted from images by gzsl features extract, so gzsl cannot embed "
                    "new images the same way. Fix: pass a feature file (.npy, .npz, .mat) "
                    "made with the dataset's own extractor, or train on a dataset made with "
                    "gzsl features extract + gzsl data make")


def expand_inputs(items: Sequence[str | Path]) -> list[Path]:
    """Files, folders (every visible file below, sorted) and glob patterns -> files."""
    files: list[Path] = []
    for item in items:
        text = str(item)
        path = Path(text).expanduser()
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and not any(
                part.startswith(".") for part in p.relative_to(path).parts)))
        elif path.exists():
            files.append(path)
        elif _GLOB & set(text):
            matched = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            if not matched:
                raise GZSLError(f"no file matches {text}. Fix: check the pattern (quote it "
                                "so that gzsl, not the shell, expands it)")
            files.extend(p for p in matched if p.is_file())
        else:
            raise GZSLError(f"{text} does not exist. Fix: pass image files, folders or glob "
                            "patterns")
    if not files:
        raise GZSLError("no image found in " + ", ".join(map(str, items)))
    return files


def predict_images(run: Any, files: Sequence[Path], *, top: int = 3, device: str = "cpu",
                   batch_size: int = 32, workers: int = 2, progress: bool = True,
                   ) -> tuple[list[Path], np.ndarray, np.ndarray, list[tuple[Path, str]]]:
    """Embed ``files`` with the run's backbone and rank the run's classes for each.

    Returns:
        The files classified, their top-``k`` class names ``(n, k)`` and probabilities
        ``(n, k)`` (as :meth:`TrainedRun.top_k`), and ``(file, reason)`` for each file
        that could not be read as an image.
    """
    from tqdm.auto import tqdm

    from gzsl.features.backbones import backbone_from_record
    from gzsl.features.extract import embed_files

    record = backbone_record(run.metadata)
    backbone = backbone_from_record(record, device=device, precision="auto")
    with tqdm(total=len(files), unit="img", desc="embedding", disable=not progress,
              dynamic_ncols=True) as bar:
        features, kept, skipped = embed_files(backbone, list(files), batch_size=batch_size,
                                              workers=workers, progress=bar.update)
    problems = [(files[i], reason) for i, reason in skipped]
    if not kept:
        return [], np.zeros((0, top), object), np.zeros((0, top)), problems
    if features.shape[1] != run.feature_dim:
        raise GZSLError(f"the recorded backbone gives {features.shape[1]}-d features, but the "
                        f"run was trained on {run.feature_dim}-d ones. Fix: the run's "
                        "dataset provenance does not match its features; extract again")
    names, probabilities = run.top_k(features, top)
    return [files[i] for i in kept], names, probabilities, problems
