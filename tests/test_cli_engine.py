"""The run and figures commands, driven through click's CliRunner and a real subprocess."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from click.testing import CliRunner

from generator.cli import main
from generator.core.fsio import load_npz, sha256_file
from generator.plots.common import image_files
from generator.plots.lora_figures import FIGURE_NAMES


def _run(args, **kw):
    return CliRunner().invoke(main, args, catch_exceptions=False, **kw)


def test_run_writes_json_and_npz(tiny_project):
    res = _run(["run", "--root", str(tiny_project), "--quiet"])
    assert res.exit_code == 0, res.output
    folder = tiny_project / "content" / "_freeze" / "main"
    doc = json.loads((folder / "results.json").read_text())
    assert doc["config"]["rank"] == 4 and doc["config"]["key"] == 5
    prov = doc["provenance"]
    assert {"seed", "torch", "numpy", "python", "threads", "steps"} <= prov.keys()
    assert "wall_time_s" not in prov            # no clock readings in committed results
    assert prov["torch"].startswith("2.13.0") and prov["threads"] == 1
    for key in ("target_weight_before", "target_weight_after", "cos_q", "dq_norm", "tv_rows",
                "q_norm_ratio", "delta_w_rank", "steps"):
        assert key in doc["metrics"], key
    arrays = load_npz(folder / "arrays.npz")
    for key in ("X", "Q_before", "Q_after", "K_before", "K_after", "scores_before",
                "scores_after", "weights_before", "weights_after", "delta_w", "loss"):
        assert key in arrays, key
    assert doc["arrays_sha256"] == sha256_file(folder / "arrays.npz")


def test_two_runs_give_identical_files(tiny_project, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert _run(["run", "--root", str(tiny_project), "-q", "--out", str(out)]).exit_code == 0
    assert (a / "main" / "arrays.npz").read_bytes() == (b / "main" / "arrays.npz").read_bytes()
    assert (a / "main" / "results.json").read_bytes() == (b / "main" / "results.json").read_bytes()


def test_npz_refuses_pickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, obj=np.array([{"a": 1}], dtype=object))
    try:
        load_npz(path)
    except ValueError as exc:
        assert "pickle" in str(exc).lower()
    else:
        raise AssertionError("an object array loaded")


def test_figures_six_names_deterministic_and_torch_free(tiny_project, tmp_path):
    assert _run(["run", "--root", str(tiny_project), "-q"]).exit_code == 0
    outs = [tmp_path / "f1", tmp_path / "f2"]
    for out in outs:
        # A fresh interpreter each time: prove that drawing never imports torch.
        code = ("import sys; from generator.cli import main; "
                f"sys.argv=['lora-site','figures','--root',{str(tiny_project)!r},'-q','--out',{str(out)!r}]\n"
                "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
                "assert 'torch' not in sys.modules, 'figures imported torch'")
        subprocess.run([sys.executable, "-c", code], check=True)
    names = sorted(p.name for p in (outs[0] / "main").iterdir())
    assert names == sorted(image_files(FIGURE_NAMES))          # both themes, both scales
    for name in names:
        data = (outs[0] / "main" / name).read_bytes()
        assert data == (outs[1] / "main" / name).read_bytes(), name
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        # No text chunks: no software version, no date.
        assert b"tEXt" not in data and b"iTXt" not in data and b"tIME" not in data


def test_help_does_not_import_torch_or_matplotlib():
    code = ("import sys; from click.testing import CliRunner; from generator.cli import main\n"
            "for args in (['--help'], ['run', '--help'], ['figures', '--help'], ['--version']):\n"
            "    r = CliRunner().invoke(main, args); assert r.exit_code == 0, r.output\n"
            "bad = [m for m in ('torch', 'matplotlib') if m in sys.modules]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_option_has_help():
    import click
    def walk(cmd):
        yield cmd
        if isinstance(cmd, click.Group):
            for sub in cmd.commands.values():
                yield from walk(sub)
    for cmd in walk(main):
        assert cmd.help, cmd.name
        for param in cmd.params:
            if isinstance(param, click.Option) and param.name not in ("help",):
                assert param.help, f"{cmd.name} {param.opts}"


def test_version_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "generator", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "lora-site, version 0.1.0"


def test_quiet_and_non_tty_show_no_progress(tiny_project):
    res = _run(["run", "--root", str(tiny_project)])
    assert res.exit_code == 0
    assert "training main" not in res.output and "main:" in res.output
    res = _run(["run", "--root", str(tiny_project), "--quiet"])
    assert res.output == ""


def test_unknown_experiment_name_is_a_one_line_error(tiny_project):
    res = CliRunner().invoke(main, ["run", "--root", str(tiny_project), "--only", "nope"])
    assert res.exit_code == 1
    assert res.output.count("\n") == 1 and "no experiment named 'nope'" in res.output


def test_progress_shows_on_a_terminal_only(tiny_project):
    """With stderr on a pseudo-terminal the bar appears; --quiet removes it."""
    import os
    import pty

    def stderr_on_tty(extra):
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "generator", "run", "--root",
                                 str(tiny_project), *extra], stdout=subprocess.PIPE,
                                stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=120)
        os.close(master)
        assert proc.returncode == 0
        return b"".join(chunks).decode(errors="replace")

    assert "training main" in stderr_on_tty([])
    assert stderr_on_tty(["--quiet"]) == ""
