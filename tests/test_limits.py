"""Sizes that would exhaust memory or disk are refused before anything is allocated, naming the
setting and the bound; results too large for the repository warn or are refused; failures of
the machine (a full disk, a port in use, torch not installed) are one line naming the file or
host:port and the right fix. Through the CLI; site/ and content/_freeze unchanged."""
from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest

from generator.core import fsio
from generator.stages import run as run_mod
from harness import (
    Case, add_body_line, assert_one_line_error, check_case, extra_post, invoke, set_experiment,
    tree_hashes)

REPO = Path(__file__).resolve().parents[1]
SMALL = "d_model: 8, seq_len: 4, key: 2, max_steps: 15"


def bound(settings: str, field: str, *words: str):
    def case(root):
        set_experiment(root, settings)
        return Case([f"lora-attention-geometry.md: experiments.main.{field}:", *words])
    case.__name__ = "bound_" + settings.split(":")[0]
    return case


def audit_bound(settings: str, field: str, *words: str):
    def case(root):
        extra_post(root, f"experiments:\n  big: {{kind: audit, {settings}}}\n")
        return Case([f"extra.md: experiments.big.{field}:", *words])
    case.__name__ = "audit_" + settings.split(":")[0]
    return case


CASES = [
    bound("d_model: 100000", "d_model", "must be at most 2048, got 100000",
          "content/_freeze, whose files must stay under 50 MB"),
    bound("d_model: 4096", "d_model", "must be at most 2048, got 4096"),
    bound("d_model: 2048, seq_len: 1024", "d_model",
          "d_model=2048 with seq_len=1024 would make arrays.npz 109 MB, over the 50 MB limit",
          "lower d_model or seq_len"),
    bound("seq_len: 5000", "seq_len", "must be at most 1024, got 5000"),
    bound("seed: 18446744073709551616", "seed", "must be between 0 and 2**63 - 1",
          "a 64-bit number"),
    bound("seed: -1", "seed", "must be between 0 and 2**63 - 1, got -1"),
    bound("threads: 1000000", "threads", "must be at most 64, got 1000000"),
    bound("max_steps: 1000000000", "max_steps", "must be at most 1000000"),
    audit_bound("seeds: 1000000", "seeds", "must be at most 5000, got 1000000",
                "audit.npz would outgrow the 50 MB"),
    audit_bound("threads: 100000", "threads", "must be at most 64"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_sizes_are_bounded_before_anything_runs(project, case, monkeypatch):
    monkeypatch.setattr(run_mod, "compute_here", lambda *a, **k: pytest.fail("computed"))
    check_case(project, case)


def test_a_result_file_over_the_limit_is_refused(project, monkeypatch):
    monkeypatch.setattr(run_mod, "MAX_FILE_BYTES", 1000)

    def case(root):
        set_experiment(root, SMALL)
        return Case(["lora-attention-geometry.md: experiments.main:",
                     "the result file arrays.npz of experiment 'main' would be",
                     "kB, over the 1.0 kB GitHub accepts", "content/_freeze is committed"])
    check_case(project, case)


def test_a_result_file_over_the_warning_size_is_reported(project, monkeypatch):
    monkeypatch.setattr(run_mod, "WARN_FILE_BYTES", 1000)
    set_experiment(project, SMALL)
    result = invoke("build", "--root", project, "--quiet")
    assert result.exit_code == 0, result.output
    assert "warning: run main: arrays.npz is " in result.stderr
    assert "GitHub warns about files over 1.0 kB and refuses them over 100.0 MB" in result.stderr


def test_a_cuda_device_that_is_not_there(project, monkeypatch):
    import torch

    # No CUDA device, whatever the machine has; computed in this process, where that holds.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LORA_SITE_COMPUTE_PROCESS", "0")

    def case(root):
        extra_post(root, "experiments:\n  gpu: {kind: audit, seeds: 2, sweeps: default, "
                         "device: cuda}\n")
        return Case(["extra.md: experiments.gpu.device:", "torch finds no CUDA device here",
                     "use device: cpu"])
    check_case(project, case)
    result = invoke("audit", "--root", project, "--quiet", "--seeds", "2", "--sweeps", "default",
                    "--device", "cuda")
    assert_one_line_error(result, ["--device: torch finds no CUDA device here",
                                   "use --device cpu"])


def test_audit_seeds_on_the_command_line_are_bounded(project):
    result = invoke("audit", "--root", project, "--quiet", "--seeds", "6000")
    assert_one_line_error(result, ["--seeds: must be at most 5000, got 6000"])


def test_a_full_disk_while_caching_names_the_file(project, monkeypatch):
    """A cache write (here the post cache, after a prose edit) on a full disk: one line naming
    the file, the fix for a full disk, and nothing published or committed changes."""
    class Full:
        def __init__(self, fd, mode):
            os.close(fd)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(fsio, "os", types.SimpleNamespace(**{**vars(os), "fdopen": Full}))

    def case(root):
        add_body_line(root, "A new sentence.")
        return Case([".cache/lora-site/", ": No space left on device",
                     "the disk is full: free some space and run the command again"])
    check_case(project, case)


def test_serve_on_a_port_in_use_names_host_and_port(project):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("serve", "--root", project, "--port", str(port))
    assert_one_line_error(result, [f"--port: cannot listen on 127.0.0.1:{port}: Address already "
                                   "in use", f"another program is listening on port {port}",
                                   "--port 0 picks a free one"])


def test_serve_on_a_host_that_does_not_exist(project):
    result = invoke("serve", "--root", project, "--host", "no-such-host.invalid", "--port", "0")
    assert_one_line_error(result, ["--host: cannot listen on no-such-host.invalid:0",
                                   "no such host name"])


def test_a_build_that_must_train_without_torch_says_so(project):
    """torch made unimportable in a real process: a build that must train fails in one line
    (install torch, or --frozen); a frozen build still works."""
    site, freeze = tree_hashes(project / "site"), tree_hashes(project / "content" / "_freeze")
    set_experiment(project, SMALL)
    code = ("import sys; sys.modules['torch'] = None\n"
            "from generator.cli import run\n"
            "sys.argv = ['lora-site'] + sys.argv[1:]\nrun()\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), LORA_SITE_DRAW_WORKERS="0")
    proc = subprocess.run([sys.executable, "-c", code, "build", "--root", str(project),
                           "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "lora-attention-geometry.md: experiments.main: experiment 'main' must be computed, " \
           "and torch is not installed (install it with pip install -r requirements.lock, or " \
           "build with --frozen" in lines[0]
    assert tree_hashes(project / "site") == site
    assert tree_hashes(project / "content" / "_freeze") == freeze


def bad_draw_workers(root):
    os.environ["LORA_SITE_DRAW_WORKERS"] = "many"        # undone by the test's monkeypatch
    set_experiment(root, SMALL)
    return Case(["LORA_SITE_DRAW_WORKERS: 'many' is not a number of processes",
                 "set it to 0 to draw in the build, or up to 64 processes, or unset it"])


def overflow_in_the_body(root):
    line = add_body_line(root, "Huge: {{ 10.0 ** 400 }}.")
    return Case([f"lora-attention-geometry.md:{line}:", "error in a template expression",
                 "OverflowError"])


def recursion_in_the_body(root):
    line = add_body_line(root, "{% macro r() %}{{ r() }}{% endmacro %}{{ r() }}")
    return Case([f"lora-attention-geometry.md:{line}:", "RecursionError"])


def a_kind_module_that_fails(root):
    (root / "brokenkind.py").write_text("raise RuntimeError('boom')\n")
    with open(root / "content" / "site.yml", "a", encoding="utf-8") as fh:
        fh.write("kinds: [brokenkind]\n")
    return Case(["site.yml: kinds:", "the kind module 'brokenkind' fails when imported: "
                 "RuntimeError: boom", "fix that module, or remove it from kinds:"])


def a_post_that_cannot_be_read(root):
    (root / "content" / "posts" / "gone.md").symlink_to(root / "nowhere.md")
    return Case(["gone.md: cannot read the post: No such file or directory",
                 "check that the path exists"])


@pytest.mark.parametrize("case", [bad_draw_workers, overflow_in_the_body, recursion_in_the_body,
                                  a_kind_module_that_fails, a_post_that_cannot_be_read])
def test_other_inputs_name_the_place(project, case, monkeypatch):
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")
    monkeypatch.syspath_prepend(str(project))
    check_case(project, case)
