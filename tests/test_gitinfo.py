"""core/gitinfo.py and the source links it decides: HEAD's commit, which files differ from it,
and what a listing's caption says in each case (linked, uncommitted, no git, no repository)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import git

from generator.core import gitinfo
from generator.render.listings import ListingHelper, find_source, source_caption

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

REPO_URL = "https://github.com/owner/repo"
MODULE = '''"""A module."""


def double(x):
    """Twice x."""
    return 2 * x
'''


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A work tree with one commit: pkg/mod.py (the package listings read) and notes.txt."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text(MODULE, encoding="utf-8")
    (root / "notes.txt").write_text("notes\n", encoding="utf-8")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "one")
    return root


def state(root: Path):
    return gitinfo.git_state(root, [root / "pkg"])


def test_head_is_the_commit_and_the_work_tree(repo):
    found = gitinfo.head(repo / "pkg")
    assert found == gitinfo.Head(toplevel=repo.resolve(), commit=git(repo, "rev-parse", "HEAD"))
    assert len(found.commit) == 40


def test_a_clean_file_is_committed_and_links_to_its_lines(repo):
    s = state(repo)
    commit = git(repo, "rev-parse", "HEAD")
    assert s.commit == commit and s.short == commit[:12] and not s.dirty
    assert s.committed == frozenset({"pkg/mod.py"}) and s.changed == frozenset()
    assert s.is_committed(repo / "pkg" / "mod.py")
    src = find_source("mod", "double", package_dir=repo / "pkg")
    assert (src.rel, src.first, src.last, src.lines) == ("pkg/mod.py", 4, 6, 3)
    assert source_caption(src, REPO_URL, s) == (
        f'<a href="{REPO_URL}/blob/{commit}/pkg/mod.py#L4-L6"><code>pkg/mod.py</code>, '
        f"lines 4\u20136</a> at commit <code>{commit[:12]}</code>")


@pytest.mark.parametrize("change", ["edit", "stage", "other-file", "untracked"])
def test_a_file_that_differs_from_head_is_not_linked(repo, change):
    mod = repo / "pkg" / "mod.py"
    if change == "edit":
        mod.write_text(MODULE.replace("2 * x", "x + x"), encoding="utf-8")
    elif change == "stage":
        mod.write_text(MODULE + "\n# staged, not committed\n", encoding="utf-8")
        git(repo, "add", "pkg/mod.py")
    elif change == "untracked":
        mod = repo / "pkg" / "new.py"
        mod.write_text(MODULE, encoding="utf-8")
    else:                              # a change elsewhere in pkg/ leaves mod.py linkable
        (repo / "pkg" / "other.py").write_text("x = 1\n", encoding="utf-8")
    s = state(repo)
    assert s.dirty
    if change == "other-file":
        assert s.changed == frozenset({"pkg/other.py"}) and s.is_committed(mod)
        return
    assert not s.is_committed(mod)
    src = find_source(mod.stem, "double", package_dir=repo / "pkg")
    caption = source_caption(src, REPO_URL, s)
    assert caption == (f"<code>pkg/{mod.name}</code>, lines 4\u20136 "
                       "(uncommitted changes: no link to the repository)")
    assert "href" not in caption


def test_outside_the_scopes_nothing_is_reported_and_outside_the_tree_nothing_is_linked(
        repo, tmp_path):
    (repo / "notes.txt").write_text("edited\n", encoding="utf-8")
    s = state(repo)                    # notes.txt is outside the scope pkg/
    assert not s.dirty
    outside = tmp_path / "elsewhere.py"
    outside.write_text("x = 1\n", encoding="utf-8")
    assert s.relpath(outside) is None and not s.is_committed(outside)


def test_no_repository_setting_no_git_no_commit_or_no_work_tree_means_no_link(
        repo, tmp_path, monkeypatch):
    src = find_source("mod", "double", package_dir=repo / "pkg")
    plain = "<code>pkg/mod.py</code>, lines 4\u20136"
    assert source_caption(src, "", state(repo)) == plain            # no repository setting
    assert source_caption(src, REPO_URL, None) == plain             # no git state
    # A folder that is no work tree, and a repository without a commit.
    bare = tmp_path / "plain"
    bare.mkdir()
    assert gitinfo.head(bare) is None and gitinfo.git_state(bare, [bare]) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    assert gitinfo.head(empty) is None and gitinfo.git_state(empty, [empty]) is None
    # No git executable at all.
    monkeypatch.setattr(gitinfo.shutil, "which", lambda name: None)
    assert gitinfo.head(repo) is None and gitinfo.git_state(repo, [repo]) is None


def test_git_redirections_in_the_environment_are_ignored(repo, tmp_path, monkeypatch):
    """A build run from a git hook has GIT_DIR set to the outer repository: still this one."""
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    assert gitinfo.head(repo).commit == subprocess.run(
        ["git", "-C", str(repo), "--git-dir", str(repo / ".git"), "rev-parse", "HEAD"],
        capture_output=True, text=True).stdout.strip()


def test_the_listing_helper_links_each_listing_and_a_new_commit_moves_the_link(repo):
    site = SimpleNamespace(repository=REPO_URL)
    first = git(repo, "rev-parse", "HEAD")
    block = ListingHelper(site, state(repo), package_dir=repo / "pkg")("mod", "double")
    assert f"{REPO_URL}/blob/{first}/pkg/mod.py#L4-L6" in block
    (repo / "pkg" / "mod.py").write_text(MODULE + "# a comment below the function\n",
                                         encoding="utf-8")
    assert "uncommitted changes" in ListingHelper(site, state(repo),
                                                  package_dir=repo / "pkg")("mod", "double")
    git(repo, "commit", "-q", "-am", "two")
    second = git(repo, "rev-parse", "HEAD")
    block = ListingHelper(site, state(repo), package_dir=repo / "pkg")("mod", "double")
    assert second != first and f"{REPO_URL}/blob/{second}/pkg/mod.py#L4-L6" in block
