"""wallet.files.write_atomic: the old file or the new one, never a mix, nothing left over."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from wallet.files import write_atomic


def test_replaces_whole_with_the_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "head.json"
    write_atomic(target, b"old")
    write_atomic(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["head.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    target = tmp_path / "head.json"
    write_atomic(target, b"old")

    def broken(fd: int) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fsync", broken)  # the disk fails before the rename
    with pytest.raises(OSError, match="I/O error"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["head.json"]
