"""filehash.sha256_file remembers hashes by what stat says of a file: an unchanged file is not read
again (within a process and, through .cache/lora-site/hashes.json, across builds), and no edit
is ever missed: not one that keeps the size and restores the mtime, not one made within the
same clock tick as the hashing, not one hidden by a forged memo."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from site_checks import make_project
from generator import filehash as fsio
from generator.cli import main


@pytest.fixture(autouse=True)
def fresh_memo(monkeypatch):
    """Every test starts with an empty memo and leaves the process's memo as it was."""
    monkeypatch.setattr(fsio, "_memo", {})
    monkeypatch.setattr(fsio, "_memo_path", None)
    monkeypatch.setattr(fsio, "_memo_changed", False)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_old(path: Path, monkeypatch) -> None:
    """Let `path` count as settled: hashes of files this old are remembered. (ctime cannot be
    set back, so the racy window is shrunk instead, and the clock is made to tick past it.)"""
    monkeypatch.setattr(fsio, "RACY_NS", 0)
    time.sleep(0.03)        # coarse file clocks tick every few ms


def edit_same_size_same_mtime(path: Path, data: bytes) -> None:
    st = path.stat()
    assert len(data) == st.st_size
    time.sleep(0.03)
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


def test_hash_is_right_and_an_unchanged_settled_file_is_not_read_again(tmp_path, monkeypatch):
    f = tmp_path / "a.txt"
    f.write_bytes(b"hello")
    make_old(f, monkeypatch)
    want = sha(b"hello")
    assert fsio.sha256_file(f) == want
    reads = []
    real = hashlib.sha256
    monkeypatch.setattr(fsio.hashlib, "sha256", lambda *a: reads.append(1) or real(*a))
    assert fsio.sha256_file(f) == want
    assert fsio.sha256_file(str(f)) == want                 # str or Path: one entry
    assert reads == []


def test_an_edit_that_keeps_size_and_mtime_is_seen(tmp_path, monkeypatch):
    f = tmp_path / "a.txt"
    f.write_bytes(b"hello")
    make_old(f, monkeypatch)
    assert fsio.sha256_file(f) == sha(b"hello")
    edit_same_size_same_mtime(f, b"HELLO")
    assert fsio.sha256_file(f) == sha(b"HELLO")


def test_a_file_replaced_by_rename_is_seen(tmp_path, monkeypatch):
    f = tmp_path / "a.txt"
    f.write_bytes(b"one")
    make_old(f, monkeypatch)
    assert fsio.sha256_file(f) == sha(b"one")
    st = f.stat()
    other = tmp_path / "b.txt"
    other.write_bytes(b"two")
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, f)
    assert fsio.sha256_file(f) == sha(b"two")


def test_a_fresh_file_is_never_remembered(tmp_path):
    # The default racy window: a file written just now may change again within the same clock
    # tick, leaving every stat field as it was; its hash is therefore not kept.
    f = tmp_path / "a.txt"
    f.write_bytes(b"first")
    assert fsio.sha256_file(f) == sha(b"first")
    assert str(f) not in fsio._memo
    st = f.stat()
    f.write_bytes(b"FIRST")                     # perhaps within the same tick: same times
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fsio.sha256_file(f) == sha(b"FIRST")


def test_the_memo_survives_the_process_through_its_file(tmp_path, monkeypatch):
    f = tmp_path / "a.txt"
    f.write_bytes(b"kept")
    make_old(f, monkeypatch)
    memo_file = tmp_path / "cache" / "hashes.json"
    fsio.use_hash_memo(memo_file)
    fsio.sha256_file(f)
    fsio.save_hash_memo()
    doc = json.loads(memo_file.read_text())
    assert doc["format"] == fsio.MEMO_FORMAT
    assert doc["entries"][str(f)][1] == sha(b"kept")
    # A "new process": empty memory, the file only.
    monkeypatch.setattr(fsio, "_memo", {})
    fsio.use_hash_memo(memo_file)
    assert fsio._memo[str(f)][1] == sha(b"kept")
    # A forged entry is used only while the stat still matches, so it cannot hide an edit.
    key, _ = fsio._memo[str(f)]
    fsio._memo[str(f)] = (key, "0" * 64)
    edit_same_size_same_mtime(f, b"KEPT")
    assert fsio.sha256_file(f) == sha(b"KEPT")


@pytest.mark.parametrize("text", [
    "", "not json", "[]", '{"format": 99, "entries": {}}', '{"format": 1, "entries": []}',
    '{"format": 1, "entries": {"/x": [[1, 2, 3, 4, 5], "short"]}}',
    '{"format": 1, "entries": {"/x": [[1, 2, "3", 4, 5], "' + "a" * 64 + '"]}}',
    '{"format": 1, "entries": {"/x": [[1, 2], "' + "a" * 64 + '"]}}',
    '{"format": 1, "entries": {"/x": 7}}',
])
def test_a_damaged_memo_file_is_an_empty_memo(tmp_path, text):
    memo_file = tmp_path / "hashes.json"
    memo_file.write_text(text)
    fsio.use_hash_memo(memo_file)
    assert fsio._memo == {}
    f = tmp_path / "a.txt"
    f.write_bytes(b"x")
    assert fsio.sha256_file(f) == sha(b"x")


def test_an_unwritable_memo_costs_speed_not_the_build(tmp_path, monkeypatch):
    f = tmp_path / "a.txt"
    f.write_bytes(b"x")
    make_old(f, monkeypatch)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    fsio.use_hash_memo(blocker / "hashes.json")
    fsio.sha256_file(f)
    fsio.save_hash_memo()                       # no exception
    assert blocker.read_text().startswith("a file")


def test_a_build_sees_a_post_edit_that_keeps_size_and_mtime(tmp_path, monkeypatch):
    """End to end, with every hash remembered (the racy window shrunk to nothing): an edit of
    the same length with its mtime put back is still rebuilt."""
    post_text = ("---\ntitle: A post\ndate: 2026-01-11 10:00:00 +0530\n---\n"
                 "The quick brown fox.\n")
    make_project(tmp_path, post_text=post_text)
    post = tmp_path / "content" / "posts" / "post.md"
    runner = CliRunner()
    args = ["build", "--quiet", "--root", str(tmp_path)]
    assert runner.invoke(main, args).exit_code == 0
    monkeypatch.setattr(fsio, "RACY_NS", 0)
    time.sleep(0.03)
    res = runner.invoke(main, ["build", "--explain", "--root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / ".cache" / "lora-site" / "hashes.json").read_text())["entries"]
    text = post.read_text()
    edit_same_size_same_mtime(post, text.replace("quick", "QUICK").encode())
    res = runner.invoke(main, ["build", "--explain", "--root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "build: changed: content/posts/" in res.output + (res.stderr or "")
    html = next((tmp_path / "site" / "html").glob("*/index.html")).read_text()
    assert "The QUICK brown fox." in html
