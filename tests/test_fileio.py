import os
import stat

import pytest

from panns_keras.fileio import atomic_dir, atomic_path, atomic_write


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    atomic_write(path, "one\n")
    atomic_write(path, b"two\n")
    assert path.read_text() == "two\n"
    assert sorted(os.listdir(path.parent)) == ["a.txt"]
    # the usual permissions (umask), not mkstemp's 0600
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_atomic_path_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.png"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(path, suffix=".png") as tmp:
        assert tmp.name.endswith(".png") and tmp.parent == tmp_path
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a.png"]


def test_atomic_dir_replaces_a_directory(tmp_path):
    out = tmp_path / "model"
    with atomic_dir(out) as d:
        (d / "x").write_text("1")
    with atomic_dir(out) as d:
        (d / "y").write_text("2")
    assert sorted(os.listdir(out)) == ["y"]
    with pytest.raises(ValueError), atomic_dir(out) as d:
        (d / "z").write_text("3")
        raise ValueError
    assert sorted(os.listdir(out)) == ["y"]
    assert sorted(os.listdir(tmp_path)) == ["model"]
