"""Content-addressed caching of the run and figures stages: what re-runs, what is reused, why."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import write_post
from generator import cache, freeze, pipeline
from generator.config import ExperimentConfig
from generator.project import Project

TINY = "  main: {d_model: 8, seq_len: 4, key: 2, max_steps: 15}\n"
PACKAGE = Path(freeze.__file__).resolve().parent


@pytest.fixture(autouse=True)
def draw_in_process(monkeypatch):
    """Training here would start figure workers (drawpool) that most of these tests never use."""
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")


@pytest.fixture
def project(tmp_path) -> Project:
    write_post(tmp_path, experiments=TINY)
    return Project(tmp_path)


@pytest.fixture
def package_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the generator sources that the input hashing reads instead of the real ones."""
    copy = tmp_path / "pkg" / "generator"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(freeze, "package_dir", lambda: copy)
    return copy


@pytest.fixture
def fake_draw(monkeypatch) -> list[str]:
    """Drawing stands in for matplotlib where only the caching is under test: bytes that depend
    on the arrays, like real figures. Returns the names of the experiments drawn."""
    drawn: list[str] = []

    def draw(saved):
        drawn.append(saved.name)
        return {"a.png": b"PNG " + saved.arrays_sha256.encode(), "a@2x.png": b"PNG2"}
    monkeypatch.setattr(pipeline, "draw_figures", draw)
    return drawn


def stages(project: Project, **kw) -> tuple[list[str], dict, dict]:
    lines: list[str] = []
    results = pipeline.results_stage(project, explain=lines.append, **kw)
    figs = pipeline.figures_stage(project, results, explain=lines.append,
                                  force=kw.get("force", False))
    return lines, results, figs


def forbid(monkeypatch, name: str) -> None:
    def boom(*a, **k):
        raise AssertionError(f"{name} was called")
    monkeypatch.setattr(pipeline, name, boom)


# ---------------------------------------------------------------------------------------------
# Which sources a stage depends on

def test_run_closure_is_what_experiment_imports():
    got = freeze.module_closure("experiment")
    assert got == ["generator/attention.py", "generator/config.py", "generator/errors.py",
                   "generator/experiment.py", "generator/lora.py", "generator/metrics.py",
                   "generator/numerics.py"]


def test_figures_closure_excludes_training_code():
    got = freeze.module_closure("figures")
    assert "generator/figures.py" in got and "generator/config.py" in got
    assert "generator/lora.py" not in got and "generator/experiment.py" not in got


def test_closure_follows_every_import_form(tmp_path):
    pkg = tmp_path / "generator"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .unused import x\n")
    (pkg / "a.py").write_text("from . import b\nimport os\n")
    (pkg / "b.py").write_text("from .c import thing\n")
    (pkg / "c.py").write_text("def f():\n    import os, generator.d as dee\n"
                              "    from generator.e import y\n")
    (pkg / "d.py").write_text("import numpy\nfrom generator import (f,  # a note\n    g as gee)\n")
    (pkg / "e.py").write_text("from ..elsewhere import z\nimport generatorx.h\n")
    for name in ("f", "g", "h", "unused"):
        (pkg / f"{name}.py").write_text("")
    assert freeze.module_closure("a", pkg) == [
        "generator/a.py", "generator/b.py", "generator/c.py", "generator/d.py", "generator/e.py",
        "generator/f.py", "generator/g.py"]


def test_editing_lora_changes_run_inputs_but_not_figure_inputs(package_copy):
    cfg = ExperimentConfig()
    run0, fig0 = freeze.run_inputs(cfg), freeze.figure_inputs(cfg, "ab" * 32)
    with open(package_copy / "lora.py", "a") as fh:
        fh.write("\n# an edit\n")
    assert freeze.changed_inputs(run0, freeze.run_inputs(cfg)) == ["generator/lora.py changed"]
    assert freeze.changed_inputs(fig0, freeze.figure_inputs(cfg, "ab" * 32)) == []
    with open(package_copy / "figures.py", "a") as fh:
        fh.write("\n# an edit\n")
    assert freeze.changed_inputs(fig0, freeze.figure_inputs(cfg, "ab" * 32)) == [
        "generator/figures.py changed"]


def test_versions_are_read_without_importing():
    import numpy

    assert freeze.installed_version("numpy") == numpy.__version__
    assert freeze.installed_version("no-such-distribution-xyz") is None
    assert freeze.run_inputs(ExperimentConfig(threads=2))["threads"] == 2


def test_missing_library_is_held_to_the_lock_pin(tmp_path, monkeypatch):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# pins\nnumpy==2.4.6\ntorch==2.13.0\n")
    real = freeze.installed_version
    monkeypatch.setattr(freeze, "installed_version",
                        lambda name: None if name == "torch" else real(name))
    assert freeze.library_versions(("torch",), lock) == {"torch": "pinned:2.13.0"}
    recorded = {"torch": "2.13.0+cpu"}
    assert freeze.changed_inputs(recorded, {"torch": "pinned:2.13.0"}) == []
    assert freeze.changed_inputs(recorded, {"torch": "pinned:2.12.0"}) == [
        "torch 2.13.0+cpu -> pinned:2.12.0"]
    assert freeze.library_versions(("torch",), tmp_path / "absent.lock") == {"torch": "absent"}


# ---------------------------------------------------------------------------------------------
# The run stage

def test_second_build_reuses_the_run_and_the_figures(project, monkeypatch):
    lines, results, figs = stages(project)
    assert lines[0].startswith("run main: ran (no frozen results; key ")
    assert lines[1].startswith("figures main: drew (")
    manifest = json.loads((project.freeze / "manifest.json").read_text())
    entry = manifest["experiments"]["main"]
    assert entry["inputs"]["config"]["max_steps"] == 15
    assert entry["inputs"]["generator/lora.py"] == freeze.sha256_file(PACKAGE / "lora.py")
    assert entry["files"]["arrays.npz"] == results["main"].arrays_sha256

    forbid(monkeypatch, "run_one")
    forbid(monkeypatch, "draw_figures")
    lines2, results2, figs2 = stages(project)
    assert lines2 == [f"run main: reused (inputs unchanged, key {entry['key'][:12]})",
                      lines2[1]]
    assert lines2[1].startswith("figures main: reused (inputs unchanged, key ")
    assert results2["main"].metrics == results["main"].metrics
    assert figs2 == figs


def test_config_edit_reruns_and_says_which_field(project, fake_draw):
    stages(project)
    write_post(project.root, experiments=TINY.replace("max_steps: 15", "max_steps: 9"))
    lines, results, _ = stages(project)
    assert lines[0].startswith("run main: ran (config max_steps 15 -> 9; key ")
    assert results["main"].metrics["steps"] == 9
    # New arrays, so new figures: the figure key holds the arrays' hash.
    assert lines[1].startswith("figures main: drew (arrays ")


def test_lora_source_edit_reruns(project, fake_draw, package_copy, monkeypatch):
    stages(project)
    with open(package_copy / "lora.py", "a") as fh:
        fh.write("\n# a change to the LoRA layer\n")
    calls = []
    real = pipeline.run_one
    monkeypatch.setattr(pipeline, "run_one", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    lines, _, _ = stages(project)
    assert calls == ["main"]
    assert lines[0].startswith("run main: ran (generator/lora.py changed; key ")


def test_plotting_edit_redraws_without_rerunning(project, package_copy, monkeypatch, fake_draw):
    _, _, figs = stages(project)
    assert fake_draw == ["main"]
    with open(package_copy / "figures.py", "a") as fh:
        fh.write("\n# a plotting change\n")
    forbid(monkeypatch, "run_one")
    lines, _, figs2 = stages(project)
    assert lines[0].startswith("run main: reused")
    assert lines[1].startswith("figures main: drew (generator/figures.py changed; key ")
    assert fake_draw == ["main", "main"]
    assert figs2 == figs


def test_force_reruns_everything(project, fake_draw):
    stages(project)
    lines, _, _ = stages(project, force=True)
    assert lines[0].startswith("run main: ran (--force; key ")
    assert lines[1].startswith("figures main: drew (--force; key ")


def test_edited_results_are_recomputed_without_frozen(project, fake_draw):
    stages(project)
    path = project.freeze / "main" / "results.json"
    path.write_text(path.read_text().replace('"steps": 15', '"steps": 14'))
    lines, results, _ = stages(project)
    assert lines[0].startswith("run main: ran (results.json was edited or truncated")
    assert results["main"].metrics["steps"] == 15


def test_truncated_arrays_are_recomputed_without_frozen(project, fake_draw):
    stages(project)
    npz = project.freeze / "main" / "arrays.npz"
    npz.write_bytes(npz.read_bytes()[:100])
    lines, results, _ = stages(project)
    assert lines[0].startswith("run main: ran (arrays.npz was edited or truncated")
    assert len(results["main"].arrays()["loss"]) == 15


# ---------------------------------------------------------------------------------------------
# The figures cache

def test_figure_cache_is_content_addressed_and_checked(project, fake_draw):
    _, results, figs = stages(project)
    key = freeze.digest(freeze.figure_inputs(results["main"].config, results["main"].arrays_sha256,
                                             lock=project.root / "requirements.lock"))
    folder = project.cache / "figures" / key
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([*figs["main"], "index.json"])
    assert cache.load_figures(project.cache, key) == figs["main"]
    # A damaged PNG is not served from the cache: the frozen copy is used and the cache repaired.
    victim = sorted(figs["main"])[0]
    (folder / victim).write_bytes(b"not a png")
    assert cache.load_figures(project.cache, key) is None
    lines, _, figs2 = stages(project)
    assert lines[1].startswith("figures main: reused frozen figures (inputs unchanged, key ")
    assert figs2 == figs and fake_draw == ["main"]
    assert (folder / victim).read_bytes() == figs["main"][victim]
    # Both copies damaged: drawn again, and both restored.
    frozen = project.freeze / "main" / "figures" / victim
    (folder / victim).write_bytes(b"not a png")
    frozen.write_bytes(b"not a png either")
    lines, _, figs3 = stages(project)
    assert lines[1].startswith("figures main: drew (not in the cache; key ")
    assert figs3 == figs and fake_draw == ["main", "main"]
    assert frozen.read_bytes() == figs["main"][victim]


def test_figures_are_frozen_with_the_results(project, fake_draw):
    _, _, figs = stages(project)
    folder = project.freeze / "main" / "figures"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == figs["main"]
    entry = json.loads((project.freeze / "manifest.json").read_text())["experiments"]["main"]
    assert entry["figures"]["files"] == {n: freeze.sha256_bytes(b) for n, b in figs["main"].items()}
    # A clean checkout (no .cache) builds its figures from the freeze, drawing nothing.
    shutil.rmtree(project.cache)
    lines, _, figs2 = stages(project)
    assert lines == [lines[0], lines[1]] and lines[0].startswith("run main: reused (")
    assert lines[1].startswith("figures main: reused frozen figures (inputs unchanged, key ")
    assert figs2 == figs and fake_draw == ["main"]
    # Re-running the experiment keeps the figure record, which its inputs still validate.
    lines, _, _ = stages(project, force=True)
    assert "figures" in json.loads((project.freeze / "manifest.json").read_text())[
        "experiments"]["main"]


def test_store_figures_leaves_no_partial_folder(tmp_path):
    class Boom(dict):
        def __getitem__(self, k):
            raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        cache.store_figures(tmp_path, "k1", Boom({"a.png": b"x"}))
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == []


def test_draw_pool_gives_the_bytes_of_drawing_in_process(project, monkeypatch):
    """Workers draw shares of the figures in other processes; the bytes must not change."""
    from generator.drawpool import DrawPool, split
    from generator.figures import FIGURE_NAMES, render_figures

    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "3")
    saved = pipeline.results_stage(project)["main"]
    pooled = pipeline.draw_figures(saved)
    assert pipeline._pool is not None, "three drawing processes were asked for"
    pipeline.close_draw_pool()
    assert pooled == render_figures(saved.config, saved.arrays())
    assert split(FIGURE_NAMES, 2) == [FIGURE_NAMES[0::2], FIGURE_NAMES[1::2]]
    # A worker that cannot do the job says so (None, and why), and the caller draws in-process.
    pool = DrawPool(2)
    try:
        assert pool.draw(project.root / "no-such-result", FIGURE_NAMES) is None
        assert "no results here" in pool.last_error
        assert pool.draw(project.root, FIGURE_NAMES, "os:system") is None
        assert "not a generator drawing function" in pool.last_error
        assert sorted(pool.draw(saved.path, FIGURE_NAMES[:1])) == [
            f"{FIGURE_NAMES[0]}.png", f"{FIGURE_NAMES[0]}@2x.png"]     # still serving
        proc = pool.proc
    finally:
        pool.close()
    assert pool.proc is None and proc.returncode == 0


def test_old_figure_sets_are_pruned(tmp_path):
    for i in range(5):
        cache.store_figures(tmp_path, f"key{i}", {"a.png": bytes([i])})
        os.utime(tmp_path / "figures" / f"key{i}", ns=(i * 10**9, i * 10**9))
    assert cache.prune_figures(tmp_path, keep=2) == ["key2", "key1", "key0"]
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["key3", "key4"]
    assert cache.load_figures(tmp_path, "key4") == {"a.png": b"\x04"}


# ---------------------------------------------------------------------------------------------
# Rendered posts

SITE_YML = ('title: "Cache test"\ndescription: "d"\nauthor: "A"\nurl: "https://example.org"\n')


def two_posts(root: Path) -> None:
    (root / "content" / "posts").mkdir(parents=True)
    (root / "content" / "site.yml").write_text(SITE_YML)
    for slug, day in (("alpha", 11), ("beta", 12)):
        (root / "content" / "posts" / f"{slug}.md").write_text(
            f"---\ntitle: Post {slug}\ndate: 2026-01-{day} 10:00:00 +0530\n---\n"
            f"Body of {slug}, with $x_1$ and\n\n```python\ndef {slug}():\n    return 1\n```\n")


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_only_the_edited_post_is_rendered_again(tmp_path, monkeypatch):
    from generator import site as site_mod

    two_posts(tmp_path)
    project = Project(tmp_path)
    site_mod.build(project)
    calls: list[str] = []
    real = site_mod.render_post
    monkeypatch.setattr(site_mod, "render_post",
                        lambda info, *a, **k: calls.append(info.slug) or real(info, *a, **k))
    before = tree(project.site)

    alpha = project.posts / "alpha.md"
    alpha.write_text(alpha.read_text().replace("Body of alpha", "New body of alpha"))
    site_mod.build(project)
    assert calls == ["alpha"]
    after = tree(project.site)
    assert b"New body of alpha" in after["html/alpha/index.html"]
    assert after["html/beta/index.html"] == before["html/beta/index.html"]

    calls.clear()
    site_mod.build(project)                     # nothing changed: nothing rendered
    assert calls == [] and tree(project.site) == after
    # Without the cache every post renders, to the same bytes.
    shutil.rmtree(project.cache / "posts")
    site_mod.build(project)
    assert calls == ["alpha", "beta"] and tree(project.site) == after
    assert len(list((project.cache / "posts").glob("*.json"))) == 2
    # A site setting reaches every post: both render again, and old entries are pruned.
    calls.clear()
    (project.content / "site.yml").write_text(SITE_YML.replace("Cache test", "Renamed"))
    site_mod.build(project)
    assert calls == ["alpha", "beta"]
    assert len(list((project.cache / "posts").glob("*.json"))) == 2


def test_post_key_covers_results_and_refuses_opaque_data(tmp_path):
    from generator.site import load_site_config, post_info

    two_posts(tmp_path)
    project = Project(tmp_path)
    site = load_site_config(project)
    from generator.content import read_post
    info = post_info(read_post(project.posts / "alpha.md"), site)
    text = (project.posts / "alpha.md").read_bytes()
    base = cache.post_render_key(text, info, site, {}, {}, {"d": [1, 2]})
    assert base == cache.post_render_key(text, info, site, {}, {}, {"d": (1, 2)})
    assert base != cache.post_render_key(text + b" ", info, site, {}, {}, {"d": [1, 2]})
    assert base != cache.post_render_key(text, info, site, {}, {"main": ["a.png"]}, {"d": [1, 2]})
    assert base != cache.post_render_key(text, info, site, {}, {}, {"d": [1, 3]})
    assert cache.post_render_key(text, info, site, {}, {}, {"d": object()}) is None


def test_figures_drawn_by_the_worker_arrive_while_the_build_goes_on(project, monkeypatch):
    from generator.figures import render_figures

    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "2")
    results = pipeline.results_stage(project)
    figs = pipeline.figures_stage(project, results)
    pending = figs["main"]
    assert isinstance(pending, pipeline.PendingFigures)
    # The names are there at once (pages can be rendered); nothing is stored yet.
    assert "after_lora@2x.png" in pending and len(pending) == 12
    assert not (project.freeze / "main" / "figures").exists()
    pipeline.close_draw_pool()                  # collects what is still being drawn
    assert pipeline._pending == [] and pipeline._pool is None
    saved = results["main"]
    assert dict(pending) == render_figures(saved.config, saved.arrays())
    assert {p.name: p.read_bytes() for p in (project.freeze / "main" / "figures").iterdir()} \
        == dict(pending)
    entry = json.loads((project.freeze / "manifest.json").read_text())["experiments"]["main"]
    assert set(entry["figures"]["files"]) == set(pending)
    # The next build finds them in the cache.
    lines, _, figs2 = stages(project)
    assert lines[1].startswith("figures main: reused (inputs unchanged")
    assert figs2["main"] == dict(pending)


def test_data_digest_is_canonical_and_refuses_opaque_values():
    assert cache.data_digest({"a": [1, 2], "b": 1}) == cache.data_digest({"b": 1, "a": (1, 2)})
    assert cache.data_digest({"a": [1, 2]}) != cache.data_digest({"a": [1, 3]})
    assert cache.data_digest({"a": 1}) != cache.data_digest({"a": 1.5})
    assert cache.data_digest({"a": object()}) is None


def test_posts_reading_the_same_data_share_one_load_and_rerender_when_it_changes(
        tmp_path, monkeypatch):
    from generator import site as site_mod

    two_posts(tmp_path)
    for slug in ("alpha", "beta"):
        path = tmp_path / "content" / "posts" / f"{slug}.md"
        path.write_text(path.read_text().replace("---\nBody", "data: [shared]\n---\n"
                                                 "Value {{ data.shared.value }}. Body", 1))
    value = {"value": 1}
    loads: list[int] = []
    monkeypatch.setitem(site_mod.DATA_LOADERS, "shared",
                        lambda project, results: loads.append(1) or dict(value))
    calls: list[str] = []
    real = site_mod.render_post
    monkeypatch.setattr(site_mod, "render_post",
                        lambda info, *a, **k: calls.append(info.slug) or real(info, *a, **k))
    project = Project(tmp_path)
    site_mod.build(project)
    assert loads == [1] and calls == ["alpha", "beta"]
    calls.clear()
    site_mod.build(project)
    assert calls == []                              # same data: both reused
    value["value"] = 2
    calls.clear()
    site_mod.build(project)
    assert calls == ["alpha", "beta"]               # the data changed: both rendered again
    for slug in ("alpha", "beta"):
        assert b"Value 2. Body" in (project.site / "html" / slug / "index.html").read_bytes()
    # A value without a JSON form is never cached: rendered every time.
    value["value"] = object()
    monkeypatch.setitem(site_mod.DATA_LOADERS, "shared",
                        lambda project, results: {"value": "opaque", "x": value["value"]})
    calls.clear()
    site_mod.build(project)
    site_mod.build(project)
    assert calls == ["alpha", "beta", "alpha", "beta"]


def test_a_post_is_parsed_once_per_content(tmp_path):
    """read_post reuses its parse while the file's bytes are unchanged (a build reads each post
    in several stages); any change of bytes is parsed again, and a bad post fails every time."""
    from generator.content import read_post
    from generator.errors import ContentError

    path = tmp_path / "p.md"
    path.write_text("---\ntitle: One\n---\nBody.\n")
    first = read_post(path)
    assert read_post(path) is first
    path.write_text("---\ntitle: Two\n---\nBody.\n")      # same length, new bytes
    second = read_post(path)
    assert second is not first and second.meta["title"] == "Two"
    path.write_text("---\ntitle: Two\nbogus_key: 1\n---\nBody.\n")
    for _ in range(2):
        with pytest.raises(ContentError, match="unknown front matter key 'bogus_key'"):
            read_post(path)
    path.write_text("---\ntitle: One\n---\nBody.\n")
    assert read_post(path).meta["title"] == "One"
