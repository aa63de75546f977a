"""A heavy result (the claims audit) computed in a second process while the build trains the
experiments (stages.workers.Workers.start_compute, started by stages.run.start_children) and
collected by the run stage: same bytes as computing it in the build, and never an answer
computed from other inputs."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import REPO, write_post
from generator.kinds.claims_audit import ClaimsAudit
from generator.stages import run
from generator.stages.run import StageOptions
from generator.stages.workers import ENV_PROCESS
from helpers import context, declared

AUDIT = "  audit: {kind: audit, seeds: 2}\n"


@pytest.fixture(autouse=True)
def no_figures(monkeypatch):
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")       # the figures are not the point here


def make_project(root, experiments: str = AUDIT):
    write_post(root, experiments=experiments)
    shutil.copy(REPO / "content" / "site.yml", root / "content" / "site.yml")
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    return root


def audit_files(root) -> dict[str, bytes]:
    folder = root / "content" / "_freeze" / "audit"
    files = {n: (folder / n).read_bytes() for n in ("audit.json", "audit.npz")}
    manifest = json.loads((root / "content" / "_freeze" / "manifest.json").read_text())
    files["manifest files"] = json.dumps(manifest["experiments"]["audit"]["files"]).encode()
    return files


def test_the_second_process_gives_the_bytes_of_computing_in_the_build(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_PROCESS, "1")
    early = make_project(tmp_path / "early")
    said: list[str] = []
    opts = StageOptions(explain=said.append)
    with context(early) as ctx:
        exps = declared(ctx)
        workers = run.workers_of(ctx)
        run.start_children(ctx, exps, opts)
        proc = workers.children["audit"]["proc"]
        # Computing here would fail: the audit must be the child's.
        with monkeypatch.context() as m:
            m.setattr(ClaimsAudit, "compute", lambda *a, **k: pytest.fail("computed here"))
            run.result_of(ctx, exps["audit"], opts)
            run.store_of(ctx).save()
        assert said[0].startswith("run audit: ran (no frozen results")
        assert workers.children == {} and proc.returncode == 0      # collected, and ended
        # Fresh now: nothing to start.
        run.start_children(ctx, exps, opts)
        assert workers.children == {}

    monkeypatch.setenv(ENV_PROCESS, "0")
    here = make_project(tmp_path / "here")
    with context(here) as ctx:
        run.start_children(ctx, declared(ctx), opts)
        assert run.workers_of(ctx).children == {}
        run.results_stage(ctx, declared(ctx), StageOptions())
    assert audit_files(early) == audit_files(here)
    assert json.loads(audit_files(here)["audit.json"])["seeds"]["count"] == 2


def test_an_answer_for_other_inputs_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_PROCESS, "1")
    root = make_project(tmp_path)
    with context(root) as ctx:
        run.start_children(ctx, declared(ctx), StageOptions())
        proc = run.workers_of(ctx).children["audit"]["proc"]
        write_post(root, experiments=AUDIT.replace("seeds: 2", "seeds: 3"))   # another audit now
        run.results_stage(ctx, {"audit": declared(ctx)["audit"]}, StageOptions())
        assert proc.returncode is not None
    assert json.loads(audit_files(root)["audit.json"])["seeds"]["count"] == 3


def test_a_failed_child_means_computing_in_the_build(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_PROCESS, "1")
    root = make_project(tmp_path)
    real = ClaimsAudit.settings_dict
    # What the child is sent cannot be parsed there: its answer is an error.
    monkeypatch.setattr(ClaimsAudit, "settings_dict",
                        lambda self, s: {**real(self, s), "sweeps": "no-such-sweeps"})
    said: list[str] = []
    with context(root) as ctx:
        exps = declared(ctx)
        run.start_children(ctx, exps, StageOptions())
        assert "audit" in run.workers_of(ctx).children
        monkeypatch.setattr(ClaimsAudit, "settings_dict", real)
        run.results_stage(ctx, exps, StageOptions(explain=said.append))
    assert said[0].startswith("run audit: ran (")
    assert json.loads(audit_files(root)["audit.json"])["sweep_set"] == "all"


def test_an_uncollected_child_is_ended(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_PROCESS, "1")
    root = make_project(tmp_path)
    with context(root) as ctx:
        d = declared(ctx)["audit"]
        workers = run.workers_of(ctx)
        assert workers.start_compute("audit", d.kind, d.settings, "key")
        assert workers.start_compute("audit", d.kind, d.settings, "key")   # the same child
        proc = workers.children["audit"]["proc"]
        workers.stop("audit")
        assert proc.returncode is not None and workers.children == {}
        assert not (root / "content" / "_freeze" / "audit" / "audit.json").exists()
        # On one core (or when switched off) the build computes the audit itself.
        monkeypatch.setenv(ENV_PROCESS, "0")
        assert not workers.start_compute("audit", d.kind, d.settings, "key")
        # A child nobody collects is ended with the context.
        monkeypatch.setenv(ENV_PROCESS, "1")
        assert workers.start_compute("audit", d.kind, d.settings, "key")
        proc = workers.children["audit"]["proc"]
    assert proc.returncode is not None
