"""The claims audit computed in a second process while the build trains the experiments
(audit_site.start_early), collected by the audit stage: same bytes as computing it in the build,
and never an answer computed from other inputs."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import REPO
from generator import audit, audit_site
from generator.project import Project


@pytest.fixture(autouse=True)
def two_seeds(monkeypatch):
    monkeypatch.setattr(audit_site, "BUILD_SEEDS", 2)
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")       # the figures are not the point here
    monkeypatch.setattr(audit_site, "draw_figures", lambda folder, names: {})
    yield
    audit_site.stop_early()


def make_project(root) -> Project:
    (root / "content" / "posts").mkdir(parents=True)
    shutil.copy(REPO / "content" / "site.yml", root / "content" / "site.yml")
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    return Project(root)


def audit_files(project: Project) -> dict[str, bytes]:
    folder = audit_site.audit_dir(project)
    return {n: (folder / n).read_bytes() for n in ("audit.json", "audit.npz", "record.json")}


def test_the_second_process_gives_the_bytes_of_computing_in_the_build(tmp_path, monkeypatch):
    monkeypatch.setenv(audit_site.ENV_PROCESS, "1")
    early = make_project(tmp_path / "early")
    assert audit_site.start_early(early)
    proc = audit_site._early["proc"]
    # Computing here would fail: the audit must be the child's.
    with monkeypatch.context() as m:
        m.setattr(audit, "run_audit", lambda *a, **k: pytest.fail("computed in the build"))
        said: list[str] = []
        audit_site.audit_stage(early, explain=said.append)
    assert said[0].startswith("audit: ran (no record")
    assert audit_site._early is None and proc.returncode == 0     # collected, and ended
    # Fresh now: nothing to start.
    assert not audit_site.start_early(early) and audit_site._early is None

    monkeypatch.setenv(audit_site.ENV_PROCESS, "0")
    here = make_project(tmp_path / "here")
    assert not audit_site.start_early(here)
    audit_site.audit_stage(here)
    assert audit_files(early) == audit_files(here)
    assert json.loads(audit_files(here)["audit.json"])["seeds"]["count"] == 2


def test_an_answer_for_other_inputs_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv(audit_site.ENV_PROCESS, "1")
    project = make_project(tmp_path)
    assert audit_site.start_early(project)
    proc = audit_site._early["proc"]
    monkeypatch.setattr(audit_site, "BUILD_SEEDS", 3)      # the build now wants another audit
    audit_site.audit_stage(project)
    assert proc.returncode is not None and audit_site._early is None
    assert json.loads(audit_files(project)["audit.json"])["seeds"]["count"] == 3


def test_a_failed_child_means_computing_in_the_build(tmp_path, monkeypatch):
    monkeypatch.setenv(audit_site.ENV_PROCESS, "1")
    project = make_project(tmp_path)
    monkeypatch.setattr(audit_site, "_settings", lambda: (2, "no-such-sweeps", "cpu", 1))
    assert audit_site.start_early(project)
    said: list[str] = []
    audit_site.audit_stage(project, explain=said.append)
    assert said[0].startswith("audit: ran (")
    assert json.loads(audit_files(project)["audit.json"])["sweep_set"] == "all"


def test_an_uncollected_child_is_ended(tmp_path, monkeypatch):
    monkeypatch.setenv(audit_site.ENV_PROCESS, "1")
    project = make_project(tmp_path)
    assert audit_site.start_early(project)
    assert audit_site.start_early(project)                  # the same child, not a second one
    proc = audit_site._early["proc"]
    audit_site.stop_early()
    assert proc.returncode is not None and audit_site._early is None
    assert not (audit_site.audit_dir(project) / "audit.json").exists()   # the child writes nothing
    # On one core (or when switched off) the build computes the audit itself.
    monkeypatch.setenv(audit_site.ENV_PROCESS, "0")
    assert not audit_site.start_early(project)
