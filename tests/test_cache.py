"""Content-addressed caching of the run and figures stages: what re-runs, what is reused, why."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import write_post
from generator.core import keys
from generator.core.fsio import sha256_bytes, sha256_file
from generator.core.keys import changed_inputs, digest
from generator.core.project import Project
from generator.kinds.lora_run import KIND as LORA
from generator.science.config import ExperimentConfig
from generator.stages import run
from generator.stages.figcache import FigureCache
from generator.stages.run import StageOptions
from generator.stages.workers import PendingFigures
from helpers import build, context, declared

TINY = "  main: {d_model: 8, seq_len: 4, key: 2, max_steps: 15}\n"
PACKAGE = Path(keys.__file__).resolve().parents[1]


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
    monkeypatch.setattr(keys, "package_dir", lambda: copy)
    return copy


@pytest.fixture
def fake_draw(monkeypatch) -> list[str]:
    """Drawing stands in for matplotlib where only the caching is under test: bytes that depend
    on the arrays, like real figures. Returns the names of the experiments drawn."""
    drawn: list[str] = []
    from generator.kinds.lora_results import load_result

    def draw(self, folder, names):
        saved = load_result(folder)
        drawn.append(saved.name)
        return {"a.png": b"PNG " + saved.arrays_sha256.encode(), "a@2x.png": b"PNG2"}
    monkeypatch.setattr(type(LORA), "draw", draw)
    return drawn


def stages(project: Project, **kw) -> tuple[list[str], dict, dict]:
    """Both stages in a fresh context, as a build runs them: (explain lines, results, figures)."""
    lines: list[str] = []
    with context(project) as ctx:
        exps = declared(ctx)
        opts = StageOptions(explain=lines.append, **kw)
        results = run.results_stage(ctx, exps, opts)
        figs = run.figures_stage(ctx, exps, results, opts)
        return lines, results, {name: dict(images) for name, images in figs.items()}


def forbid(monkeypatch, what: str) -> None:
    def boom(*a, **k):
        raise AssertionError(f"{what} was called")
    if what == "compute":
        monkeypatch.setattr(run, "compute_here", boom)
    else:
        monkeypatch.setattr(type(LORA), "draw", boom)


def inputs_of(cfg: ExperimentConfig, stage: str, root: Path | None = None,
              arrays_sha: str = "ab" * 32) -> dict:
    """The run or figures inputs of a LoRA experiment with these settings."""
    lock = (root / "requirements.lock") if root else None
    if stage == "run":
        return keys.stage_inputs(settings=cfg.to_dict(), roots=LORA.run_roots,
                                 libraries=LORA.run_libraries, sha256=sha256_file, lock=lock)
    return keys.stage_inputs(settings=cfg.to_dict(), roots=LORA.figure_roots,
                             libraries=LORA.figure_libraries, sha256=sha256_file, lock=lock,
                             extra={"results": {"arrays.npz": arrays_sha}})


# ---------------------------------------------------------------------------------------------
# Which sources a stage depends on

def test_run_closure_is_what_experiment_imports():
    got = keys.module_closure(["science.experiment"])
    assert got == ["generator/core/__init__.py", "generator/core/errors.py",
                   "generator/core/numerics.py", "generator/science/__init__.py",
                   "generator/science/attention.py", "generator/science/config.py",
                   "generator/science/experiment.py", "generator/science/lora.py",
                   "generator/science/metrics.py"]
    # The LoRA kind's results are also keyed by how they are written.
    assert keys.module_closure(LORA.run_roots) == sorted(
        got + ["generator/core/fsio.py", "generator/kinds/__init__.py",
               "generator/kinds/lora_results.py"])


def test_figures_closure_excludes_training_code():
    got = keys.module_closure(LORA.figure_roots)
    assert "generator/plots/lora_figures.py" in got and "generator/science/config.py" in got
    assert "generator/science/lora.py" not in got
    assert "generator/science/experiment.py" not in got


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
    sub = pkg / "sub"
    sub.mkdir()
    (sub / "__init__.py").write_text("")
    (sub / "s.py").write_text("from ..h import q\nfrom ... import nothing\n")
    (pkg / "g.py").write_text("from .sub import s\n")
    assert keys.module_closure(["a"], pkg) == [
        "generator/a.py", "generator/b.py", "generator/c.py", "generator/d.py", "generator/e.py",
        "generator/f.py", "generator/g.py", "generator/h.py", "generator/sub/__init__.py",
        "generator/sub/s.py"]


def test_editing_lora_changes_run_inputs_but_not_figure_inputs(package_copy):
    cfg = ExperimentConfig()
    run0, fig0 = inputs_of(cfg, "run"), inputs_of(cfg, "figures")
    with open(package_copy / "science" / "lora.py", "a") as fh:
        fh.write("\n# an edit\n")
    assert changed_inputs(run0, inputs_of(cfg, "run")) == ["generator/science/lora.py changed"]
    assert changed_inputs(fig0, inputs_of(cfg, "figures")) == []
    with open(package_copy / "plots" / "lora_figures.py", "a") as fh:
        fh.write("\n# an edit\n")
    assert changed_inputs(fig0, inputs_of(cfg, "figures")) == [
        "generator/plots/lora_figures.py changed"]


def test_versions_are_read_without_importing():
    import numpy

    assert keys.installed_version("numpy") == numpy.__version__
    assert keys.installed_version("no-such-distribution-xyz") is None
    assert inputs_of(ExperimentConfig(threads=2), "run")["threads"] == 2


def test_missing_library_is_held_to_the_lock_pin(tmp_path, monkeypatch):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# pins\nnumpy==2.4.6\ntorch==2.13.0\n")
    real = keys.installed_version
    monkeypatch.setattr(keys, "installed_version",
                        lambda name: None if name == "torch" else real(name))
    assert keys.library_versions(("torch",), lock) == {"torch": "pinned:2.13.0"}
    recorded = {"libraries": {"torch": "2.13.0+cpu"}}
    assert changed_inputs(recorded, {"libraries": {"torch": "pinned:2.13.0"}}) == []
    assert changed_inputs(recorded, {"libraries": {"torch": "pinned:2.12.0"}}) == [
        "torch 2.13.0+cpu -> pinned:2.12.0"]
    assert keys.library_versions(("torch",), tmp_path / "absent.lock") == {"torch": "absent"}


# ---------------------------------------------------------------------------------------------
# The run stage

def test_second_build_reuses_the_run_and_the_figures(project, monkeypatch):
    lines, results, figs = stages(project)
    assert lines[0].startswith("run main: ran (no frozen results; key ")
    assert lines[1].startswith("figures main: drew (")
    manifest = json.loads((project.freeze / "manifest.json").read_text())
    entry = manifest["experiments"]["main"]
    assert entry["inputs"]["config"]["max_steps"] == 15
    assert entry["inputs"]["sources"]["generator/science/lora.py"] == \
        sha256_file(PACKAGE / "science" / "lora.py")
    assert entry["files"]["arrays.npz"] == results["main"].arrays_sha256

    forbid(monkeypatch, "compute")
    forbid(monkeypatch, "draw")
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
    assert lines[1].startswith("figures main: drew (config max_steps 15 -> 9; arrays.npz changed; ")


def test_lora_source_edit_reruns(project, fake_draw, package_copy, monkeypatch):
    stages(project)
    with open(package_copy / "science" / "lora.py", "a") as fh:
        fh.write("\n# a change to the LoRA layer\n")
    calls = []
    real = run.compute_here
    monkeypatch.setattr(run, "compute_here", lambda d, o: calls.append(d.name) or real(d, o))
    lines, _, _ = stages(project)
    assert calls == ["main"]
    assert lines[0].startswith("run main: ran (generator/science/lora.py changed; key ")


def test_plotting_edit_redraws_without_rerunning(project, package_copy, monkeypatch, fake_draw):
    _, _, figs = stages(project)
    assert fake_draw == ["main"]
    with open(package_copy / "plots" / "lora_figures.py", "a") as fh:
        fh.write("\n# a plotting change\n")
    forbid(monkeypatch, "compute")
    lines, _, figs2 = stages(project)
    assert lines[0].startswith("run main: reused")
    assert lines[1].startswith("figures main: drew (generator/plots/lora_figures.py changed; key ")
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
    key = digest(inputs_of(results["main"].config, "figures", project.root,
                           results["main"].arrays_sha256))
    folder = project.cache / "figures" / key
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([*figs["main"], "index.json"])
    cache = FigureCache(project.cache)
    assert cache.load(key) == figs["main"]
    # A damaged PNG is not served from the cache: the frozen copy is used and the cache repaired.
    victim = sorted(figs["main"])[0]
    (folder / victim).write_bytes(b"not a png")
    assert cache.load(key) is None
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
    assert entry["figures"]["files"] == {n: sha256_bytes(b) for n, b in figs["main"].items()}
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
        FigureCache(tmp_path).store("k1", Boom({"a.png": b"x"}))
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == []


def test_draw_pool_gives_the_bytes_of_drawing_in_process(project, monkeypatch):
    """Workers draw shares of the figures in other processes; the bytes must not change."""
    from generator.plots.lora_figures import FIGURE_NAMES, FIGURES
    from generator.stages.workers import DrawPool, split

    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "3")
    with context(project) as ctx:
        exps = declared(ctx)
        saved = run.results_stage(ctx, exps)["main"]
        workers = run.workers_of(ctx)
        pooled = workers.start_pool().draw(LORA.module, saved.path, FIGURE_NAMES)
        assert workers.pool is not None and workers.pool.processes == 3
    assert workers.pool is None                         # ended with its context
    assert pooled == FIGURES.draw(saved.config, saved.arrays())
    assert split(FIGURE_NAMES, 2) == [FIGURE_NAMES[0::2], FIGURE_NAMES[1::2]]
    # A worker that cannot do the job says so (None, and why), and the caller draws in-process.
    pool = DrawPool(2)
    try:
        assert pool.draw(LORA.module, project.root / "no-such-result", FIGURE_NAMES) is None
        assert "no results here" in pool.last_error
        assert pool.draw("os", project.root, FIGURE_NAMES) is None
        assert "not a kind module" in pool.last_error
        assert sorted(pool.draw(LORA.module, saved.path, FIGURE_NAMES[:1])) == [
            f"{FIGURE_NAMES[0]}.png", f"{FIGURE_NAMES[0]}@2x.png"]     # still serving
        proc = pool.proc
    finally:
        pool.close()
    assert pool.proc is None and proc.returncode == 0


def test_old_figure_sets_are_pruned(tmp_path):
    cache = FigureCache(tmp_path)
    for i in range(5):
        cache.store(f"key{i}", {"a.png": bytes([i])})
        os.utime(tmp_path / "figures" / f"key{i}", ns=(i * 10**9, i * 10**9))
    assert cache.prune(keep=2) == ["key2", "key1", "key0"]
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["key3", "key4"]
    assert cache.load("key4") == {"a.png": b"\x04"}


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


def _count_renders(monkeypatch) -> list[str]:
    from generator.render import post as post_mod

    calls: list[str] = []
    real = post_mod.render_post
    monkeypatch.setattr(post_mod, "render_post",
                        lambda ctx, info, *a, **k: calls.append(info.slug) or real(ctx, info, *a, **k))
    return calls


def test_only_the_edited_post_is_rendered_again(tmp_path, monkeypatch):
    two_posts(tmp_path)
    project = Project(tmp_path)
    build(project)
    calls = _count_renders(monkeypatch)
    before = tree(project.site)

    alpha = project.posts / "alpha.md"
    alpha.write_text(alpha.read_text().replace("Body of alpha", "New body of alpha"))
    build(project)
    assert calls == ["alpha"]
    after = tree(project.site)
    assert b"New body of alpha" in after["html/alpha/index.html"]
    assert after["html/beta/index.html"] == before["html/beta/index.html"]

    calls.clear()
    build(project)                              # nothing changed: nothing rendered
    assert calls == [] and tree(project.site) == after
    # Without the cache every post renders, to the same bytes.
    shutil.rmtree(project.cache / "posts")
    build(project)
    assert calls == ["alpha", "beta"] and tree(project.site) == after
    assert len(list((project.cache / "posts").glob("*.json"))) == 2
    # A site setting reaches every post: both render again, and old entries are pruned.
    calls.clear()
    (project.content / "site.yml").write_text(SITE_YML.replace("Cache test", "Renamed"))
    build(project)
    assert calls == ["alpha", "beta"]
    assert len(list((project.cache / "posts").glob("*.json"))) == 2


def test_post_key_covers_its_inputs_and_refuses_opaque_ones(tmp_path):
    from generator.authoring.post_info import post_info
    from generator.authoring.posts import read_post
    from generator.authoring.site_config import load_site_config
    from generator.render.postcache import post_cache

    two_posts(tmp_path)
    project = Project(tmp_path)
    site = load_site_config(project)
    with context(project) as ctx:
        info = post_info(read_post(ctx, project.posts / "alpha.md"), site)
        cache = post_cache(ctx)
        files = {"main": {"kind": "lora", "files": {"arrays.npz": "ab"}}}
        base = cache.key(info, site, files, {}, ["html"])
        assert base == cache.key(info, site, {"main": {"files": {"arrays.npz": "ab"},
                                                       "kind": "lora"}}, {}, ["html"])
        assert base != cache.key(info, site, {"main": {"kind": "lora", "files": {
            "arrays.npz": "cd"}}}, {}, ["html"])
        assert base != cache.key(info, site, files, {"main": ["a.png"]}, ["html"])
        assert base != cache.key(info, site, files, {}, ["html", "jekyll"])
        assert cache.key(info, site, {"main": object()}, {}, ["html"]) is None
    (project.posts / "alpha.md").write_text((project.posts / "alpha.md").read_text() + " ")
    with context(project) as ctx:
        assert post_cache(ctx).key(info, site, files, {}, ["html"]) != base


def test_figures_drawn_by_the_worker_arrive_while_the_build_goes_on(project, monkeypatch):
    from generator.plots.lora_figures import FIGURES

    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "2")
    with context(project) as ctx:
        exps = declared(ctx)
        results = run.results_stage(ctx, exps)
        figs = run.figures_stage(ctx, exps, results)
        pending = figs["main"]
        assert isinstance(pending, PendingFigures)
        # The names are there at once (pages can be rendered); nothing is stored yet.
        assert "after_lora@2x.png" in pending and len(pending) == 12
        assert not (project.freeze / "main" / "figures").exists()
        workers = run.workers_of(ctx)
        workers.finish_drawing()                # collects what is still being drawn
        assert workers.pending == [] and workers.pool is None
        saved = results["main"]
        assert dict(pending) == FIGURES.draw(saved.config, saved.arrays())
        # Staged as they arrive, committed by the next save (a build: with site/).
        assert not (project.freeze / "main" / "figures").exists()
        run.store_of(ctx).save()
    assert {p.name: p.read_bytes() for p in (project.freeze / "main" / "figures").iterdir()} \
        == dict(pending)
    entry = json.loads((project.freeze / "manifest.json").read_text())["experiments"]["main"]
    assert set(entry["figures"]["files"]) == set(pending)
    # The next build finds them in the cache.
    lines, _, figs2 = stages(project)
    assert lines[1].startswith("figures main: reused (inputs unchanged")
    assert figs2["main"] == dict(pending)


def test_posts_reading_the_same_result_share_one_load_and_rerender_when_it_changes(
        tmp_path, monkeypatch):
    """Two posts read one experiment's data: it is computed and loaded once per build, both
    are reused while its files are unchanged, and both render again when they change."""
    from kinds.sums import Sums

    two_posts(tmp_path)
    (tmp_path / "content" / "site.yml").write_text(SITE_YML + "kinds: [kinds.sums]\n")
    for slug in ("alpha", "beta"):
        path = tmp_path / "content" / "posts" / f"{slug}.md"
        path.write_text(path.read_text().replace(
            "---\nBody", "experiments:\n  walk: {kind: sums, steps: 5}\ndata: [walk]\n---\n"
            "Final {{ data.walk.final | fmt(3) }}. Body", 1))
    loads: list[str] = []
    real_load = Sums.load
    # The stage's loads name the experiment (the kind's own reads, to compare or draw, do not).
    monkeypatch.setattr(Sums, "load", lambda self, folder, name: (loads.append(name) if name
                                                                  else None)
                        or real_load(self, folder, name))
    calls = _count_renders(monkeypatch)
    project = Project(tmp_path)
    build(project)
    assert loads == ["walk"] and calls == ["alpha", "beta"]
    calls.clear()
    build(project)
    assert calls == []                              # same result: both reused
    for slug in ("alpha", "beta"):
        path = tmp_path / "content" / "posts" / f"{slug}.md"
        path.write_text(path.read_text().replace("steps: 5", "steps: 6"))
    calls.clear()
    build(project)
    assert calls == ["alpha", "beta"]               # a new result: both rendered again
    final = Sums().load(project.freeze / "walk", "walk").summary["final"]
    for slug in ("alpha", "beta"):
        assert f"Final {final:.3f}. Body".encode() in \
            (project.site / "html" / slug / "index.html").read_bytes()


def test_a_post_is_parsed_once_per_content(tmp_path):
    """read_post reuses its parse while the file's bytes are unchanged (a build reads each post
    in several stages); any change of bytes is parsed again, and a bad post fails every time."""
    from generator.authoring.posts import read_post
    from generator.core.errors import ContentError

    path = tmp_path / "p.md"
    path.write_text("---\ntitle: One\n---\nBody.\n")
    with context(tmp_path) as ctx:
        first = read_post(ctx, path)
        assert read_post(ctx, path) is first
        path.write_text("---\ntitle: Two\n---\nBody.\n")      # same length, new bytes
        second = read_post(ctx, path)
        assert second is not first and second.meta["title"] == "Two"
        path.write_text("---\ntitle: Two\nbogus_key: 1\n---\nBody.\n")
        for _ in range(2):
            with pytest.raises(ContentError, match="unknown front matter key 'bogus_key'"):
                read_post(ctx, path)
        path.write_text("---\ntitle: One\n---\nBody.\n")
        assert read_post(ctx, path).meta["title"] == "One"
    # Another context parses anew: nothing is shared between contexts.
    with context(tmp_path) as ctx:
        assert read_post(ctx, path) is not first
