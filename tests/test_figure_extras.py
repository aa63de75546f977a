"""What a reader gets beside each figure, in both outputs: the full-resolution file one click
away, and the data it was drawn from (the experiment's result files, the audit's claims as
CSV), published with the site byte for byte as the build saved them."""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from generator.core.project import Project
from generator.kinds.claims_audit import CLAIMS_COLUMNS, claims_csv
from helpers import build
from site_checks import AUDIT_FREEZE, make_project

GEOMETRY = "lora-attention-geometry"
AUDIT = "lora-attention-claims-audit"


@pytest.fixture(scope="module", params=["", "/repo"])
def site(request, tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("figextras"))
    out = root / "out"
    build(Project(root), baseurl=request.param or None, out=out)
    return root, out, request.param


_FIGURE = re.compile(
    r'<figure id="(?P<id>[^"]+)"(?: data-explore="[^"]+")?>\n<a class="figure-zoom" href="(?P<zoom>[^"]+)">'
    r'(?:<picture>.*?)?<img src="(?P<src>[^"]+)" srcset="[^"]+ 1x, (?P<src2x>[^"]+) 2x"'
    r'.*?<span class="figure-data">Data: (?P<data>.*?)\.</span></figcaption>', re.S)
_LINK = re.compile(r'<a href="(?P<url>[^"]+)" download>(?P<name>[^<]+)</a>')


def _file(out: Path, fmt: str, url: str, base: str) -> Path:
    assert url.startswith(f"{base}/"), url
    return out / fmt / url[len(base) + 1:]


def _result_folder(root: Path, experiment: str) -> Path:
    return root / "content" / "_freeze" / experiment


@pytest.mark.parametrize("slug, experiment, names", [
    (GEOMETRY, "main", ["results.json", "arrays.npz"]),
    (AUDIT, "audit", ["claims.csv", "audit.npz", "audit.json"]),
])
def test_every_html_figure_opens_at_full_resolution_and_links_its_data(site, slug, experiment,
                                                                       names):
    root, out, base = site
    page = (out / "html" / slug / "index.html").read_text(encoding="utf-8")
    figures = list(_FIGURE.finditer(page))
    listings = page.count('<figure class="listing"')            # code blocks, not figures
    assert figures and len(figures) == page.count("<figure ") - listings
    for f in figures:
        assert f["zoom"] == f["src2x"] and f["src2x"] != f["src"]
        assert _file(out, "html", f["zoom"], base).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        links = [(m["name"], m["url"]) for m in _LINK.finditer(f["data"])]
        assert [n for n, _ in links] == names
        for name, url in links:
            assert url == f"{base}/assets/data/{experiment}/{name}"
            published = _file(out, "html", url, base).read_bytes()
            if name != "claims.csv":
                assert published == (_result_folder(root, experiment) / name).read_bytes()


@pytest.mark.parametrize("slug, experiment", [(GEOMETRY, "main"), (AUDIT, "audit")])
def test_every_jekyll_figure_links_its_2x_file_and_its_data(site, slug, experiment):
    root, out, base = site
    post = next((out / "jekyll" / "_posts").glob(f"*-{slug}.md")).read_text(encoding="utf-8")
    images = re.findall(r"^\[!\[[^\]]*\]\(([^)]+)\)\]\(([^)]+)\)\n\{: #fig-[\w-]+ \.figure-image"
                        r"(?: data-explore=\"[^\"]+\")?\}\n"
                        r"\nData: (.*)\n\{: \.figure-data\}$", post, re.M)
    assert images and len(images) == post.count("![")
    for src, full, data in images:
        assert full == src.replace(".png", "@2x.png")
        assert _file(out, "jekyll", full, base).read_bytes()[:4] == b"\x89PNG"
        for name, url in re.findall(r"\[([^\]]+)\]\(([^)]+)\)", data):
            assert url == f"{base}/assets/data/{experiment}/{name}"
            assert _file(out, "jekyll", url, base).read_bytes() == \
                (out / "html" / url[len(base) + 1:]).read_bytes()


def test_both_outputs_publish_the_same_data_files(site):
    _, out, _ = site
    files = {fmt: sorted(p.relative_to(out / fmt / "assets" / "data").as_posix()
                         for p in (out / fmt / "assets" / "data").rglob("*") if p.is_file())
             for fmt in ("html", "jekyll")}
    assert files["html"] == files["jekyll"] == [
        "audit/audit.json", "audit/audit.npz", "audit/claims.csv",
        "main/arrays.npz", "main/attention_steps.json", "main/results.json"]


def test_the_claims_csv_holds_every_verdict_of_every_setting_as_audit_json_does():
    summary = json.loads((AUDIT_FREEZE / "audit.json").read_text(encoding="utf-8"))
    rows = list(csv.DictReader(io.StringIO(claims_csv(summary).decode("utf-8"))))
    assert tuple(rows[0]) == CLAIMS_COLUMNS
    settings = summary["settings"]
    expected = [(s, c["name"]) for s in ["default", *sorted(k for k in settings if k != "default")]
                for c in summary["claims"] if c["name"] in settings[s]["claims"]]
    assert [(r["setting"], r["claim"]) for r in rows] == expected
    def cell(text: str):
        """A CSV cell read back: empty is None; numbers as numbers."""
        if text == "":
            return None
        return float(text) if re.fullmatch(r"-?[\d.]+(e-?\d+)?", text) else text

    applying = 0
    for r in rows:
        got = settings[r["setting"]]["claims"][r["claim"]]
        applying += got["applies"]
        assert r["applies"] == str(got["applies"]).lower()
        for column in ("held", "n", "fraction", "verdict"):
            assert cell(r[column]) == got.get(column), (r["setting"], r["claim"], column)
        median = (got.get("statistic") or {}).get("quantiles", {}).get("0.5")
        assert cell(r["median"]) == median
        assert [cell(r["ci95_low"]), cell(r["ci95_high"])] == (got.get("ci95") or [None, None])
    assert applying > len(rows) / 2


# ---------------------------------------------------------------------------------------------
# The interactive attention map's data

def test_the_attention_trace_is_published_as_the_run_saved_it(site):
    import numpy as np

    root, out, base = site
    saved = np.load(root / "content" / "_freeze" / "main" / "arrays.npz", allow_pickle=False)
    trace = saved["weights_steps"]                                       # (T+1, n, n)
    for fmt in ("html", "jekyll"):
        doc = json.loads((out / fmt / "assets/data/main/attention_steps.json").read_text())
        assert (doc["n"], doc["steps"]) == (trace.shape[1], trace.shape[0] - 1)
        assert (doc["query"], doc["key"]) == (0, 5)
        assert doc["weights"] == [[round(float(v), 4) for v in m.ravel()] for m in trace]
        assert doc["vmax"] == max(max(m) for m in doc["weights"])
    page = (out / "html" / GEOMETRY / "index.html").read_text(encoding="utf-8")
    url = f"{base}/assets/data/main/attention_steps.json"
    assert page.count(f'data-explore="{url}"') == 1
    assert f'<figure id="fig-after_lora" data-explore="{url}">' in page
    post = next((out / "jekyll" / "_posts").glob(f"*-{GEOMETRY}.md")).read_text()
    assert f'{{: #fig-after_lora .figure-image data-explore="{url}"}}' in post


def test_the_explorer_draws_with_matplotlibs_viridis():
    import matplotlib
    from matplotlib.colors import to_hex

    script = (Path(__file__).resolve().parents[1] / "templates/assets/figures.js").read_text()
    stops = re.search(r"var VIRIDIS = \[(.*?)\];", script, re.S).group(1)
    stops = re.findall(r'"(#[0-9a-f]{6})"', stops)
    cmap = matplotlib.colormaps["viridis"]
    assert stops == [to_hex(cmap(i / (len(stops) - 1))) for i in range(len(stops))]
    assert len(stops) == 17


def test_explore_on_a_figure_without_an_interactive_version_is_an_error(tmp_path):
    from click.testing import CliRunner

    from generator.cli import main

    posts = tmp_path / "content" / "posts"
    posts.mkdir(parents=True)
    (tmp_path / "content" / "site.yml").write_text(
        'title: "T"\ndescription: "d"\nauthor: "A"\nurl: "https://example.org"\n')
    (posts / "p.md").write_text(
        "---\ntitle: T\ndate: 2026-01-11\nexperiments:\n"
        "  main: {d_model: 8, seq_len: 6, key: 2, max_steps: 5}\n---\n"
        "Text.\n\n{% call figure('before_lora', explore=True) %}Caption.{% endcall %}\n")
    res = CliRunner().invoke(main, ["build", "--root", str(tmp_path), "-q"])
    assert res.exit_code == 1
    assert res.output.strip() == (
        f"Error: {posts / 'p.md'}:9: figure 'before_lora' has no interactive version "
        "(drop explore=True, or use it with after_lora)")
