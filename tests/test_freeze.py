"""Frozen results: --frozen trusts only a fresh, intact freeze; verify re-runs and compares."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import write_post
from generator.cli import main
from generator.core.errors import ConfigError, ResultsError
from generator.core.fsio import write_bytes_atomic
from generator.core.keys import digest
from generator.core.project import Project
from generator.kinds.lora_results import load_result, result_files
from generator.science.experiment import Result
from generator.stages import run
from helpers import context, declared, results_stage

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
    results_stage(project)
    return project


def no_training(monkeypatch):
    monkeypatch.setattr(run, "compute_here", lambda *a, **k: pytest.fail("trained"))


def record_run(project: Project, name: str = "main") -> None:
    """Record in the manifest that content/_freeze/<name> holds the result of its inputs."""
    with context(project) as ctx:
        d = declared(ctx)[name]
        store = run.store_of(ctx)
        store.put_result(name, d.kind, None, run.run_inputs(ctx, d))
        store.save()


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_frozen_uses_a_fresh_freeze_without_training(frozen_project, monkeypatch):
    no_training(monkeypatch)
    lines = []
    results = results_stage(frozen_project, frozen=True, explain=lines.append)
    assert results["main"].metrics["steps"] == 15
    assert lines[0].startswith("run main: reused frozen results (inputs unchanged, key ")


def test_frozen_fails_naming_a_stale_experiment(frozen_project, monkeypatch):
    no_training(monkeypatch)
    write_post(frozen_project.root, experiments=TINY.replace("key: 2", "key: 3"))
    with pytest.raises(ResultsError) as err:
        results_stage(frozen_project, frozen=True)
    msg = err.value.message
    assert "experiment 'main'" in msg and "stale" in msg and "config key 2 -> 3" in msg
    assert str(frozen_project.freeze / "main") in msg


def test_frozen_fails_on_a_missing_experiment(frozen_project):
    write_post(frozen_project.root, slug="second", experiments="  other: {d_model: 8}\n")
    with pytest.raises(ResultsError, match=r"experiment 'other'.*no frozen results"):
        results_stage(frozen_project, frozen=True)


@pytest.mark.parametrize("filename", ["results.json", "arrays.npz"])
def test_frozen_fails_naming_a_damaged_file(frozen_project, filename):
    path = frozen_project.freeze / "main" / filename
    path.write_bytes(path.read_bytes()[:-10])             # truncated
    with pytest.raises(ResultsError) as err:
        results_stage(frozen_project, frozen=True)
    assert str(path) in err.value.message
    assert f"{filename} was edited or truncated" in err.value.message


def test_frozen_and_force_are_refused_together(frozen_project):
    with pytest.raises(ConfigError, match="--frozen and --force"):
        results_stage(frozen_project, frozen=True, force=True)


def test_results_without_a_manifest_entry_are_not_trusted(frozen_project):
    (frozen_project.freeze / "manifest.json").unlink()
    with pytest.raises(ResultsError, match="not recorded in content/_freeze/manifest.json"):
        results_stage(frozen_project, frozen=True)


def test_run_command_records_the_manifest(tmp_path):
    write_post(tmp_path, experiments=TINY)
    project = Project(tmp_path)
    assert cli("run", "--root", str(tmp_path), "-q").exit_code == 0
    with context(project) as ctx:
        d = declared(ctx)["main"]
        state = run.store_of(ctx).check("main", d.kind, run.run_inputs(ctx, d))
    assert state.fresh, state.reasons
    assert results_stage(project, frozen=True)["main"].metrics["steps"] == 15


def test_manifest_is_sorted_json_without_paths_or_times(frozen_project):
    text = (frozen_project.freeze / "manifest.json").read_text()
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=2, sort_keys=True) + "\n"
    assert str(frozen_project.root) not in text
    assert set(doc["experiments"]["main"]) == {"kind", "key", "inputs", "files"}
    assert doc["experiments"]["main"]["kind"] == "lora"
    assert doc["experiments"]["main"]["key"] == digest(doc["experiments"]["main"]["inputs"])


def test_frozen_stage_never_imports_torch(frozen_project):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from generator.authoring.posts import collect_experiments, read_posts\n"
        "from generator.core.context import BuildContext\n"
        "from generator.core.project import Project\n"
        "from generator.stages.run import StageOptions, results_stage\n"
        f"ctx = BuildContext(Project(Path({str(frozen_project.root)!r})))\n"
        "r = results_stage(ctx, collect_experiments(read_posts(ctx)), StageOptions(frozen=True))\n"
        "assert r['main'].metrics['steps'] == 15\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'numpy' not in sys.modules, 'numpy was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---------------------------------------------------------------------------------------------
# verify

def _numerics_text() -> str:
    import torch

    from generator.core import numerics

    return f"{numerics.current().describe()}, ATen {torch.backends.cpu.get_cpu_capability()}"


def test_verify_passes_on_a_fresh_freeze(frozen_project):
    res = cli("verify", "--root", str(frozen_project.root), "-q")
    assert res.exit_code == 0, res.output
    assert res.output == ("main: bit-exact match with the frozen results "
                          f"(numerics: {_numerics_text()})\n")


def test_verify_says_when_a_match_is_within_tolerance_only(frozen_project):
    # A freeze made where the last bits differ (another machine without the pins): passes,
    # and says it is not bit-exact, with the largest difference.
    import re

    saved = load_result(frozen_project.freeze / "main")
    loss3 = float(saved.arrays()["loss"][3])
    _plant(frozen_project, array_delta=5e-7)        # a few float32 ulps: within tolerance
    record_run(frozen_project)                      # a consistent freeze
    planted = float(load_result(frozen_project.freeze / "main").arrays()["loss"][3])
    assert 0 < abs(planted - loss3) < 1e-6
    res = cli("verify", "--root", str(frozen_project.root), "-q")
    assert res.exit_code == 0, res.output
    m = re.fullmatch(r"main: matches the frozen results within atol=1e-06, rtol=1e-06, "
                     r"max \|diff\| (\S+) \(numerics: (.*)\)\n", res.output)
    assert m, res.output
    assert float(m.group(1)) == float(f"{abs(planted - loss3):.3g}")
    assert m.group(2) == _numerics_text()


def _plant(project: Project, *, array_delta: float, steps_delta: int = 0) -> None:
    saved = load_result(project.freeze / "main")
    arrays = saved.arrays()
    arrays["loss"] = arrays["loss"].copy()
    arrays["loss"][3] += array_delta
    metrics = dict(saved.metrics, steps=saved.metrics["steps"] + steps_delta)
    files = result_files("main", Result(saved.config, arrays, metrics, saved.provenance))
    for name in ("arrays.npz", "results.json"):
        write_bytes_atomic(saved.path / name, files[name])


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


# ---------------------------------------------------------------------------------------------
# A re-run never rewrites the freeze with rounding noise (freeze.settle)

def _freeze_from_elsewhere(project: Project, delta: float) -> bytes:
    """Make content/_freeze/main look like a consistent freeze made on a machine whose last
    bits differ by ``delta`` in one value; return the bytes of its arrays.npz."""
    _plant(project, array_delta=delta)
    record_run(project)
    return (project.freeze / "main" / "arrays.npz").read_bytes()


def test_a_rerun_within_tolerance_keeps_the_committed_bytes(frozen_project):
    planted = _freeze_from_elsewhere(frozen_project, 5e-7)
    manifest = (frozen_project.freeze / "manifest.json").read_bytes()
    lines = []
    results_stage(frozen_project, force=True, explain=lines.append,
                           warn=lambda line: pytest.fail(f"warned: {line}"))
    assert (frozen_project.freeze / "main" / "arrays.npz").read_bytes() == planted
    assert (frozen_project.freeze / "manifest.json").read_bytes() == manifest
    assert lines[0].startswith("run main: ran (--force; key ")
    assert ("; matches the frozen results within atol=1e-06, rtol=1e-06 (max |diff| "
            in lines[0]) and lines[0].endswith("): kept the committed bytes")


def test_a_rerun_beyond_tolerance_rewrites_the_freeze_and_says_so(frozen_project):
    planted = _freeze_from_elsewhere(frozen_project, 1e-3)
    planted_loss = load_result(frozen_project.freeze / "main").arrays()["loss"][3]
    lines, warned = [], []
    results_stage(frozen_project, force=True, explain=lines.append, warn=warned.append)
    now = (frozen_project.freeze / "main" / "arrays.npz").read_bytes()
    assert now != planted
    assert abs(load_result(frozen_project.freeze / "main").arrays()["loss"][3]
               - planted_loss) > 9e-4
    assert warned == [lines[0].split(": ", 1)[0] + ": " + lines[0].split("; ", 2)[2]]
    assert warned[0].startswith("run main: differs from the frozen results beyond atol=1e-06, "
                                "rtol=1e-06 (1 difference(s): arrays.loss: 1 of ")
    assert warned[0].endswith(f": rewrote {frozen_project.freeze / 'main'}")
    # And the freeze is consistent again: a frozen build accepts it.
    results_stage(frozen_project, frozen=True)


def test_refreeze_writes_even_a_match_within_tolerance(frozen_project):
    planted = _freeze_from_elsewhere(frozen_project, 5e-7)
    lines = []
    results_stage(frozen_project, refreeze=True, explain=lines.append)
    assert (frozen_project.freeze / "main" / "arrays.npz").read_bytes() != planted
    assert lines[0].endswith("; --refreeze: written whatever the frozen bytes")


def test_an_identical_rerun_writes_nothing(frozen_project):
    folder = frozen_project.freeze / "main"
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}
    before["manifest"] = (frozen_project.freeze / "manifest.json").stat().st_mtime_ns
    lines = []
    results_stage(frozen_project, force=True, explain=lines.append)
    after = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}
    after["manifest"] = (frozen_project.freeze / "manifest.json").stat().st_mtime_ns
    assert after == before
    assert lines[0].endswith("; identical to the frozen results")


def test_build_cli_refreeze_and_frozen_contradict(frozen_project):
    res = CliRunner().invoke(main, ["build", "--root", str(frozen_project.root), "--frozen",
                                    "--refreeze"])
    assert res.exit_code == 2
    assert "--frozen and --refreeze contradict each other; pick one" in res.output


def test_the_numeric_opt_out_reruns_and_keeps_a_match(frozen_project):
    """LORA_SITE_NUMERICS=native changes the key (the pins are an input), so the experiment
    re-runs; its result matches the pinned freeze within tolerance, so the bytes stay."""
    import os

    from generator.core import numerics

    (frozen_project.content / "site.yml").write_text(
        'title: "T"\ndescription: "D"\nauthor: "A"\nurl: "https://example.org"\n',
        encoding="utf-8")
    arrays = (frozen_project.freeze / "main" / "arrays.npz").read_bytes()
    env = {k: v for k, v in os.environ.items() if k not in numerics.PIN_VARS}
    env.update(LORA_SITE_NUMERICS="native", LORA_SITE_DRAW_WORKERS="0")
    out = subprocess.run([sys.executable, "-m", "generator", "build", "--root",
                          str(frozen_project.root), "--explain", "-q"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    run_line = next(line for line in out.stderr.splitlines() if line.startswith("run main:"))
    assert f"numerics pinned {numerics.PROFILE} -> native" in run_line
    assert ("identical to the frozen results" in run_line
            or "kept the committed bytes" in run_line), run_line
    assert (frozen_project.freeze / "main" / "arrays.npz").read_bytes() == arrays
