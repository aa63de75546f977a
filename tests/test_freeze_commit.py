"""A failed build changes no tracked file: new results and figures reach content/_freeze (with
the manifest) only when the whole build succeeds, in one atomic swap with site/ (stages.staging,
publish.build). Each case goes through the CLI and compares every file of content/_freeze and
site/ by hash."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from generator.publish import build as build_mod
from generator.publish import tree as tree_mod
from generator.stages import run as run_mod
from generator.stages import staging as staging_mod
from harness import (
    POST, Case, add_body_line, assert_one_line_error, check_case, extra_post, invoke, leftovers,
    set_experiment, tree_hashes)

SMALL = "d_model: 8, seq_len: 4, key: 2, max_steps: 15"
FREEZE = "content/_freeze"


def freeze_of(root: Path) -> dict[str, str]:
    return tree_hashes(root / FREEZE)


def manifest(root: Path) -> dict:
    return json.loads((root / FREEZE / "manifest.json").read_text())["experiments"]


def render_fails_after_training(root, monkeypatch=None):
    set_experiment(root, SMALL)
    line = add_body_line(root, "{{ no_such_value }}")
    return Case([f"lora-attention-geometry.md:{line}:", "undefined value", "no_such_value"])


def disk_full_writing_the_freeze(root, monkeypatch):
    set_experiment(root, SMALL)
    real = staging_mod.shutil.copyfile

    def full(src, dst, *a, **k):
        if Path(dst).name == "arrays.npz":
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *a, **k)
    monkeypatch.setattr(staging_mod.shutil, "copyfile", full)
    return Case(["content/_freeze/main/arrays.npz: cannot write the new freeze: No space left "
                 "on device", "the disk is full: free some space",
                 "content/_freeze was not changed"])


def site_cannot_be_swapped_after_the_freeze(root, monkeypatch):
    """The freeze is swapped in first; when site/ then cannot be, the freeze is swapped back."""
    set_experiment(root, SMALL)
    real = os.rename

    def failing(src, dst):
        if Path(src).name.startswith(".site.build-"):
            raise OSError(errno.EIO, "Input/output error")
        return real(src, dst)
    monkeypatch.setattr(tree_mod.os, "rename", failing)
    return Case(["cannot write the site: Input/output error", "check free space"])


@pytest.mark.parametrize("case", [render_fails_after_training, disk_full_writing_the_freeze,
                                  site_cannot_be_swapped_after_the_freeze])
def test_a_failed_build_changes_no_tracked_file(project, case, monkeypatch):
    check_case(project, lambda root: case(root, monkeypatch))


def test_the_next_build_reuses_what_the_failed_one_computed(project, monkeypatch):
    before = freeze_of(project)
    check_case(project, render_fails_after_training)
    assert freeze_of(project) == before
    text = (project / POST).read_text(encoding="utf-8")
    (project / POST).write_text(text.replace("\n{{ no_such_value }}\n", ""), encoding="utf-8")
    monkeypatch.setattr(run_mod, "compute_here", lambda *a, **k: pytest.fail("trained again"))
    result = invoke("build", "--root", project, "--quiet", "--explain")
    assert result.exit_code == 0, result.output
    assert "run main: reused the results of a build that failed later (config d_model 64 -> 8" \
        in result.stderr
    # Committed now, with the manifest and the figures drawn from them.
    assert manifest(project)["main"]["inputs"]["config"]["d_model"] == 8
    main = project / FREEZE / "main"
    assert {f: manifest(project)["main"]["files"][f] for f in ("arrays.npz", "results.json")} \
        == {f: tree_hashes(main)[f] for f in ("arrays.npz", "results.json")}
    assert sorted(manifest(project)["main"]["figures"]["files"]) == sorted(
        p.name for p in (main / "figures").iterdir())
    assert leftovers(project) == []


def test_an_interrupt_after_training_leaves_the_freeze(project, monkeypatch):
    before, site = freeze_of(project), tree_hashes(project / "site")
    set_experiment(project, SMALL)

    def ctrl_c(name):
        if name == "render":
            raise KeyboardInterrupt
    monkeypatch.setattr(build_mod, "failpoint", ctrl_c)
    assert_one_line_error(invoke("build", "--root", project, "--quiet"),
                          ["interrupted by SIGINT", "nothing was left half-written"], code=130)
    assert freeze_of(project) == before and tree_hashes(project / "site") == site
    assert leftovers(project) == []


def test_a_commit_killed_between_its_renames_is_undone_by_the_next_build(project):
    """The one moment content/_freeze does not exist: moved aside, the new one not yet in
    place. The next build (under the lock) puts it back, then builds from it."""
    before, site = freeze_of(project), tree_hashes(project / "site")
    aside = project / "content" / "._freeze.old-x1"
    aside.mkdir()
    os.rename(project / FREEZE, aside / "site")
    (project / "content" / "._freeze.build-x2" / "main").mkdir(parents=True)
    result = invoke("build", "--root", project, "--quiet", "--frozen")
    assert result.exit_code == 0, result.output
    assert freeze_of(project) == before and tree_hashes(project / "site") == site
    assert leftovers(project) == []


def test_a_successful_build_commits_results_manifest_and_figures_at_once(project):
    set_experiment(project, SMALL)
    result = invoke("build", "--root", project, "--quiet")
    assert result.exit_code == 0, result.output
    entry = manifest(project)["main"]
    assert entry["inputs"]["config"]["d_model"] == 8
    for name, sha in entry["files"].items():
        assert tree_hashes(project / FREEZE / "main")[name] == sha
    for name, sha in entry["figures"]["files"].items():
        assert tree_hashes(project / FREEZE / "main" / "figures")[name] == sha
    assert leftovers(project) == []
    # The committed files are ordinary public files.
    for path in (project / FREEZE).rglob("*"):
        assert (path.stat().st_mode & 0o777) == (0o755 if path.is_dir() else 0o644), path


def test_run_commits_every_result_or_none(project, monkeypatch):
    """`lora-site run` commits at its end: an experiment that fails leaves the freeze as it
    was, even when an earlier one had finished."""
    before = freeze_of(project)
    set_experiment(project, SMALL)
    extra_post(project, "experiments:\n  zeta: {d_model: 8, seq_len: 4, key: 2, max_steps: 15, "
                        "lr: 1.0e+30, alpha: 1.0e+30, stop_prob: 0.999999}\n")
    result = invoke("run", "--root", project, "--quiet", "--only", "main", "--only", "zeta")
    assert_one_line_error(result, ["extra.md: experiments.zeta:", "non-finite loss"])
    assert freeze_of(project) == before
    result = invoke("run", "--root", project, "--quiet", "--only", "main")
    assert result.exit_code == 0, result.output
    assert manifest(project)["main"]["inputs"]["config"]["d_model"] == 8
    assert leftovers(project) == []
