"""Atomic writes: whole files only, no strays, and the permissions a plain open gives."""

from __future__ import annotations

import os
import stat

import pytest

from gzsl.utils import atomic_write


def test_atomic_write_replaces_whole_files_and_leaves_no_stray(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    atomic_write(target, lambda handle: handle.write(b"first"))
    atomic_write(target, lambda handle: handle.write(b"second"))
    assert target.read_bytes() == b"second"

    def fails(handle):
        handle.write(b"half")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        atomic_write(target, fails)
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
def test_atomic_write_gives_the_mode_open_would(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    atomic = atomic_write(tmp_path / "atomic", lambda handle: handle.write(b"x"))
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
