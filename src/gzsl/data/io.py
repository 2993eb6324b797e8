"""Reading MATLAB and NumPy files, checksums, and writing our ``.npz`` layout.

MATLAB files come in two kinds: v5/v7 (read by :func:`scipy.io.loadmat`) and v7.3, which
is HDF5 (read by h5py). In a v7.3 file every array is stored transposed (HDF5 is row-major,
MATLAB column-major), strings are ``uint16`` character arrays and cell arrays hold object
references. :func:`read_mat` hides both differences: it returns every variable in MATLAB's
own orientation, cell arrays as NumPy object arrays, and ``char`` arrays as ``str``.

Files are only ever opened read-only.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io

from gzsl.data.dataset import GZSLData
from gzsl.data.errors import DataError, GZSLError
from gzsl.utils import atomic_write

#: Keys of the ``.npz`` layout, in the order they are written.
NPZ_REQUIRED = ("features", "labels", "semantics", "trainval_loc", "test_seen_loc",
                "test_unseen_loc")
NPZ_OPTIONAL = ("class_names", "train_loc", "val_loc", "name", "synthetic", "source")

_HDF5_INTERNAL = ("#refs#", "#subsystem#")


#: How deep cell arrays may nest in a v7.3 file; deeper is taken for a reference loop.
_MAX_CELL_DEPTH = 16

_READ_FIX = ("check the file is complete (re-download or re-copy it), or re-save it in "
             "MATLAB with save(..., '-v7') or '-v7.3'")


def summarize(error: BaseException, limit: int = 90) -> str:
    """A library's error in a few words: its type and the first line of its message."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = text if len(text) <= limit else text[:limit - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def check_readable(path: str | Path) -> None:
    """Raise a :class:`DataError` unless ``path`` can be opened for reading and is not empty.

    Run before handing a file to scipy, h5py or NumPy, whose own errors on an empty or
    unreadable file are unclear (NumPy's ``EOFError`` even reads as an interruption).
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            empty = handle.read(1) == b""
    except PermissionError as error:
        raise DataError(f"cannot open {path.name}: permission denied", file=str(path),
                        fix="make the file readable (chmod u+r), or run as a user who may "
                        "read it") from error
    except OSError as error:
        raise DataError(f"cannot open {path.name}: {error.strerror or summarize(error)}",
                        file=str(path), fix="check the path and the file") from error
    if empty:
        raise DataError(f"{path.name} is empty (0 bytes)", file=str(path),
                        fix="the file was not written completely: re-download, re-copy or "
                        "re-save it")


def read_npz_fields(path: str | Path, what: str, fix: str) -> dict[str, Any]:
    """Every field of the ``.npz`` file ``path`` (a ``what``, e.g. "features file"), read
    without pickles; any failure to parse it is one :class:`GZSLError` ending in ``fix``."""
    path = Path(path)
    check_readable(path)
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {k: stored[k] for k in stored.files}
    except Exception as error:  # any parser failure on these bytes (BadZipFile, zlib...)
        raise GZSLError(f"cannot read {path} as a .npz {what} ({summarize(error)}). "
                        f"Fix: {fix}") from error


def is_mat_v73(path: str | Path) -> bool:
    """True when ``path`` is a MATLAB v7.3 (HDF5) file rather than a v5/v7 one.

    A truncated v7.3 file is no longer HDF5 to h5py, but MATLAB's 128-byte header (text
    "MATLAB 7.3 MAT-file", version 0x0200) still says what it was meant to be.
    """
    if h5py.is_hdf5(str(path)):
        return True
    with open(path, "rb") as handle:
        header = handle.read(128)
    return header.startswith(b"MATLAB 7.3 MAT-file") or (
        len(header) == 128 and header[124:128] in (b"\x00\x02IM", b"\x02\x00MI"))


def read_mat(path: str | Path, keys: Iterable[str] | None = None) -> dict[str, Any]:
    """The variables of a MATLAB file, in MATLAB orientation, whatever its version.

    Args:
        path: a ``.mat`` file (v5, v7 or v7.3).
        keys: the variables to read; ``None`` reads all. Keys the file lacks are simply
            absent from the result, so the caller can report every missing key at once.

    Raises:
        DataError: the file is empty, unreadable, or not a MATLAB file either library can
            read (truncated, corrupt, broken references): one line naming the file.
    """
    path = Path(path)
    wanted = None if keys is None else list(keys)
    check_readable(path)
    v73 = is_mat_v73(path)
    if not v73:
        _check_v5_element_types(path)
    try:
        if v73:
            return _read_mat_v73(path, wanted)
        if wanted is None:
            content = scipy.io.loadmat(str(path))
        else:
            content = scipy.io.loadmat(str(path), variable_names=wanted)
    except DataError:
        raise
    except Exception as error:  # any parser failure on these bytes
        # scipy and h5py raise many types on corrupt input (OSError, ValueError, KeyError,
        # MatReadError, zlib.error, RecursionError...); all mean "this file is broken".
        kind = "MATLAB v7.3 (HDF5)" if v73 else "MATLAB"
        raise DataError(f"cannot read {path.name} as a {kind} file ({summarize(error)})",
                        file=str(path), fix=_READ_FIX) from error
    return {k: v for k, v in content.items() if not k.startswith("__")}


#: Data type codes a MATLAB v5 element may carry (miINT8..miUINT64, miMATRIX, miUTF*).
_V5_TYPES = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 14, 16, 17, 18})
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_INFLATE_CHUNK = 1 << 22


def _check_v5_element_types(path: Path) -> None:
    """Refuse a v5 file holding an element of an unknown data type, before scipy reads it.

    scipy's v5 reader (1.17) indexes a table with the type code of each element without a
    range check, so one corrupt byte there crashes the process (scipy PR #25349). This
    walks every element's tag, inflating compressed variables on the fly; array data is
    skipped, not read. Anything else that looks wrong is left for scipy to report.
    """
    with open(path, "rb") as handle:
        header = handle.read(128)
        if len(header) < 128 or header[126:128] not in (b"IM", b"MI"):
            return
        order = "<" if header[126:128] == b"IM" else ">"
        try:
            while True:
                tag = handle.read(8)
                if len(tag) < 8:
                    return
                mdtype, nbytes = struct.unpack(order + "II", tag)
                start = handle.tell()
                if mdtype == _MI_COMPRESSED:
                    _scan_v5(_Inflated(handle, nbytes), order, None, path)
                elif mdtype == _MI_MATRIX:
                    _scan_v5(handle, order, nbytes, path, depth=1)
                else:
                    return
                handle.seek(start + nbytes)
        except (EOFError, zlib.error, struct.error):
            return


def _scan_v5(stream: Any, order: str, size: int | None, path: Path, depth: int = 0) -> None:
    """Check the elements in the next ``size`` bytes (all, if None) of ``stream``.

    At ``depth`` >= 1 they are the parts of one array (miMATRIX): flags, dimensions, name,
    then data. scipy reads as many data parts as the flags announce, past the array's end
    if need be, so a numeric or char array must hold that many, none of them an array.
    """
    consumed, types, flags = 0, [], None
    while size is None or consumed < size:
        tag = stream.read(8)
        if len(tag) < 8:
            if size is None and not tag:
                return
            raise EOFError
        first, nbytes = struct.unpack(order + "II", tag)
        small = first >> 16
        mdtype = first & 0xFFFF if small else first
        if mdtype not in _V5_TYPES:
            raise _corrupt(path, f"an element has the unknown data type code {mdtype}")
        types.append(mdtype)
        if small:
            flags = tag[4:8] if len(types) == 1 else flags
            consumed += 8
            continue
        padded = nbytes + (-nbytes % 8)
        if mdtype == _MI_MATRIX and depth < _MAX_CELL_DEPTH:
            _scan_v5(stream, order, nbytes, path, depth + 1)
            _skip(stream, padded - nbytes)
        elif depth and len(types) == 1 and nbytes >= 4:
            flags = stream.read(padded)[:4]
        else:
            _skip(stream, padded)
        consumed += 8 + padded
    if depth and flags is not None and len(flags) == 4:
        _check_array_parts(types, struct.unpack(order + "I", flags)[0], path)


def _check_array_parts(types: list[int], flags: int, path: Path) -> None:
    """The data parts one array's flags announce must be there, and not be arrays."""
    matlab_class, is_complex = flags & 0xFF, bool(flags >> 11 & 1)
    if matlab_class == 4:
        wanted = 1
    elif 6 <= matlab_class <= 15:
        wanted = 1 + is_complex
    elif matlab_class == 5:
        wanted = 3 + is_complex
    else:
        return
    data = types[3:3 + wanted]
    if len(data) < wanted or _MI_MATRIX in data:
        raise _corrupt(path, "an array lacks the data its header announces")


def _corrupt(path: Path, what: str) -> DataError:
    return DataError(f"cannot read {path.name} as a MATLAB file ({what}: the file is "
                     "corrupt)", file=str(path), fix=_READ_FIX)


def _skip(stream: Any, count: int) -> None:
    if isinstance(stream, _Inflated):
        stream.skip(count)
    else:
        stream.seek(count, 1)


class _Inflated:
    """The inflated bytes of one compressed v5 element, read in bounded chunks."""

    def __init__(self, handle: Any, compressed_size: int) -> None:
        self._handle, self._left = handle, compressed_size
        self._inflater = zlib.decompressobj()
        self._buffer = b""

    def read(self, count: int) -> bytes:
        while len(self._buffer) < count and self._fill():
            pass
        out, self._buffer = self._buffer[:count], self._buffer[count:]
        return out

    def skip(self, count: int) -> None:
        while count > 0:
            if not self._buffer and not self._fill():
                raise EOFError
            taken = min(count, len(self._buffer))
            self._buffer = self._buffer[taken:]
            count -= taken

    def _fill(self) -> bool:
        if self._inflater.unconsumed_tail:
            self._buffer += self._inflater.decompress(self._inflater.unconsumed_tail,
                                                      _INFLATE_CHUNK)
            return True
        if self._left <= 0 or self._inflater.eof:
            return False
        data = self._handle.read(min(self._left, _INFLATE_CHUNK))
        if not data:
            return False
        self._left -= len(data)
        self._buffer += self._inflater.decompress(data, _INFLATE_CHUNK)
        return True


def _read_mat_v73(path: Path, wanted: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with h5py.File(path, "r") as handle:
        names = [k for k in handle if k not in _HDF5_INTERNAL]
        for key in names if wanted is None else [k for k in wanted if k in handle]:
            node = handle[key]
            if isinstance(node, h5py.Dataset):
                try:
                    out[key] = _hdf5_value(handle, node)
                except Exception as error:  # as in read_mat
                    raise DataError(
                        f"cannot read '{key}' of {path.name} as a MATLAB v7.3 variable "
                        f"({summarize(error)})", file=str(path), key=key,
                        fix=_READ_FIX) from error
    return out


def _hdf5_value(handle: h5py.File, node: h5py.Dataset, depth: int = 0) -> Any:
    """One v7.3 variable as MATLAB sees it: arrays transposed back, refs and chars resolved."""
    if not isinstance(node, h5py.Dataset):
        raise ValueError("an object reference points at an HDF5 group, not an array")
    if depth > _MAX_CELL_DEPTH:
        raise ValueError(f"cell arrays nest deeper than {_MAX_CELL_DEPTH} levels "
                         "(a reference loop?)")
    matlab_class = node.attrs.get("MATLAB_class", b"")
    if isinstance(matlab_class, bytes):
        matlab_class = matlab_class.decode()
    if node.attrs.get("MATLAB_empty", 0):
        return np.zeros((0, 0))
    raw = node[()]
    if matlab_class == "cell" or node.dtype == h5py.ref_dtype:
        raw = np.asarray(raw)
        resolved = np.empty(raw.shape, dtype=object)
        for position, reference in np.ndenumerate(raw):
            if not reference:
                raise ValueError("a cell holds an empty (null) object reference")
            resolved[position] = _hdf5_value(handle, handle[reference], depth + 1)
        return resolved.T
    array = np.asarray(raw).T
    if matlab_class == "char":
        rows = np.atleast_2d(array)
        text = ["".join(chr(c) for c in row).rstrip("\x00") for row in rows]
        return text[0] if len(text) == 1 else np.array(text, dtype=object)
    if matlab_class == "logical":
        return array.astype(bool)
    return array


def mat_strings(value: Any) -> list[str]:
    """A MATLAB cell array (or char matrix) of strings as a Python list, in column order.

    ``scipy.io.loadmat`` returns a cell array as an object array whose elements are
    1-element string arrays; :func:`read_mat` on a v7.3 file returns ``str`` elements.
    """
    if isinstance(value, str):
        return [value]
    array = np.asarray(value)
    if array.dtype.kind == "U":
        return [str(s).strip() for s in array.ravel(order="F")]
    out = []
    for element in array.ravel(order="F"):
        if isinstance(element, str):
            out.append(element.strip())
            continue
        inner = np.asarray(element)
        if inner.size == 0:
            out.append("")
        elif inner.dtype.kind == "U":
            out.append("".join(str(s) for s in inner.ravel()).strip())
        elif inner.dtype == object:
            out.append(" ".join(mat_strings(inner)))
        else:
            raise ValueError(f"element of type {inner.dtype} is not a string")
    return out


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes, computed once per (path, size, mtime) in a process."""
    stat = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: str | Path, role: str) -> dict[str, Any]:
    """Provenance of one input file: its role, absolute path, size and SHA-256."""
    path = Path(path)
    return {"role": role, "path": str(path.absolute()), "bytes": path.stat().st_size,
            "sha256": sha256_file(path)}


def save_npz(data: GZSLData, path: str | Path) -> Path:
    """Write ``data`` in our ``.npz`` layout (docs/data-formats.md), atomically.

    The arrays go to a temporary file in the destination folder, which then replaces
    ``path`` in one step, so an interrupted write never leaves a half-written file.
    The original ``source`` is kept as JSON in the ``source`` field.
    """
    path = Path(path)
    fields: dict[str, np.ndarray] = {
        "features": np.ascontiguousarray(data.features, dtype=np.float32),
        "labels": np.asarray(data.labels, dtype=np.int64),
        "semantics": np.ascontiguousarray(data.semantics, dtype=np.float32),
        "class_names": np.array(list(data.class_names), dtype=str),
        "trainval_loc": np.asarray(data.splits["trainval"], dtype=np.int64),
        "test_seen_loc": np.asarray(data.splits["test_seen"], dtype=np.int64),
        "test_unseen_loc": np.asarray(data.splits["test_unseen"], dtype=np.int64),
        "name": np.array(data.name),
        "synthetic": np.array(bool(data.synthetic)),
        "source": np.array(json.dumps(data.source, default=str)),
    }
    for split in ("train", "val"):
        if split in data.splits:
            fields[f"{split}_loc"] = np.asarray(data.splits[split], dtype=np.int64)
    return atomic_write(path, lambda handle: np.savez(handle, **fields))
