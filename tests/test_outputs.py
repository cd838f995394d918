"""The file rules of compress/outputs.py, against real directories and a real second process."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from compress.errors import CompressError
from compress.outputs import (
    MARKER,
    DirectoryLock,
    make_owned_dir,
    move_aside,
    run_directory,
    safe_name,
    slug,
)


def _claim(path, **kwargs):
    with run_directory(path, kind="train", **kwargs):
        pass


def test_run_directory_refuses_to_overwrite_and_resumes(tmp_path):
    with run_directory(tmp_path / "run", kind="train") as out:
        (out / "state.pt").write_bytes(b"x")
    assert (out / MARKER).is_file()
    with pytest.raises(CompressError, match="--resume"), run_directory(out, kind="train"):
        pass
    with run_directory(out, kind="train", resume=True) as again:
        assert again == out
    with (
        pytest.raises(CompressError, match="no run to resume"),
        run_directory(tmp_path / "fresh", kind="train", resume=True),
    ):
        pass


def test_a_folder_of_the_users_is_never_written_into(tmp_path):
    user = tmp_path / "u"
    user.mkdir()
    (user / "config.yaml").write_text("mine: 1\n")
    (user / "model.safetensors").write_bytes(b"precious")
    with pytest.raises(CompressError, match="compress did not write"):
        _claim(user)
    assert (user / "model.safetensors").read_bytes() == b"precious"
    assert not (user / MARKER).exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with run_directory(empty, kind="train") as out:  # an empty folder may be used
        assert out == empty


@pytest.mark.parametrize("case", ["file", "under-file", "proc"])
def test_unwritable_outputs_are_one_line_errors(tmp_path, case):
    (tmp_path / "f").write_text("x")
    target = {
        "file": tmp_path / "f",
        "under-file": tmp_path / "f" / "sub",
        "proc": "/proc/compress-test/out",
    }[case]
    with pytest.raises(CompressError) as err:
        make_owned_dir(target, kind="train")
    assert "\n" not in str(err.value) and "--output" in str(err.value)


def test_a_second_process_cannot_use_a_locked_run_directory(tmp_path):
    out = make_owned_dir(tmp_path / "run", kind="train")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from compress.outputs import DirectoryLock; from pathlib import Path;"
            "lock = DirectoryLock(Path(sys.argv[1])); lock.acquire(); print('locked', flush=True);"
            "sys.stdin.read()",  # holds the lock until killed (or its stdin closes)
            str(out),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with (
            pytest.raises(
                CompressError, match=rf"in use by another compress process \(pid {holder.pid}\)"
            ),
            run_directory(out, kind="train"),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    for _ in range(100):  # the kernel drops the lock when the holder dies
        try:
            with DirectoryLock(out):
                break
        except CompressError:
            time.sleep(0.05)
    else:
        pytest.fail("the lock outlived its process")


@pytest.mark.parametrize(
    "name", ["../victim", "/abs/victim", ".", "..", "a/b", "", "x.prev", 7, None]
)
def test_unsafe_names_are_refused(name):
    with pytest.raises(CompressError, match="cannot be used as a folder name"):
        safe_name(name, what="stage")


def test_slug_never_leaves_the_folder():
    assert slug("..") == "model" and slug("a/b") == "a_b" and slug("student") == "student"


def test_move_aside_keeps_the_previous_output_and_refuses_a_foreign_prev(tmp_path):
    stage = make_owned_dir(tmp_path / "e", kind="stage")
    (stage / "model.safetensors").write_bytes(b"v1")
    prev = move_aside(stage)
    assert (prev / "model.safetensors").read_bytes() == b"v1" and not stage.exists()
    stage = make_owned_dir(tmp_path / "e", kind="stage")
    (stage / "model.safetensors").write_bytes(b"v2")
    assert (move_aside(stage) / "model.safetensors").read_bytes() == b"v2"
    other = make_owned_dir(tmp_path / "f", kind="stage")
    foreign = tmp_path / "f.prev"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(CompressError, match="not made by compress"):
        move_aside(other)
    assert (foreign / "keep.txt").read_text() == "mine"
