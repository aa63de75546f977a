"""core.filehash.HashMemo remembers hashes by what stat says of a file: an unchanged file is not read
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
from generator.cli import main
from generator.core import filehash
from generator.core.filehash import MEMO_FORMAT, HashMemo


@pytest.fixture
def memo():
    """A memo in memory only, as a build context holds it."""
    return HashMemo()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_old(memo: HashMemo) -> None:
    """Let files count as settled: hashes of files this old are remembered. (ctime cannot be
    set back, so the racy window is shrunk instead, and the clock is made to tick past it.)"""
    memo.racy_ns = 0
    time.sleep(0.03)        # coarse file clocks tick every few ms


def edit_same_size_same_mtime(path: Path, data: bytes) -> None:
    st = path.stat()
    assert len(data) == st.st_size
    time.sleep(0.03)
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


def test_hash_is_right_and_an_unchanged_settled_file_is_not_read_again(tmp_path, monkeypatch,
                                                                     memo):
    f = tmp_path / "a.txt"
    f.write_bytes(b"hello")
    make_old(memo)
    want = sha(b"hello")
    assert memo.sha256(f) == want
    reads = []
    real = hashlib.sha256
    monkeypatch.setattr(filehash.hashlib, "sha256", lambda *a: reads.append(1) or real(*a))
    assert memo.sha256(f) == want
    assert memo.sha256(str(f)) == want                 # str or Path: one entry
    assert reads == []


def test_an_edit_that_keeps_size_and_mtime_is_seen(tmp_path, memo):
    f = tmp_path / "a.txt"
    f.write_bytes(b"hello")
    make_old(memo)
    assert memo.sha256(f) == sha(b"hello")
    edit_same_size_same_mtime(f, b"HELLO")
    assert memo.sha256(f) == sha(b"HELLO")


def test_a_file_replaced_by_rename_is_seen(tmp_path, memo):
    f = tmp_path / "a.txt"
    f.write_bytes(b"one")
    make_old(memo)
    assert memo.sha256(f) == sha(b"one")
    st = f.stat()
    other = tmp_path / "b.txt"
    other.write_bytes(b"two")
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, f)
    assert memo.sha256(f) == sha(b"two")


def test_a_fresh_file_is_never_remembered(tmp_path, memo):
    # The default racy window: a file written just now may change again within the same clock
    # tick, leaving every stat field as it was; its hash is therefore not kept.
    f = tmp_path / "a.txt"
    f.write_bytes(b"first")
    assert memo.sha256(f) == sha(b"first")
    assert str(f) not in memo.entries
    st = f.stat()
    f.write_bytes(b"FIRST")                     # perhaps within the same tick: same times
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert memo.sha256(f) == sha(b"FIRST")


def test_the_memo_survives_the_process_through_its_file(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"kept")
    memo_file = tmp_path / "cache" / "hashes.json"
    memo = HashMemo(memo_file)
    make_old(memo)
    memo.sha256(f)
    memo.save()
    doc = json.loads(memo_file.read_text())
    assert doc["format"] == MEMO_FORMAT
    assert doc["entries"][str(f)][1] == sha(b"kept")
    # A "new process": empty memory, the file only.
    again = HashMemo(memo_file)
    assert again.entries[str(f)][1] == sha(b"kept")
    # A forged entry is used only while the stat still matches, so it cannot hide an edit.
    key, _ = again.entries[str(f)]
    again.entries[str(f)] = (key, "0" * 64)
    edit_same_size_same_mtime(f, b"KEPT")
    assert again.sha256(f) == sha(b"KEPT")


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
    memo = HashMemo(memo_file)
    assert memo.entries == {}
    f = tmp_path / "a.txt"
    f.write_bytes(b"x")
    assert memo.sha256(f) == sha(b"x")


def test_an_unwritable_memo_costs_speed_not_the_build(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"x")
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    memo = HashMemo(blocker / "hashes.json")
    make_old(memo)
    memo.sha256(f)
    memo.save()                                 # no exception
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
    monkeypatch.setattr(filehash, "RACY_NS", 0)
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
