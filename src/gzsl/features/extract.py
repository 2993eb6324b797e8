"""Image folder (or CSV list) -> features file, resumable, never stopped by a bad image.

The work is cut into chunks of consecutive images. Each finished chunk is written (
atomically) to ``OUT.parts/`` beside the output together with a manifest naming the image
list and the backbone; a run killed at any point and started again with the same
arguments skips the chunks already there, so it ends with the features an uninterrupted
run gives. At the end the chunks become one ``.npz`` (docs/data-formats.md, "features
file") and the parts folder is removed.

An image that cannot be read (empty, truncated, corrupt, not an image, too large) is
skipped and reported: in the list printed at the end and in the output's provenance.
Grayscale, 16-bit, CMYK, palette and alpha images are converted to RGB (transparent
pixels become white).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gzsl.data.errors import GZSLError
from gzsl.data.io import summarize
from gzsl.utils import atomic_write

FORMAT = "gzsl-features-1"
MANIFEST = "manifest.json"


class UnusableImageError(Exception):
    """One image that cannot be used; its message says why, in a few words."""


@dataclass
class ImageList:
    """The images of an extraction, in order, with their classes.

    Attributes:
        root: folder the ``paths`` are relative to.
        paths: image paths relative to ``root`` (POSIX separators).
        classes: the class name of each image (empty strings for unlabelled images).
        notes: what was left out while listing, for the user.
    """

    root: Path
    paths: list[str]
    classes: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.classes)))

    def labels(self) -> np.ndarray:
        index = {name: i for i, name in enumerate(self.class_names)}
        return np.asarray([index[c] for c in self.classes], dtype=np.int64)

    def checksum(self) -> str:
        """SHA-256 of the list: each image's relative path, class and size in bytes.

        Cheap (no image is read) and enough to tell that a resumed run or a dataset sees
        the same images; a file edited in place to the same size is not noticed.
        """
        digest = hashlib.sha256()
        for path, name in zip(self.paths, self.classes, strict=True):
            try:
                size = (self.root / path).stat().st_size
            except OSError:
                size = -1
            digest.update(f"{path}\t{name}\t{size}\n".encode())
        return digest.hexdigest()


def _visible(path: Path | str) -> bool:
    return not Path(path).name.startswith(".")


def list_images(source: str | Path) -> ImageList:
    """The labelled images of ``source``: a folder with one subfolder per class (images
    anywhere below it), or a CSV file with columns ``path`` and ``class`` (paths relative
    to the CSV's folder). Every file is listed; non-images are skipped at extraction."""
    source = Path(source)
    if source.is_file():
        return _list_csv(source)
    if not source.is_dir():
        raise GZSLError(f"image source {source} does not exist. Fix: pass a folder with one "
                        "subfolder per class, or a CSV of path,class")
    notes: list[str] = []
    loose = [p.name for p in source.iterdir() if p.is_file() and _visible(p)]
    if loose:
        notes.append(f"{len(loose)} file(s) directly in {source} belong to no class folder "
                     f"and were left out ({', '.join(sorted(loose)[:3])}...)")
    paths, classes = [], []
    for folder in sorted(p for p in source.iterdir() if p.is_dir() and _visible(p)):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and all(
            _visible(part) for part in p.relative_to(folder).parts))
        if not files:
            notes.append(f"class folder {folder.name} holds no file: left out")
        for file in files:
            paths.append(file.relative_to(source).as_posix())
            classes.append(folder.name)
    if not paths:
        raise GZSLError(f"{source} holds no class subfolder with files. Fix: put the images "
                        "of each class in a subfolder named after the class (or pass a CSV "
                        "of path,class)")
    return ImageList(source, paths, classes, notes)


def _list_csv(path: Path) -> ImageList:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle, delimiter=delimiter))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise GZSLError(f"cannot read {path} as a CSV list of images ({summarize(error)}). "
                        "Fix: a UTF-8 CSV with a header row path,class") from error
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if "path" not in header or "class" not in header:
        raise GZSLError(f"{path} needs a header row with columns 'path' and 'class' (found "
                        f"{', '.join(header) or 'nothing'}). Fix: first line path,class")
    at_path, at_class = header.index("path"), header.index("class")
    paths, classes = [], []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(at_path, at_class) or not row[at_path].strip() \
                or not row[at_class].strip():
            raise GZSLError(f"{path} line {number} lacks a path or a class. Fix: every row "
                            "holds an image path and its class")
        paths.append(row[at_path].strip())
        classes.append(row[at_class].strip())
    if not paths:
        raise GZSLError(f"{path} lists no image. Fix: one row path,class per image")
    return ImageList(path.parent, paths, classes)


def to_rgb(image: Any) -> Any:
    """Any PIL image as 8-bit RGB: alpha composited on white, 16-bit and float scaled."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max(initial=0) > 255 else 255.0
        scaled = (np.clip(array, 0, top) / top * 255.0).round().astype(np.uint8)
        image = Image.fromarray(scaled, mode="L")
    if image.mode in ("LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def load_image(path: str | Path) -> Any:
    """The image at ``path`` as an RGB PIL image (EXIF orientation applied).

    Raises:
        UnusableImageError: missing, empty, not an image, truncated, corrupt or too large.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UnusableImageError("empty file (0 bytes)")
    except OSError as error:
        raise UnusableImageError(f"cannot open: {error.strerror or summarize(error)}") from error
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image) or image
            return to_rgb(image)
    except UnidentifiedImageError as error:
        raise UnusableImageError("not an image (no format PIL reads)") from error
    except Image.DecompressionBombError as error:
        raise UnusableImageError(f"too many pixels ({summarize(error, 60)})") from error
    except Exception as error:  # any decoder failure means "this file is broken"
        kind = "truncated" if "truncated" in str(error).lower() else "cannot decode"
        raise UnusableImageError(f"{kind}: {summarize(error, 80)}") from error


def _prepared(path: Path, transform: Callable[[Any], np.ndarray]) -> np.ndarray | str:
    try:
        return transform(load_image(path))
    except UnusableImageError as problem:
        return str(problem)


def embed_files(backbone: Any, files: Sequence[Path], *, batch_size: int = 32,
                workers: int = 2, progress: Callable[[int], None] | None = None,
                ) -> tuple[np.ndarray, list[int], list[tuple[int, str]]]:
    """Embed ``files`` in order: features ``(n_ok, D)``, the positions of those rows in
    ``files``, and ``(position, reason)`` for each file that was skipped.

    Images are decoded and transformed on ``workers`` threads, ``batch_size`` at a time;
    the batches depend only on the list, so the same list always gives the same batches.
    """
    import torch

    rows: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[tuple[int, str]] = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for start in range(0, len(files), batch_size):
            part = files[start:start + batch_size]
            arrays, positions = [], []
            for offset, result in enumerate(pool.map(
                    lambda p: _prepared(p, backbone.transform), part)):
                if isinstance(result, str):
                    skipped.append((start + offset, result))
                else:
                    arrays.append(result)
                    positions.append(start + offset)
            if arrays:
                pixels = torch.from_numpy(np.stack(arrays))
                rows.append(backbone.embed(pixels).numpy().astype(np.float32))
                kept.extend(positions)
            if progress is not None:
                progress(len(part))
    features = np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
    return features, kept, skipped


@dataclass
class Extraction:
    """What :func:`extract_features` wrote: the output path, counts and skipped files."""

    path: Path
    images: int
    feature_dim: int
    skipped: list[dict[str, str]]
    resumed_chunks: int
    notes: list[str]


def _manifest(images: ImageList, backbone: Any, chunk_size: int, batch_size: int) -> dict:
    described = backbone.describe()
    return {"format": FORMAT, "image_list_sha256": images.checksum(), "images": len(images.paths),
            "chunk_size": chunk_size, "batch_size": batch_size,
            "backbone": {k: described.get(k) for k in ("provider", "backbone", "weights",
                                                       "pooling", "transform", "precision")}}


def _write_npz(path: Path, **arrays: Any) -> Path:
    return atomic_write(path, lambda handle: np.savez(handle, **arrays))


def extract_features(images: ImageList, backbone: Any, out: str | Path, *,
                     batch_size: int = 32, chunk_size: int = 512, workers: int = 2,
                     progress: bool = True, force: bool = False, name: str | None = None,
                     on_chunk: Callable[[int], None] | None = None) -> Extraction:
    """Embed every image of ``images`` with ``backbone`` and write the features file ``out``.

    Args:
        images: from :func:`list_images`.
        backbone: from :func:`gzsl.features.backbones.load_backbone`.
        out: the ``.npz`` to write; its working folder is ``OUT.parts/``.
        batch_size: images per forward pass.
        chunk_size: images per saved chunk (rounded up to whole batches): what a killed
            run loses at most.
        workers: threads decoding images.
        progress: show a progress bar (rate and ETA) on standard error.
        force: replace an existing ``out``.
        name: dataset name recorded in the file (default: the image folder's name).
        on_chunk: called with the chunk number after each chunk is saved.

    Raises:
        GZSLError: ``out`` exists (without ``force``), ``OUT.parts`` holds another
            extraction, or no image at all could be read.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    if out.suffix.lower() != ".npz":
        raise GZSLError(f"output {out} must end with .npz")
    if out.exists() and not force:
        raise GZSLError(f"{out} exists; pass --force to replace it")
    if batch_size < 1 or chunk_size < 1:
        raise GZSLError("batch size and chunk size must be at least 1")
    chunk_size = -(-chunk_size // batch_size) * batch_size
    parts = out.with_name(out.name + ".parts")
    manifest = _manifest(images, backbone, chunk_size, batch_size)
    if (parts / MANIFEST).is_file():
        try:
            previous = json.loads((parts / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous != json.loads(json.dumps(manifest)):
            raise GZSLError(f"{parts} holds an unfinished extraction of other images or with "
                            "other settings. Fix: run it again with the same arguments to "
                            f"resume it, or delete {parts} to start afresh")
    else:
        parts.mkdir(parents=True, exist_ok=True)
        atomic_write(parts / MANIFEST,
                     lambda handle: handle.write(json.dumps(manifest, indent=2).encode()))
    for stray in parts.glob(".*.tmp"):
        stray.unlink(missing_ok=True)
    files = [images.root / p for p in images.paths]
    n_chunks = -(-len(files) // chunk_size)
    done = [c for c in range(n_chunks) if (parts / f"chunk-{c:06d}.npz").is_file()]
    bar = tqdm(total=len(files), initial=min(len(done) * chunk_size, len(files)),
               unit="img", desc="extracting", disable=not progress, dynamic_ncols=True)
    try:
        for chunk in range(n_chunks):
            if chunk in done:
                continue
            start = chunk * chunk_size
            features, kept, skipped = embed_files(
                backbone, files[start:start + chunk_size], batch_size=batch_size,
                workers=workers, progress=bar.update)
            _write_npz(parts / f"chunk-{chunk:06d}.npz", features=features,
                       index=np.asarray(kept, dtype=np.int64) + start,
                       skipped_index=np.asarray([i for i, _ in skipped], np.int64) + start,
                       skipped_reason=np.array([r for _, r in skipped], dtype=str))
            if on_chunk is not None:
                on_chunk(chunk)
    finally:
        bar.close()
    return _assemble(images, backbone, out, parts, n_chunks, manifest, len(done), name)


def _assemble(images: ImageList, backbone: Any, out: Path, parts: Path, n_chunks: int,
              manifest: dict, resumed: int, name: str | None) -> Extraction:
    rows, index, skipped = [], [], []
    for chunk in range(n_chunks):
        with np.load(parts / f"chunk-{chunk:06d}.npz", allow_pickle=False) as stored:
            if stored["features"].size:
                rows.append(stored["features"])
            index.extend(stored["index"].tolist())
            skipped.extend({"path": images.paths[i], "reason": str(r)}
                           for i, r in zip(stored["skipped_index"].tolist(),
                                           stored["skipped_reason"].tolist(), strict=True))
    if not rows:
        raise GZSLError(f"none of the {len(images.paths)} files could be read as an image "
                        f"(first: {skipped[0]['path']}: {skipped[0]['reason']}). Fix: check "
                        "the image folder")
    features = np.concatenate(rows)
    labels_all = images.labels()
    kept_classes = sorted({images.classes[i] for i in index})
    lost = [c for c in images.class_names if c not in kept_classes]
    notes = list(images.notes)
    if lost:
        notes.append(f"class(es) {', '.join(lost)} have no readable image and were left out")
    remap = {images.class_names.index(c): i for i, c in enumerate(kept_classes)}
    labels = np.asarray([remap[int(labels_all[i])] for i in index], dtype=np.int64)
    provenance = {
        "kind": "features", "format": FORMAT,
        "backbone": backbone.describe(),
        "image_list": {"source": str(images.root.resolve()), "listed": len(images.paths),
                       "sha256": manifest["image_list_sha256"]},
        "images": len(index), "feature_dim": int(features.shape[1]),
        "batch_size": manifest["batch_size"], "chunk_size": manifest["chunk_size"],
        "skipped": skipped, "notes": notes,
    }
    _write_npz(out, features=features, labels=labels,
               class_names=np.array(kept_classes, dtype=str),
               paths=np.array([images.paths[i] for i in index], dtype=str),
               name=np.array(name or images.root.resolve().name),
               source=np.array(json.dumps(provenance)))
    shutil.rmtree(parts, ignore_errors=True)
    return Extraction(out, len(index), int(features.shape[1]), skipped, resumed, notes)


@dataclass
class FeaturesFile:
    """A features file as written by :func:`extract_features`."""

    path: Path
    features: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    paths: tuple[str, ...]
    name: str
    provenance: dict[str, Any]


def read_features_file(path: str | Path) -> FeaturesFile:
    """Read a features file (``gzsl features extract``'s output), checking its keys."""
    from gzsl.data.io import read_npz_fields

    path = Path(path)
    fields = read_npz_fields(path, "features file", "pass the file gzsl features extract wrote")
    missing = [k for k in ("features", "labels", "class_names") if k not in fields]
    if missing:
        raise GZSLError(f"{path} is not a features file: it lacks {', '.join(missing)}. Fix: "
                        "pass the file gzsl features extract wrote (features, labels, "
                        "class_names)")
    features = np.asarray(fields["features"])
    labels = np.asarray(fields["labels"])
    names = tuple(str(n) for n in np.atleast_1d(fields["class_names"]))
    if features.ndim != 2 or labels.shape != (len(features),) or labels.dtype.kind not in "iu" \
            or (len(labels) and (labels.min() < 0 or labels.max() >= len(names))):
        raise GZSLError(f"{path} holds features {features.shape} and labels {labels.shape} "
                        f"that do not match {len(names)} class names. Fix: extract again")
    try:
        provenance = json.loads(str(fields["source"])) if "source" in fields else {}
    except json.JSONDecodeError:
        provenance = {}
    paths = tuple(str(p) for p in fields.get("paths", np.array([], dtype=str)))
    name = str(fields["name"]) if "name" in fields else path.stem
    return FeaturesFile(path, features.astype(np.float32), labels.astype(np.int64), names,
                        paths, name, provenance)
