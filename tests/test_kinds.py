"""Experiment kinds as plug-ins: a kind defined in a test module (tests/kinds/sums.py, numpy
only), named in site.yml, goes through the cache, the freeze, --frozen, --explain, verify,
figure markup and both output trees like the built-in ones; and the LoRA kind's figures and
metrics follow the projection LoRA sits on."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import write_post
from generator.cli import main
from generator.core.fsio import load_npz, npz_bytes, sha256_bytes

REPO_KINDS = Path(__file__).resolve().parent / "kinds"
SITE_YML = ('title: "Kinds"\ndescription: "d"\nauthor: "A"\nurl: "https://example.org"\n'
            'kinds: [kinds.sums]\n')
WALK = "  walk: {kind: sums, steps: 20, seed: 3}\n"
BODY = ("The walk ends at {{ walk.final | fmt(3) }}.\n\n"
        "{% call figure('walk', experiment='walk') %}The walk, step by step.{% endcall %}\n")


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")
    write_post(tmp_path, experiments=WALK, body=BODY)
    (tmp_path / "content" / "site.yml").write_text(SITE_YML)
    return tmp_path


def cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res.exit_code, res.output            # stdout and stderr, as a terminal shows them


def test_a_kind_of_the_projects_own_builds_caches_freezes_and_verifies(project):
    code, out = cli("build", "--root", project, "--explain")
    assert code == 0, out
    assert "run walk: ran (no frozen results; key " in out
    assert "figures walk: drew (no record of a previous run; key " in out
    freeze = project / "content" / "_freeze"
    entry = json.loads((freeze / "manifest.json").read_text())["experiments"]["walk"]
    assert entry["kind"] == "sums" and entry["inputs"]["config"] == {"steps": 20, "seed": 3,
                                                                     "scale": 1.0}
    assert set(entry["inputs"]["kind-module"]) == {"kinds.sums"}     # keyed by its own file
    assert sorted(p.name for p in (freeze / "walk").iterdir()) == ["figures", "summary.json",
                                                                   "values.npz"]
    summary = json.loads((freeze / "walk" / "summary.json").read_text())
    # Figure markup and both output trees, with no special case for the kind.
    html = (project / "site" / "html" / "post" / "index.html").read_text()
    assert f"The walk ends at {summary['final']:.3f}." in html
    assert '<figure id="fig-walk-walk">' in html and 'src="/assets/images/walk/walk.png"' in html
    assert 'alt="The random walk over 20 steps"' in html
    assert (project / "site" / "html" / "assets" / "images" / "walk" / "walk@2x.png").is_file()
    jekyll = next((project / "site" / "jekyll" / "_posts").glob("*-post.md")).read_text()
    assert "![The random walk over 20 steps](/assets/images/walk/walk.png)" in jekyll
    assert (project / "site" / "jekyll" / "assets" / "images" / "walk" / "walk.png").is_file()

    # Reused while nothing changed; a frozen build from the freeze alone gives the same site.
    code, out = cli("build", "--root", project, "--explain", "--force")
    assert code == 0 and "run walk: ran (--force; key " in out
    assert "identical to the frozen results" in out
    before = {p.relative_to(project / "site"): p.read_bytes()
              for p in sorted((project / "site").rglob("*")) if p.is_file()}
    import shutil

    shutil.rmtree(project / ".cache")
    shutil.rmtree(project / "site")
    code, out = cli("build", "--root", project, "--frozen", "--explain")
    assert code == 0, out
    assert "run walk: reused frozen results (inputs unchanged" in out
    assert "figures walk: reused frozen figures (inputs unchanged" in out
    assert {p.relative_to(project / "site"): p.read_bytes()
            for p in sorted((project / "site").rglob("*")) if p.is_file()} == before

    # verify re-computes it and compares it with the freeze.
    code, out = cli("verify", "--root", project, "-q")
    assert code == 0 and out.startswith("walk: bit-exact match with the frozen results")
    values = load_npz(freeze / "walk" / "values.npz")
    values["walk"] = values["walk"].copy()
    values["walk"][4] += 1.0
    data = npz_bytes(values)
    (freeze / "walk" / "values.npz").write_bytes(data)
    manifest = json.loads((freeze / "manifest.json").read_text())
    manifest["experiments"]["walk"]["files"]["values.npz"] = sha256_bytes(data)
    (freeze / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    code, out = cli("verify", "--root", project, "-q")
    assert code == 1
    assert "walk: arrays.walk: 1 of 20 values differ, max |diff| 1 at [4]" in out

    # A changed setting: a frozen build names the experiment and the setting.
    write_post(project, experiments=WALK.replace("steps: 20", "steps: 21"), body=BODY)
    code, out = cli("build", "--root", project, "--frozen")
    assert code == 1
    assert "frozen results of experiment 'walk' are stale: config steps 20 -> 21" in out
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("experiments, message", [
    ("  walk: {kind: nope}\n", "post.md: experiments.walk.kind: no experiment kind named 'nope' "
                               "(known kinds: audit, lora, steering, sums, transformer)"),
    ("  walk: {kind: 3}\n", "post.md: experiments.walk.kind: must name an experiment kind, "
                            "got 3"),
    ("  walk: {kind: sums, steps: 1}\n", "post.md: experiments.walk.steps: must be an integer "
                                         ">= 2, got 1"),
    ("  walk: {kind: sums, stepz: 3}\n", "post.md: experiments.walk.stepz: unknown key 'stepz' "
                                         "(did you mean 'steps'?)"),
    ("  main: {kind: audit, seeds: 0}\n", "post.md: experiments.main.seeds: must be an integer "
                                          ">= 1, got 0"),
])
def test_kind_and_settings_errors_are_one_line(project, experiments, message):
    write_post(project, experiments=experiments, body="Hello.\n")
    code, out = cli("build", "--root", project, "-q")
    assert code == 1
    assert len(out.strip().splitlines()) == 1 and message in out, out


def test_a_kind_module_that_is_not_one_is_refused(project):
    (project / "content" / "site.yml").write_text(SITE_YML.replace("kinds.sums", "json"))
    code, out = cli("build", "--root", project, "-q")
    assert code == 1
    assert "kinds: module 'json' defines no KIND" in out and len(out.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# The LoRA kind follows the projection it adapts

TINY = dict(d_model=16, seq_len=6, key=2, max_steps=40, stop_prob=0.6)


@pytest.mark.parametrize("site, noun, target", [("q", "query", 0), ("k", "key", 2),
                                                ("v", "value", 2)])
def test_figures_and_metrics_follow_the_adapted_site(site, noun, target):
    from generator.plots import lora_figures as lf
    from generator.plots.common import LIGHT
    from generator.science.config import ExperimentConfig
    from generator.science.experiment import run_experiment

    cfg = ExperimentConfig(site=site, **TINY)
    result = run_experiment(cfg)
    m = result.metrics
    assert m["adapted"] == site and m["target_token"] == target
    # Only the adapted projection moves (nothing moves with LoRA on V: no gradient reaches
    # it); its family says how, about the right token.
    moved = {p: m[f"d{p}_norm_target"] for p in "qkv"}
    assert all(moved[p] == 0 for p in "qkv" if p != site)
    assert len(m[f"cos_{site}"]) == cfg.seq_len
    if site != "v":
        assert moved[site] > 0 and m[f"cos_{site}_target"] < 1
    alt = lf.FIGURES.alt_texts(cfg)
    plural = {"query": "queries", "key": "keys", "value": "values"}[noun]
    assert alt["token_rotation_lora"] == ("Per-token cosine similarity between "
                                          f"{plural} before and after training, with the line "
                                          f"at {lf.COS_KEPT} that the text uses")
    assert alt["token_rotation_magnitude"] == f"Per-token norm of the {noun} update after training"
    prep = lf._prepare(cfg, result.arrays)
    letter, index = lf.SIDES[site].letter, lf.SIDES[site].index
    x = f"{letter}_{index}"
    for name, title, extra in (
            ("token_rotation_lora", rf"{noun.capitalize()} direction: $\cos({x}, {x}')$",
             [f"{lf.COS_KEPT:g}: kept its direction"]),
            ("token_norm_ratio", rf"{noun.capitalize()} length: $\Vert {x}'\Vert / \Vert {x}\Vert$",
             ["0.9 to 1.1: a rotation", "1: length kept"]),
            ("token_rotation_magnitude",
             rf"{noun.capitalize()} update: $\Vert \Delta {x}\Vert = \Vert {x}' - {x}\Vert$", [])):
        fig = getattr(lf, name)(cfg, prep, LIGHT)
        ax = fig.axes[0]
        assert ax.get_title() == title
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == [f"target {noun} {target}", f"other {plural}"] + extra
        bars = [tuple(round(c, 3) for c in p.get_facecolor()[:3]) for p in ax.containers[0]]
        red = bars[target]
        assert bars.count(red) == 1                     # the target token alone is marked
        lf.pyplot()[1].close(fig)
    score_after = lf.score_after_lora(cfg, prep, LIGHT).axes[0].get_title()
    assert score_after.startswith({"q": r"Scores $S' = Q'K^\top", "k": r"Scores $S' = QK'^\top",
                                   "v": r"Scores $S' = S$ (LoRA on $V$)"}[site])
    lf.pyplot()[1].close("all")
    if site == "v":
        # The scores do not depend on V: training cannot reach the target.
        assert not m["reached_stop_prob"] and np.isclose(m["dscore_target"], 0)


CONSTANT_KIND = '''from generator.kinds.base import Kind


class Constant(Kind):
    name = "constant"
    result_files = ("value.json",)

    def parse(self, mapping, *, source=None, prefix=""):
        return dict(mapping or {})

    def settings_dict(self, settings):
        return dict(settings)

    def compute(self, name, settings, progress=None):
        return {"value.json": b"41\\n"}

    def load(self, folder, name):
        return int((folder / "value.json").read_text())

    def compare(self, files, folder, atol, rtol):
        return None

    def view(self, name, loaded):
        return {"value": loaded + 1}


KIND = Constant()
'''


def test_an_edit_to_a_projects_own_kind_re_renders_the_posts_that_use_it(tmp_path):
    """What a body sees of a result is the kind's view(): for a kind outside the package its
    module's source is part of the rendered post's cache key, as the package's source is."""
    import os
    import subprocess
    import sys

    kinds = tmp_path / "mykinds"
    kinds.mkdir()
    (kinds / "constkind.py").write_text(CONSTANT_KIND)
    root = tmp_path / "project"
    write_post(root, experiments="  c: {kind: constant}\n", body="Value {{ c.value }}.\n")
    (root / "content" / "site.yml").write_text(SITE_YML.replace("kinds.sums", "constkind"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(kinds), *sys.path]))

    def build_page() -> str:
        subprocess.run([sys.executable, "-m", "generator", "build", "--root", str(root), "-q"],
                       check=True, env=env, cwd=root)
        return (root / "site" / "html" / "post" / "index.html").read_text()
    assert "Value 42." in build_page()
    (kinds / "constkind.py").write_text(CONSTANT_KIND.replace("loaded + 1", "loaded + 100"))
    assert "Value 141." in build_page()


def test_a_project_kind_is_keyed_by_the_source_it_was_imported_from(tmp_path, monkeypatch):
    """A warm process (lora-site serve) keeps running the module it imported while the file is
    edited: its results are keyed by what computed them, so the freeze never records the old
    code's numbers under the new code's key."""
    import hashlib
    import sys

    from generator.kinds.base import SOURCE_HASH, Kinds
    from generator.stages.run import outside_sources

    module = tmp_path / "editedkind.py"
    module.write_text((REPO_KINDS / "sums.py").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "editedkind", raising=False)
    try:
        kinds = Kinds(extra_modules=("editedkind",))
        imported = hashlib.sha256(module.read_bytes()).hexdigest()
        assert getattr(sys.modules["editedkind"], SOURCE_HASH) == imported
        module.write_text(module.read_text() + "\n# edited while the process runs\n")
        Kinds(extra_modules=("editedkind",))            # the next build: the same module object
        kind = kinds.get("sums")
        d = type("D", (), {"kind": kind})()
        ctx = type("Ctx", (), {"hashes": type("H", (), {"sha256": staticmethod(
            lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest())})()})()
        assert outside_sources(ctx, d) == {"kind-module": {"editedkind": imported}}
    finally:
        sys.modules.pop("editedkind", None)
