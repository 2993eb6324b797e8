"""Class semantic vectors from an attribute table, from class names or from descriptions.

* An attribute table (CSV or TSV: a header row of attribute names, then one row per
  class: its name and one number per attribute) is read and checked: every class asked
  for must have a row, every cell must be a number.
* Text (class names put into prompt templates, or one description per class) is embedded
  by a text encoder behind one small interface (:data:`TEXT_ENCODERS`): a
  ``sentence-transformers`` model, or the text tower of a CLIP checkpoint. Several
  templates per class are averaged (prompt ensembling).

Rows are L2-normalised (attribute tables: unless asked not to; text: always), as the
xlsa17 attribute matrices are. Provenance (source file checksum, encoder and weights,
templates, library versions) goes with the vectors.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gzsl.data.errors import GZSLError
from gzsl.data.io import file_record, summarize
from gzsl.features.backbones import library_versions, require, weights_id
from gzsl.utils import atomic_write

DEFAULT_TEXT_MODEL = "sentence-transformers/all-mpnet-base-v2"
DEFAULT_TEMPLATES = ("a photo of a {}.",)


@dataclass
class ClassSemantics:
    """One semantic vector per class, with where they came from.

    Attributes:
        class_names: the ``C`` classes, in row order.
        semantics: ``(C, A)`` float32.
        attribute_names: names of the ``A`` columns (attribute tables), else None.
        provenance: how the vectors were made (JSON-able).
    """

    class_names: tuple[str, ...]
    semantics: np.ndarray
    attribute_names: tuple[str, ...] | None
    provenance: dict[str, Any]

    def save(self, path: str | Path) -> Path:
        """Write the ``.npz`` (``semantics``, ``class_names``, ``attribute_names``,
        ``source``) atomically."""
        fields: dict[str, Any] = {
            "semantics": self.semantics.astype(np.float32),
            "class_names": np.array(self.class_names, dtype=str),
            "source": np.array(json.dumps(self.provenance, default=str))}
        if self.attribute_names is not None:
            fields["attribute_names"] = np.array(self.attribute_names, dtype=str)
        return atomic_write(Path(path), lambda handle: np.savez(handle, **fields))


def l2_rows(matrix: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Each row divided by its L2 norm; an all-zero row is a user error naming its class."""
    norms = np.linalg.norm(matrix, axis=1)
    zero = [names[i] for i in np.flatnonzero(norms == 0)]
    if zero:
        raise GZSLError(f"class(es) {', '.join(zero[:5])} have an all-zero semantic vector, "
                        "which cannot be normalised (and no method can tell such a class "
                        "apart). Fix: give each class at least one non-zero attribute, or "
                        "pass --no-l2")
    return (matrix / norms[:, None]).astype(np.float32)


def _rows(path: Path) -> list[list[str]]:
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise GZSLError(f"cannot read {path} ({summarize(error)}). Fix: a UTF-8 CSV or TSV "
                        "file") from error
    if delimiter is None:
        first = text.splitlines()[0] if text.strip() else ""
        delimiter = "\t" if first.count("\t") > first.count(",") else ","
    return [row for row in csv.reader(text.splitlines(), delimiter=delimiter)
            if any(cell.strip() for cell in row)]


def from_attribute_table(path: str | Path, classes: Sequence[str] | None = None, *,
                         l2: bool = True) -> ClassSemantics:
    """Class semantics from a table of classes x attributes.

    Args:
        path: CSV (or TSV, by extension or by its header line): header row (first cell:
            anything, e.g. ``class``; then attribute names), then ``name, v1, v2, ...``.
        classes: the classes wanted, in this order (e.g. those of a features file); None
            takes every row of the table, in its order.
        l2: normalise each class's row to unit L2 norm.

    Raises:
        GZSLError: a wanted class has no row, a class has two rows, a row has the wrong
            number of cells, or a cell is not a finite number (all such cells listed).
    """
    path = Path(path)
    rows = _rows(path)
    if len(rows) < 2 or len(rows[0]) < 2:
        raise GZSLError(f"{path} needs a header row (class, attribute names...) and one row "
                        "per class. Fix: see docs/bring-your-own-images.md")
    attributes = tuple(cell.strip() for cell in rows[0][1:])
    table: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for number, row in enumerate(rows[1:], start=2):
        name = row[0].strip()
        if len(row) != len(attributes) + 1:
            problems.append(f"line {number} ({name}) has {len(row) - 1} values for "
                            f"{len(attributes)} attributes")
            continue
        if name in table:
            problems.append(f"class {name!r} has two rows (line {number})")
            continue
        values = []
        for attribute, cell in zip(attributes, row[1:], strict=True):
            try:
                value = float(cell)
                if not np.isfinite(value):
                    raise ValueError
            except ValueError:
                problems.append(f"line {number} ({name}), column {attribute!r}: {cell!r} is "
                                "not a finite number")
                value = np.nan
            values.append(value)
        table[name] = np.asarray(values, dtype=np.float64)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more"
                                            if len(problems) > 5 else "")
        raise GZSLError(f"attribute table {path}: {shown}. Fix: one row per class, one "
                        "number per attribute")
    names = list(classes) if classes is not None else list(table)
    missing = [name for name in names if name not in table]
    if missing:
        raise GZSLError(f"attribute table {path} has no row for {len(missing)} class(es): "
                        f"{', '.join(missing[:10])}{', ...' if len(missing) > 10 else ''}. "
                        "Fix: add a row per class (names must match the image folders)")
    matrix = np.stack([table[name] for name in names]).astype(np.float32)
    if l2:
        matrix = l2_rows(matrix, names)
    provenance = {"kind": "semantics", "method": "attributes",
                  "file": file_record(path, "attributes"), "attributes": len(attributes), "l2": l2,
                  "unused_rows": sorted(set(table) - set(names)),
                  "versions": library_versions()}
    return ClassSemantics(tuple(names), matrix, attributes, provenance)


def read_descriptions(path: str | Path) -> dict[str, str]:
    """``class -> description`` from a CSV with a header row ``class,description``."""
    path = Path(path)
    rows = _rows(path)
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if "class" not in header or "description" not in header:
        raise GZSLError(f"{path} needs a header row with columns 'class' and 'description' "
                        f"(found {', '.join(header) or 'nothing'}). Fix: first line "
                        "class,description")
    at_class, at_text = header.index("class"), header.index("description")
    out: dict[str, str] = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) <= max(at_class, at_text) or not row[at_text].strip():
            raise GZSLError(f"{path} line {number} lacks a description. Fix: one row "
                            "class,description per class")
        name = row[at_class].strip()
        if name in out:
            raise GZSLError(f"{path}: class {name!r} is described twice (line {number}). Fix: "
                            "one description per class")
        out[name] = row[at_text].strip()
    return out


def prompts(class_names: Sequence[str], templates: Sequence[str]) -> dict[str, list[str]]:
    """Each class name (underscores read as spaces) put into every template's ``{}``."""
    for template in templates:
        if template.count("{}") != 1:
            raise GZSLError(f"template {template!r} must hold one {{}} where the class name "
                            "goes, e.g. 'a photo of a {}.'")
    return {name: [t.format(name.replace("_", " ")) for t in templates] for name in class_names}


class TextEncoder(Protocol):
    """What class semantics need from a text model; all a new encoder implements."""

    def encode(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), E)`` float32 embeddings."""

    def describe(self) -> dict[str, Any]:
        """Provenance: encoder kind, model name, weights id, library versions."""


class SentenceTransformerEncoder:
    """A ``sentence-transformers`` model (hub name or a folder written by its ``save``)."""

    def __init__(self, name: str, device: str = "cpu") -> None:
        module = require("sentence_transformers")
        try:
            self.model = module.SentenceTransformer(name, device=device)
        except (OSError, ValueError, KeyError) as error:
            raise GZSLError(f"cannot load text model {name!r} with sentence-transformers "
                            f"({summarize(error, 160)}). Fix: a sentence-transformers model "
                            "name (needs the hub or its cache) or a folder it saved") from error
        self.name = name

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.encode(texts, batch_size=64, convert_to_numpy=True,
                                            show_progress_bar=False), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {"encoder": "sentence-transformers", "model": self.name,
                "weights": weights_id(self.name),
                "versions": library_versions("sentence-transformers", "transformers")}


class ClipTextEncoder:
    """The text tower of a CLIP-style ``transformers`` checkpoint (``get_text_features``)."""

    def __init__(self, name: str, device: str = "cpu") -> None:
        transformers = require("transformers")
        import torch

        transformers.utils.logging.disable_progress_bar()
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(name)
            self.model = transformers.AutoModel.from_pretrained(name).eval().to(device)
        except (OSError, ValueError, KeyError) as error:
            raise GZSLError(f"cannot load CLIP text model {name!r} ({summarize(error, 160)}). "
                            "Fix: a CLIP checkpoint name or a folder written by "
                            "save_pretrained") from error
        if not hasattr(self.model, "get_text_features"):
            raise GZSLError(f"{name!r} has no text tower (get_text_features). Fix: --encoder "
                            "sentence-transformers, or a CLIP-style checkpoint")
        self.name, self.device, self._torch = name, device, torch

    def encode(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        config = getattr(self.model.config, "text_config", self.model.config)
        limit = int(getattr(config, "max_position_embeddings", 77))
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=limit,
                                return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items()
                  if k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            out = self.model.get_text_features(**tokens)
        if not isinstance(out, torch.Tensor):
            embeds = getattr(out, "text_embeds", None)
            out = embeds if embeds is not None else out.pooler_output
        return out.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {"encoder": "clip", "model": self.name,
                "weights": weights_id(self.name, self.model),
                "versions": library_versions("transformers")}


#: Encoder name -> class building a :class:`TextEncoder` from (model name, device).
TEXT_ENCODERS: dict[str, Callable[..., TextEncoder]] = {
    "sentence-transformers": SentenceTransformerEncoder, "clip": ClipTextEncoder}


def load_text_encoder(encoder: str, name: str, device: str = "cpu") -> TextEncoder:
    if encoder not in TEXT_ENCODERS:
        raise GZSLError(f"unknown text encoder {encoder!r}; choose one of "
                        f"{', '.join(TEXT_ENCODERS)}")
    return TEXT_ENCODERS[encoder](name, device=device)


def from_texts(texts: dict[str, list[str]], encoder: TextEncoder, *, method: str,
               extra: dict[str, Any] | None = None) -> ClassSemantics:
    """One unit vector per class: the mean of its texts' unit embeddings, renormalised."""
    names = list(texts)
    if not names or any(not texts[n] for n in names):
        raise GZSLError("every class needs at least one text to embed")
    flat = [text for name in names for text in texts[name]]
    embedded = encoder.encode(flat)
    embedded = embedded / np.maximum(np.linalg.norm(embedded, axis=1, keepdims=True), 1e-12)
    rows, start = [], 0
    for name in names:
        rows.append(embedded[start:start + len(texts[name])].mean(axis=0))
        start += len(texts[name])
    matrix = l2_rows(np.stack(rows), names)
    provenance = {"kind": "semantics", "method": method, "l2": True,
                  "encoder": encoder.describe(), "texts_per_class": max(map(len, texts.values())),
                  **(extra or {})}
    return ClassSemantics(tuple(names), matrix, None, provenance)


def read_semantics_file(path: str | Path) -> ClassSemantics:
    """A class semantics ``.npz`` (``gzsl features classes``' output), checked."""
    from gzsl.data.io import read_npz_fields

    path = Path(path)
    fields = read_npz_fields(path, "class semantics file",
                             "pass the file gzsl features classes wrote")
    if "semantics" not in fields or "class_names" not in fields:
        raise GZSLError(f"{path} is not a class semantics file: it needs 'semantics' and "
                        "'class_names'. Fix: pass the file gzsl features classes wrote")
    semantics = np.asarray(fields["semantics"])
    names = tuple(str(n) for n in np.atleast_1d(fields["class_names"]))
    if semantics.ndim != 2 or len(semantics) != len(names) or semantics.dtype.kind not in "fiu":
        raise GZSLError(f"{path}: semantics {semantics.shape} do not give one numeric row per "
                        f"class ({len(names)} names). Fix: make the file again")
    try:
        provenance = json.loads(str(fields["source"])) if "source" in fields else {}
    except json.JSONDecodeError:
        provenance = {}
    attributes = (tuple(str(a) for a in fields["attribute_names"])
                  if "attribute_names" in fields else None)
    return ClassSemantics(names, semantics.astype(np.float32), attributes, provenance)
