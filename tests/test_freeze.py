"""Frozen results: --frozen trusts only a fresh, intact freeze; verify re-runs and compares."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import write_post
from generator import freeze, pipeline
from generator.cli import main
from generator.errors import ConfigError, ResultsError
from generator.experiment import Result
from generator.project import Project
from generator.results import load_result, save_result

TINY = "  main: {d_model: 8, seq_len: 4, key: 2, max_steps: 15}\n"


@pytest.fixture(autouse=True)
def draw_in_process(monkeypatch):
    """Training here would start figure workers (drawpool) that most of these tests never use."""
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")


@pytest.fixture
def frozen_project(tmp_path) -> Project:
    """A project whose content/_freeze holds a fresh result of its one tiny experiment."""
    write_post(tmp_path, experiments=TINY)
    project = Project(tmp_path)
    pipeline.results_stage(project)
    return project


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_frozen_uses_a_fresh_freeze_without_training(frozen_project, monkeypatch):
    monkeypatch.setattr(pipeline, "run_one", lambda *a, **k: pytest.fail("trained"))
    lines = []
    results = pipeline.results_stage(frozen_project, frozen=True, explain=lines.append)
    assert results["main"].metrics["steps"] == 15
    assert lines[0].startswith("run main: reused frozen results (inputs unchanged, key ")


def test_frozen_fails_naming_a_stale_experiment(frozen_project, monkeypatch):
    monkeypatch.setattr(pipeline, "run_one", lambda *a, **k: pytest.fail("trained"))
    write_post(frozen_project.root, experiments=TINY.replace("key: 2", "key: 3"))
    with pytest.raises(ResultsError) as err:
        pipeline.results_stage(frozen_project, frozen=True)
    msg = err.value.message
    assert "experiment 'main'" in msg and "stale" in msg and "config key 2 -> 3" in msg
    assert str(frozen_project.freeze / "main") in msg


def test_frozen_fails_on_a_missing_experiment(frozen_project):
    write_post(frozen_project.root, slug="second", experiments="  other: {d_model: 8}\n")
    with pytest.raises(ResultsError, match=r"experiment 'other'.*no frozen results"):
        pipeline.results_stage(frozen_project, frozen=True)


@pytest.mark.parametrize("filename", ["results.json", "arrays.npz"])
def test_frozen_fails_naming_a_damaged_file(frozen_project, filename):
    path = frozen_project.freeze / "main" / filename
    path.write_bytes(path.read_bytes()[:-10])             # truncated
    with pytest.raises(ResultsError) as err:
        pipeline.results_stage(frozen_project, frozen=True)
    assert str(path) in err.value.message
    assert f"{filename} was edited or truncated" in err.value.message


def test_frozen_and_force_are_refused_together(frozen_project):
    with pytest.raises(ConfigError, match="--frozen and --force"):
        pipeline.results_stage(frozen_project, frozen=True, force=True)


def test_results_without_a_manifest_entry_are_not_trusted(frozen_project):
    (frozen_project.freeze / "manifest.json").unlink()
    with pytest.raises(ResultsError, match="not recorded in content/_freeze/manifest.json"):
        pipeline.results_stage(frozen_project, frozen=True)


def test_run_command_records_the_manifest(tmp_path):
    write_post(tmp_path, experiments=TINY)
    project = Project(tmp_path)
    assert cli("run", "--root", str(tmp_path), "-q").exit_code == 0
    cfg = pipeline.declared_experiments(project)["main"]
    state = freeze.check("main", freeze.run_inputs(cfg), freeze.Manifest.read(project.freeze),
                         project.freeze)
    assert state.fresh, state.reasons
    assert pipeline.results_stage(project, frozen=True)["main"].metrics["steps"] == 15


def test_manifest_is_sorted_json_without_paths_or_times(frozen_project):
    text = (frozen_project.freeze / "manifest.json").read_text()
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=2, sort_keys=True) + "\n"
    assert str(frozen_project.root) not in text
    assert set(doc["experiments"]["main"]) == {"key", "inputs", "files"}
    assert doc["experiments"]["main"]["key"] == freeze.digest(doc["experiments"]["main"]["inputs"])


def test_frozen_stage_never_imports_torch(frozen_project):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from generator.pipeline import results_stage\n"
        "from generator.project import Project\n"
        f"r = results_stage(Project(Path({str(frozen_project.root)!r})), frozen=True)\n"
        "assert r['main'].metrics['steps'] == 15\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'numpy' not in sys.modules, 'numpy was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---------------------------------------------------------------------------------------------
# verify

def test_verify_passes_on_a_fresh_freeze(frozen_project):
    res = cli("verify", "--root", str(frozen_project.root), "-q")
    assert res.exit_code == 0, res.output
    assert res.output == "main: matches the frozen results (atol=1e-06, rtol=1e-06)\n"


def _plant(project: Project, *, array_delta: float, steps_delta: int = 0) -> None:
    saved = load_result(project.freeze / "main")
    arrays = saved.arrays()
    arrays["loss"] = arrays["loss"].copy()
    arrays["loss"][3] += array_delta
    metrics = dict(saved.metrics, steps=saved.metrics["steps"] + steps_delta)
    save_result(saved.path, "main", Result(saved.config, arrays, metrics, saved.provenance))


def test_verify_reports_each_planted_difference(frozen_project):
    _plant(frozen_project, array_delta=1e-3, steps_delta=1)
    res = cli("verify", "--root", str(frozen_project.root), "-q")
    assert res.exit_code == 1
    lines = res.output.splitlines()
    assert "main: metrics.steps: 15 (re-run) != 16 (frozen), |diff| 1" in lines
    assert any(line.startswith("main: arrays.loss: 1 of 15 values differ, max |diff| 0.001 "
                               "at [3]") for line in lines), lines
    # The planted file no longer matches the manifest either: verify says so, as a note.
    assert any(line.startswith("main: note: the freeze is stale: arrays.npz was edited")
               for line in lines)
    assert "2 difference(s) between re-run and frozen results in: main" in lines[-1]


def test_verify_tolerance_is_honoured(frozen_project):
    _plant(frozen_project, array_delta=5e-7)         # a few float32 ulps
    assert cli("verify", "--root", str(frozen_project.root), "-q").exit_code == 0
    res = cli("verify", "--root", str(frozen_project.root), "-q", "--atol", "0", "--rtol", "0")
    assert res.exit_code == 1
    assert "main: arrays.loss: 1 of 15 values differ" in res.output


def test_verify_reports_a_config_that_no_longer_matches(frozen_project):
    write_post(frozen_project.root, experiments=TINY.replace("max_steps: 15", "max_steps: 12"))
    res = cli("verify", "--root", str(frozen_project.root), "-q")
    assert res.exit_code == 1
    assert "main: config max_steps 15 -> 12" in res.output.splitlines()


def test_verify_reports_an_unreadable_freeze(frozen_project):
    npz = frozen_project.freeze / "main" / "arrays.npz"
    npz.write_bytes(b"garbage")
    res = cli("verify", "--root", str(frozen_project.root), "-q")
    assert res.exit_code == 1
    line = next(x for x in res.output.splitlines() if x.startswith("main: cannot read"))
    assert f"{npz}: arrays file does not match the hash in results.json" in line
