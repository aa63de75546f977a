"""Whole builds of the real article in copies of the project, through `python -m generator`.

- Two clean builds in different folders, time zones and hash seeds give identical bytes for
  every file under site/; so does a build from the other's freeze.
- The cache rules, end to end: a prose edit re-renders without importing torch or matplotlib,
  a no-op returns before importing Jinja, a plotting edit redraws without training, and an edit
  to generator/science/lora.py re-trains.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARTS = ("content", "templates", "generator", "requirements.lock")
HEAVY = ("torch", "matplotlib", "numpy", "jinja2", "markdown", "pygments")
# Runs the CLI in a fresh interpreter and records which heavy modules it imported.
WRAPPER = """
import atexit, json, sys
atexit.register(lambda: open({out!r}, "w").write(json.dumps(
    [m for m in {heavy!r} if m in sys.modules])))
sys.argv = ["lora-site"] + {args!r}
import runpy
runpy.run_module("generator", run_name="__main__", alter_sys=True)
"""

pytestmark = pytest.mark.slow


def copy_project(dest: Path, *, freeze: bool = False, src: Path = REPO) -> Path:
    dest.mkdir(parents=True)
    for part in PARTS:
        s = src / part
        if s.is_dir():
            shutil.copytree(s, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif s.is_file():
            shutil.copy2(s, dest / part)
    if not freeze:
        shutil.rmtree(dest / "content" / "_freeze", ignore_errors=True)
    return dest


def lora_site(root: Path, *args: str, env_extra: dict | None = None) -> tuple[str, list[str]]:
    """Run `lora-site <args> --root root` with root's own generator/; (stderr, heavy imports)."""
    out = root / ".imports.json"
    code = WRAPPER.format(out=str(out), heavy=HEAVY, args=[*args, "--root", str(root)])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    env.update(env_extra or {})
    res = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stderr, json.loads(out.read_text())


def site_hashes(root: Path) -> dict[str, str]:
    site = root / "site"
    return {p.relative_to(site).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(site.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """One cold build of the real article (it trains and draws), copied by the tests below."""
    root = copy_project(tmp_path_factory.mktemp("golden") / "project")
    lora_site(root, "build", "--quiet", env_extra={"TZ": "UTC", "PYTHONHASHSEED": "0"})
    return root


def clone(built: Path, dest: Path) -> Path:
    shutil.copytree(built, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_two_cold_builds_are_byte_identical(built, tmp_path):
    other = copy_project(tmp_path / "elsewhere" / "another-name")
    lora_site(other, "build", "--quiet",
              env_extra={"TZ": "Asia/Kolkata", "PYTHONHASHSEED": "12345", "LC_ALL": "C"})
    a, b = site_hashes(built), site_hashes(other)
    assert len(a) > 20 and any(name.endswith("@2x.png") for name in a)
    assert a == b
    # No absolute path of either build leaked into the output.
    for root in (built, other):
        for path in (root / "site").rglob("*"):
            if path.is_file() and path.suffix in (".html", ".xml", ".md", ".yml", ".css"):
                assert str(root) not in path.read_text(encoding="utf-8"), path


def test_build_from_the_freeze_alone_gives_the_same_site(built, tmp_path):
    # A fresh checkout: the committed freeze, no .cache, no site; and no training allowed.
    other = copy_project(tmp_path / "checkout", src=built, freeze=True)
    err, imported = lora_site(other, "build", "--frozen", "--explain")
    assert "torch" not in imported and "matplotlib" not in imported, imported
    assert "run main: reused frozen results (inputs unchanged" in err
    assert "figures main: reused frozen figures (inputs unchanged" in err
    assert site_hashes(other) == site_hashes(built)


def test_prose_edit_rerenders_without_torch_or_drawing(built, tmp_path):
    root = clone(built, tmp_path / "p")
    post = root / "content" / "posts" / "lora-attention-geometry.md"
    text = post.read_text()
    assert "## Introduction\n" in text
    post.write_text(text.replace("## Introduction\n", "## Introduction\n\nA new first line.\n", 1))
    err, imported = lora_site(root, "build", "--explain")
    assert "torch" not in imported and "matplotlib" not in imported, imported
    assert "pygments" not in imported, imported      # the listings' highlighting is cached
    lines = err.splitlines()
    assert lines[0].startswith("build: changed: content/posts/")
    assert any(line.startswith("run main: reused (inputs unchanged, key ") for line in lines)
    assert any(line.startswith("figures main: reused (inputs unchanged, key ") for line in lines)
    assert any(line.startswith("render: ran") for line in lines)
    page = (root / "site" / "html" / post.stem / "index.html").read_text()
    assert "A new first line." in page

    # Nothing changed since: the build stops before importing Jinja, Markdown or numpy.
    before = site_hashes(root)
    err, imported = lora_site(root, "build", "--explain")
    assert imported == [], imported
    assert "render: reused (no input changed since the last build" in err
    assert site_hashes(root) == before

    # ...but a deleted output is noticed and rebuilt.
    victim = root / "site" / "html" / post.stem / "index.html"
    victim.unlink()
    err, _ = lora_site(root, "build", "--explain")
    assert "differs from what the last build wrote" in err and victim.is_file()

    # Undoing the edit gives back the cold build's bytes, though every cache was used this time
    # (compiled templates, highlighted code, figures, the frozen results).
    post.write_text(text)
    lora_site(root, "build", "--quiet")
    assert site_hashes(root) == site_hashes(built)


def test_plotting_edit_redraws_without_training(built, tmp_path):
    root = clone(built, tmp_path / "f")
    figures_py = root / "generator" / "plots" / "lora_figures.py"
    text = figures_py.read_text()
    assert 'cmap="viridis"' in text
    figures_py.write_text(text.replace('cmap="viridis"', 'cmap="cividis"'))
    old_png = (root / "site" / "html" / "assets" / "images" / "before_lora.png").read_bytes()
    err, imported = lora_site(root, "build", "--explain")
    assert "torch" not in imported, imported
    assert "run main: reused (inputs unchanged" in err
    assert "figures main: drew (generator/plots/lora_figures.py changed; key " in err
    new_png = (root / "site" / "html" / "assets" / "images" / "before_lora.png").read_bytes()
    assert new_png != old_png


def test_lora_source_edit_retrains(built, tmp_path):
    root = clone(built, tmp_path / "l")
    lora_py = root / "generator" / "science" / "lora.py"
    lora_py.write_text(lora_py.read_text() + "\n# an edit to the LoRA layer\n")
    err, imported = lora_site(root, "build", "--explain")
    assert "torch" in imported
    assert "run main: ran (generator/science/lora.py changed; key " in err
    # A comment changes no number: the arrays are the same, so the figures are reused.
    assert "figures main: reused (inputs unchanged" in err
    assert site_hashes(root) == site_hashes(built)


def test_frozen_build_fails_naming_the_stale_experiment(built, tmp_path):
    root = clone(built, tmp_path / "s")
    (root / "generator" / "science" / "metrics.py").write_text(
        (root / "generator" / "science" / "metrics.py").read_text() + "\n# changed\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(root)
    res = subprocess.run([sys.executable, "-m", "generator", "build", "--frozen", "--root",
                          str(root)], cwd=root, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 1
    assert ("frozen results of experiment 'main' are stale: generator/science/metrics.py "
            "changed") in \
        res.stderr


NO_TORCH = """
import sys
class _NoTorch:
    # As on the publishing machine: torch is not installed at all.
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'")
sys.meta_path.insert(0, _NoTorch())
import generator.core.keys as keys
real = keys.installed_version
keys.installed_version = lambda name: None if name == "torch" else real(name)
"""


def test_frozen_build_works_where_torch_is_not_installed(built, tmp_path):
    """The Pages workflow installs the lock minus torch: the freeze is then held to the lock's
    torch pin, and nothing tries to import torch."""
    other = copy_project(tmp_path / "publish", src=built, freeze=True)
    code = NO_TORCH + ("sys.argv = ['lora-site', 'build', '--frozen', '--explain', '--root', "
                       f"{str(other)!r}]\nimport runpy\n"
                       "runpy.run_module('generator', run_name='__main__', alter_sys=True)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(other)
    res = subprocess.run([sys.executable, "-c", code], cwd=other, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "run main: reused frozen results (inputs unchanged" in res.stderr
    assert site_hashes(other) == site_hashes(built)
    # With a lock that pins another torch, the same build refuses the freeze.
    lock = other / "requirements.lock"
    lock.write_text(lock.read_text().replace("torch==2.13.0", "torch==2.12.0"))
    res = subprocess.run([sys.executable, "-c", code], cwd=other, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 1
    assert "frozen results of experiment 'main' are stale: torch 2.13.0+cpu -> pinned:2.12.0" \
        in res.stderr
