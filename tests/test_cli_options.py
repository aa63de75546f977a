"""Command-line papercuts: tolerances must be finite and >= 0; --debug goes before or after the
command; a usage error is one line; progress is redrawn at most about ten times a second and
ends with a line saying why training stopped; the claims audit computed by a second process
during a build shows its progress too."""
from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write_post
from generator.cli.common import ProgressLine
from harness import assert_one_line_error, invoke, set_experiment

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("option,value", [("--atol", "-1"), ("--rtol", "-1e-9"),
                                          ("--atol", "nan"), ("--rtol", "inf")])
def test_tolerances_must_be_finite_and_not_negative(project, option, value, monkeypatch):
    from generator.stages import verify as verify_mod

    monkeypatch.setattr(verify_mod, "compute_here", lambda *a, **k: pytest.fail("re-ran"))
    result = invoke("verify", "--root", project, option, value)
    assert_one_line_error(result, [f"Error: {option}: must be a finite number >= 0, got ",
                                   "the default is 1e-06"])


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_command(project, where):
    set_experiment(project, "rank: 0")
    args = ["build", "--root", str(project), "--quiet"]
    result = invoke(*(["--debug", *args] if where == "before" else [*args, "--debug"]))
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "experiments.main.rank: must be between 1 and d_model=64" in result.stderr


def test_a_usage_error_is_one_line(project):
    result = invoke("build", "--root", project, "--frozen", "--force")
    assert_one_line_error(result, ["--frozen and --force contradict each other; pick one",
                                   "build --help"], code=2)
    result = invoke("build", "--root", project, "--bogus")
    assert_one_line_error(result, ["No such option '--bogus'", "build --help"], code=2)
    result = invoke("audit", "--root", project, "--seeds", "0")
    assert_one_line_error(result, ["Invalid value for '--seeds'", "audit --help"], code=2)


def test_the_progress_line_is_redrawn_at_most_ten_times_a_second():
    now = [0.0]
    out = io.StringIO()
    line = ProgressLine("training main", out, clock=lambda: now[0])
    for step in range(1, 1001):                 # 1000 steps in half a second
        now[0] = step * 0.0005
        line(step, 2000, f"p={step / 2000:.3f}")
    assert line.draws == 5                      # the first, then one every 0.1 s
    line(2000, 2000, "p=1.000")                 # the last step is always shown
    assert line.draws == 6
    line.finish("max_steps reached (2000 steps; p=0.500 < stop_prob 0.9)")
    text = out.getvalue()
    assert text.count("\r") == 7 and text.endswith(
        "\rtraining main: max_steps reached (2000 steps; p=0.500 < stop_prob 0.9)\n")
    assert "\rtraining main [########################] 2000/2000 p=1.000" in text


def on_a_terminal(args: list[str], cwd: Path, env: dict | None = None) -> tuple[str, float]:
    """`lora-site <args>` with stderr on a pseudo-terminal: (what it showed there, seconds)."""
    master, slave = pty.openpty()
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "generator", *args], stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL, cwd=cwd,
                            env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})))
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:                         # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=600)
    elapsed = time.monotonic() - started
    os.close(master)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace"), elapsed


def test_training_progress_is_throttled_and_says_why_it_stopped(tmp_path):
    write_post(tmp_path, experiments="  main: {d_model: 8, seq_len: 4, key: 2, max_steps: 20000, "
                                     "lr: 1.0e-6, stop_prob: 0.999999}\n"
                                     "  quick: {d_model: 8, seq_len: 4, key: 2, max_steps: 500}\n")
    shown, elapsed = on_a_terminal(["run", "--root", str(tmp_path)], tmp_path)
    main = shown.split("training main", 1)[1].split("\n", 1)[0]
    # Every redraw starts with a carriage return: about ten a second, never one per step.
    assert main.count("\r") <= 10 * elapsed + 3, (main.count("\r"), elapsed)
    final = re.findall(r"\rtraining (\w+): (.*?) *\r?\n", shown)
    doc = {n: json.loads((tmp_path / "content/_freeze" / n / "results.json").read_text())
           for n in ("main", "quick")}
    m = {n: d["metrics"] for n, d in doc.items()}
    assert (("main", f"max_steps reached (20000 steps; p={m['main']['target_weight_after']:.3f}"
             f" < stop_prob 0.999999)") in final), final
    assert m["quick"]["reached_stop_prob"] and m["quick"]["steps"] < 500
    assert ("quick", f"target reached at step {m['quick']['steps']} (p="
            f"{m['quick']['target_weight_after']:.3f} >= stop_prob 0.9)") in final, final


def test_the_audit_computed_by_a_second_process_shows_its_progress(tmp_path):
    write_post(tmp_path, experiments="  aud: {kind: audit, seeds: 2, sweeps: default}\n")
    import shutil

    shutil.copy(REPO / "content" / "site.yml", tmp_path / "content" / "site.yml")
    shown, _ = on_a_terminal(["build", "--root", str(tmp_path), "--explain"], tmp_path,
                             env={"LORA_SITE_COMPUTE_PROCESS": "1", "LORA_SITE_DRAW_WORKERS": "0"})
    assert "computed by a second process" in shown
    assert re.search(r"\rcomputing aud \[#*-*\] \d+/\d+ runs", shown), shown
    summary = json.loads((tmp_path / "content/_freeze/aud/audit.json").read_text())
    assert f"\rcomputing aud: done: {summary['runs_trained']} runs (2 seeds, default sweeps)" \
        in shown
