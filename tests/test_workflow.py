"""The GitHub Pages workflow: schema-valid, and shaped to build from the freeze without torch.

Lint: check-jsonschema's vendored GitHub-workflow schema (actionlint cannot be installed here: it
downloads a binary from GitHub) plus assertions on what the workflow must do.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "pages.yml"
CHECK = Path(sys.executable).parent / "check-jsonschema"


def load() -> dict:
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as the boolean True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def schema_check(path: Path) -> subprocess.CompletedProcess:
    assert CHECK.is_file(), f"check-jsonschema is pinned in requirements.lock; missing at {CHECK}"
    return subprocess.run([str(CHECK), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_workflow_matches_the_github_schema():
    res = schema_check(WORKFLOW)
    assert res.returncode == 0, res.stdout + res.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path):
    # The linter must be able to fail: a job without runs-on and a step with a misspelt key.
    broken = WORKFLOW.read_text().replace("runs-on: ubuntu-latest\n    timeout-minutes: 20",
                                          "timeout-minutes: 20", 1)
    assert broken != WORKFLOW.read_text()
    path = tmp_path / "broken.yml"
    path.write_text(broken)
    res = schema_check(path)
    assert res.returncode != 0
    assert "runs-on" in res.stdout + res.stderr


def steps_using(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if str(s.get("uses", "")).split("@")[0] == action]


def test_triggers_permissions_and_concurrency():
    doc = load()
    assert doc["on"]["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in doc["on"]
    assert doc["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    assert doc["concurrency"]["group"] == "pages"


def test_build_job_builds_from_the_freeze_and_uploads_site_html():
    build = load()["jobs"]["build"]
    names = [str(s.get("uses", "")).split("@")[0] for s in build["steps"]]
    assert names.index("actions/checkout") < names.index("actions/configure-pages") \
        < names.index("actions/upload-pages-artifact")
    (upload,) = steps_using(build, "actions/upload-pages-artifact")
    assert upload["with"]["path"] == "site/html"
    runs = [s["run"] for s in build["steps"] if "run" in s]
    build_lines = [line for r in runs for line in r.splitlines() if "lora-site build" in line]
    assert len(build_lines) == 1 and "--frozen" in build_lines[0].split()
    assert "--force" not in build_lines[0]
    # Project pages live under /<repo>/: the build takes its baseurl from configure-pages.
    assert "--baseurl" in build_lines[0] and "steps.pages.outputs.base_path" in build_lines[0]
    (configure,) = steps_using(build, "actions/configure-pages")
    assert configure["id"] == "pages"


def test_deploy_job_deploys_the_artifact():
    jobs = load()["jobs"]
    deploy = jobs["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["environment"]["name"] == "github-pages"
    (step,) = steps_using(deploy, "actions/deploy-pages")
    assert deploy["environment"]["url"] == "${{ steps.%s.outputs.page_url }}" % step["id"]


def test_every_action_is_pinned_to_a_major_version():
    for job in load()["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"actions/[a-z-]+@v\d+", step["uses"]), step["uses"]


def test_install_step_keeps_every_pin_but_torch(tmp_path):
    """Run the install step's filter on the real lock: torch goes, every other pin stays."""
    build = load()["jobs"]["build"]
    (install,) = [s for s in build["steps"] if "requirements.lock" in s.get("run", "")]
    filter_line = next(line for line in install["run"].splitlines() if "requirements.lock" in line)
    subprocess.run(["bash", "-c", filter_line], cwd=REPO, check=True,
                   env={"RUNNER_TEMP": str(tmp_path), "PATH": "/usr/bin:/bin"})
    kept = (tmp_path / "requirements-publish.txt").read_text().splitlines()
    lock = (REPO / "requirements.lock").read_text().splitlines()
    assert not [line for line in kept if line.lower().startswith("torch==")]
    assert [line for line in lock if not line.lower().startswith("torch==")] == kept
    assert any(line.lower().startswith("torch==") for line in lock)
    # The project itself goes in without its dependencies, or pip would pull torch back in.
    project_install = [line for line in install["run"].splitlines() if "-e ." in line]
    assert project_install and all("--no-deps" in line for line in project_install)


def test_run_scripts_are_valid_bash():
    if shutil.which("bash") is None:
        pytest.fail("bash is required")
    for job in load()["jobs"].values():
        for step in job["steps"]:
            if "run" in step:
                script = re.sub(r"\$\{\{[^}]*\}\}", "x", step["run"])
                res = subprocess.run(["bash", "-n"], input=script, text=True,
                                     capture_output=True)
                assert res.returncode == 0, (step.get("name"), res.stderr)
