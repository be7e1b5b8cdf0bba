"""Atomic outputs: complete files appear under their name, failed writes leave nothing."""

import os
import stat

import pytest

from seqalignatac.io.atomic import atomic_path, write_json, write_text


def test_complete_write_is_renamed_and_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "hello")
        with atomic_path(tmp_path / "d", is_dir=True) as d:
            (d / "x").write_text("1")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert (tmp_path / "d" / "x").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "d"]


def test_failed_write_leaves_neither_target_nor_temp(tmp_path):
    write_json(tmp_path / "keep.json", {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "keep.json") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "newdir", is_dir=True) as d:
            (d / "x").write_text("partial")
            raise RuntimeError("killed")
    assert (tmp_path / "keep.json").read_text().strip().startswith("{")
    assert '"v": 1' in (tmp_path / "keep.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.json"]
