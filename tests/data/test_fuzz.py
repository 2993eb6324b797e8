"""Seeded fuzzing of the loaders: a mutated dataset file loads, or is one GZSLError.

Starting from tiny valid files of every layout (:mod:`tiny_files`; MATLAB files as v5,
compressed v7 and v7.3), each case rewrites one file with one deterministic mutation:
truncation or flipped bytes, or one variable deleted, renamed, or replaced by text,
complex, NaN, inf, its transpose, an empty or 3-D array, a wrong shape, booleans, huge
or fractional numbers. Loading it, and
``gzsl data check`` on it, must either succeed or raise a :class:`GZSLError` (never
another exception type), and must leave every input file byte for byte as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from tiny_files import (
    write_datamat,
    write_npz,
    write_xlsa17_v5,
    write_xlsa17_v73,
)
from typer.testing import CliRunner

from gzsl.cli.data import app
from gzsl.data import GZSLError
from gzsl.data.io import read_mat
from gzsl.data.loaders import load_dataset

SEED = 20261129
#: Cut points of the truncations, as shares of the file's length, and fixed offsets.
CUT_SHARES = (0.05, 0.3, 0.6, 0.95)
CUT_OFFSETS = (1, 100, 128, 600)
#: Byte flips per file.
FLIPS = 4
#: Variable mutations per key: a round-robin share of all kinds, so that every kind of
#: mutation meets several keys while the test stays a few seconds long.
PER_KEY = 4
#: ``gzsl data check`` runs on every CHECK_EVERY-th case (each run costs ~10 ms more).
CHECK_EVERY = 3

Mutation = Callable[[np.ndarray], object]

VALUE_MUTATIONS: dict[str, Mutation] = {
    "text": lambda v: np.full(np.shape(v) or (1,), "x1"),
    "complex": lambda v: np.asarray(v, dtype=float) + 1j,
    "nan": lambda v: _set_first(v, np.nan),
    "inf": lambda v: _set_first(v, -np.inf),
    "transposed": lambda v: np.asarray(v).T.copy(),
    "empty": lambda v: np.zeros((0, 0)),
    "scalar": lambda v: np.array(3.0),
    "3-D": lambda v: np.stack([np.asarray(v, dtype=float)] * 2, axis=-1),
    "bool": lambda v: np.asarray(v, dtype=float) > 0.5,
    "one row fewer": lambda v: np.asarray(v)[:-1],
    "one column more": lambda v: np.hstack([np.atleast_2d(np.asarray(v, dtype=float)),
                                            np.ones((np.atleast_2d(v).shape[0], 1))]),
    "huge": lambda v: np.asarray(v, dtype=float) * 1e300,
    "negative": lambda v: -np.asarray(v, dtype=float),
    "zeros": lambda v: np.zeros(np.shape(v)),
    "fraction": lambda v: np.asarray(v, dtype=float) + 0.5,
    "flattened": lambda v: np.asarray(v).reshape(1, -1),
    "integers": lambda v: np.arange(np.size(v)).reshape(np.shape(v)),
}


KINDS = ("missing", "renamed", *VALUE_MUTATIONS)


def _mutated(variables: dict, key: str, what: str) -> dict | None:
    """``variables`` with ``key`` mutated; None where the mutation does not apply."""
    if what == "missing":
        return {k: v for k, v in variables.items() if k != key}
    if what == "renamed":
        return {(k + "_old" if k == key else k): v for k, v in variables.items()}
    try:
        return {**variables, key: VALUE_MUTATIONS[what](variables[key])}
    except (ValueError, TypeError, IndexError):
        return None  # e.g. a number made of a cell of names


def _set_first(values, replacement: float) -> np.ndarray:
    out = np.array(values, dtype=float)
    if out.size:
        out.flat[0] = replacement
    return out


def _mat_variables(path: Path) -> dict:
    return read_mat(path)


def _write_v5(path: Path, variables: dict) -> None:
    scipy.io.savemat(path, variables)


def _write_v7(path: Path, variables: dict) -> None:
    scipy.io.savemat(path, variables, do_compression=True)


def _write_v73(path: Path, variables: dict) -> None:
    """Rewrite a v7.3 file; text becomes fixed-length bytes, cells stay references."""
    with h5py.File(path, "w", userblock_size=512) as handle:
        refs = handle.create_group("#refs#")
        for key, value in variables.items():
            array = np.asarray(value)
            if array.dtype == object:
                references = []
                for i, element in enumerate(array.ravel()):
                    chars = refs.create_dataset(f"{key}_{i}", data=np.array(
                        [[ord(c)] for c in str(element)] or [[0]], dtype=np.uint16))
                    chars.attrs["MATLAB_class"] = np.bytes_("char")
                    references.append(chars.ref)
                node = handle.create_dataset(key, data=np.array([references],
                                                                dtype=h5py.ref_dtype))
                node.attrs["MATLAB_class"] = np.bytes_("cell")
            elif array.dtype.kind == "U":
                handle.create_dataset(key, data=array.astype("S").T)
            else:
                node = handle.create_dataset(key, data=array.T)
                node.attrs["MATLAB_class"] = np.bytes_(
                    "logical" if array.dtype == bool else "double")
    with open(path, "r+b") as raw:
        raw.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: fuzz HDF5 schema 1.00 .")


def _npz_variables(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def _write_npz(path: Path, variables: dict) -> None:
    np.savez(path, **variables)


LAYOUTS = {
    "xlsa17-v5": (write_xlsa17_v5, ("res101.mat", "att_splits.mat"), _mat_variables, _write_v5),
    "xlsa17-v7": (lambda d: write_xlsa17_v5(d, compressed=True),
                  ("res101.mat", "att_splits.mat"), _mat_variables, _write_v7),
    "xlsa17-v7.3": (write_xlsa17_v73, ("res101.mat", "att_splits.mat"), _mat_variables,
                    _write_v73),
    "datamat": (write_datamat, ("data.mat", "label.mat"), _mat_variables, _write_v5),
    "npz": (lambda d: write_npz(d / "tiny.npz").parent, ("tiny.npz",), _npz_variables,
            _write_npz),
}


def cases(layout: str, directory: Path) -> Iterator[tuple[str, Path, bytes]]:
    """(description, file, mutated bytes) for every mutation of every file of ``layout``."""
    write, files, read, rewrite = LAYOUTS[layout]
    write(directory)
    rng = np.random.default_rng([SEED, list(LAYOUTS).index(layout)])
    turn = 0
    for name in files:
        path = directory / name
        original = path.read_bytes()
        cuts = sorted({int(len(original) * s) for s in CUT_SHARES} | set(CUT_OFFSETS))
        for cut in cuts:
            yield f"{name} cut at byte {cut}", path, original[:cut]
        for position in rng.integers(0, len(original), FLIPS):
            flipped = bytearray(original)
            flipped[position] ^= 0xFF
            yield f"{name} byte {position} flipped", path, bytes(flipped)
        variables = read(path)
        scratch = directory / f"scratch{path.suffix}"
        for key in variables:
            for what in [KINDS[(turn + j) % len(KINDS)] for j in range(PER_KEY)]:
                content = _mutated(variables, key, what)
                if content is not None:
                    rewrite(scratch, content)
                    yield f"{name} '{key}' {what}", path, scratch.read_bytes()
            turn += PER_KEY
        path.write_bytes(original)


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())
            if not p.name.startswith("scratch")}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_mutated_files_load_or_raise_a_gzsl_error(tmp_path: Path, layout: str):
    runner = CliRunner()
    escapes, count, outcomes = [], 0, {"loaded": 0, "refused": 0}
    for count, (description, path, content) in enumerate(cases(layout, tmp_path), start=1):
        original = path.read_bytes()
        path.write_bytes(content)
        before = snapshot(tmp_path)
        try:
            load_dataset("tiny", tmp_path)
            outcomes["loaded"] += 1
        except GZSLError as error:
            outcomes["refused"] += 1
            if "\n" in str(error):
                escapes.append(f"{description}: multi-line message {str(error)!r}")
        except Exception as error:  # noqa: BLE001 - what the fuzzer looks for
            escapes.append(f"{description}: {type(error).__name__}: {error}")
        if count % CHECK_EVERY == 0:
            result = runner.invoke(app, ["check", str(tmp_path), "--dataset", "tiny"])
            if result.exit_code not in (0, 1) and not isinstance(result.exception, GZSLError):
                escapes.append(f"{description}: gzsl data check: {result.exception!r}")
        if snapshot(tmp_path) != before:
            escapes.append(f"{description}: an input file changed while loading")
        path.write_bytes(original)
    assert count > 50 and outcomes["refused"] > 0
    assert not escapes, f"{len(escapes)} of {count} cases escaped:\n" + "\n".join(escapes)
