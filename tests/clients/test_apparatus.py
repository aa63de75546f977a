"""Real Jekyll (as GitHub Pages runs it) shows a post with the same citations, bibliography,
cross-references, footnotes, callouts, numbered equations and math as the HTML site."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.cli import main

from .checks import (apparatus, compare_apparatus, compare_math, find_post_page, jekyll_build,
                     pages_config, post_permalink, url_to_file)
from .clientenv import require_client

pytestmark = pytest.mark.client
REPO = Path(__file__).resolve().parents[2]

BODY = """## Setup {: #sec:setup}

LoRA [@hu2022lora] trains a low-rank update,[^why] as Adam [@kingma2015adam; @hu2022lora] does
for @eq:scores; @tbl:numbers and @fig:before_lora show it, @sec:setup sets it up.

> [!NOTE]
> The update $\\Delta W = BA$ has rank at most $r$.[^rank]

> [!WARNING] Ten seeds
> are not a thousand.

{% call figure('before_lora') %}Attention before training.{% endcall %}

$$
S = \\frac{QK^\\top}{\\sqrt{d}}
$$
{: #eq:scores}

{{ table('numbers', 'Two numbers.') }}

| a | b |
|---|---|
| 1 | 2 |

Closing words, and the first note again.[^why]

[^why]: Because a full update of $W_Q$ costs $d^2$ numbers [@hu2022lora].
[^rank]: Two paragraphs.

    The second one.

{{ bibliography() }}
"""


@pytest.fixture(scope="module")
def handmade_project(tmp_path_factory):
    """A project whose one post uses every piece of apparatus, built by the generator and then
    by real Jekyll: (HTML page, Jekyll page)."""
    require_client("jekyll")
    root = tmp_path_factory.mktemp("apparatus")
    posts = root / "content" / "posts"
    posts.mkdir(parents=True)
    (root / "content" / "site.yml").write_text(
        'title: "A"\ndescription: "d"\nauthor: "A. Author"\nurl: "https://example.org"\n')
    shutil.copy(REPO / "content" / "references.bib", root / "content" / "references.bib")
    (posts / "p.md").write_text("---\ntitle: Apparatus\ndate: 2026-01-11\nexperiments:\n"
                                "  main: {d_model: 8, seq_len: 6, key: 2, max_steps: 5}\n---\n"
                                + BODY)
    res = CliRunner().invoke(main, ["build", "--root", str(root), "-q"])
    assert res.exit_code == 0, res.output
    jekyll = root / "site" / "jekyll"
    dest = root / "_site"
    code, output = jekyll_build(jekyll, dest)
    assert code == 0, output
    post = next((jekyll / "_posts").glob("*-p.md"))
    page = url_to_file(dest, post_permalink(post, pages_config(jekyll)))
    html = find_post_page(root / "site" / "html", "p")
    return html.read_text(encoding="utf-8"), page.read_text(encoding="utf-8"), root


def test_the_handmade_post_shows_its_apparatus_in_the_html_site(handmade_project):
    got = apparatus(handmade_project[0])
    assert got["citations"] == ["1", "2", "1", "1"]
    assert got["references"] == ["ref-hu2022lora", "ref-kingma2015adam"]
    assert got["xrefs"] == ["Eq. (1)", "Table 1", "Figure 1", "“Setup”"]
    assert got["footnote_refs"] == ["1", "2", "1"]
    assert got["footnotes"] == ["fn:why", "fn:rank"]
    assert got["callouts"] == ["callout-note: Note", "callout-warning: Ten seeds"]
    assert got["equation_ids"] == ["eq-scores"]
    assert got["math"] == ["\\Delta W=BA", "r", "S=\\frac{QK^\\top}{\\sqrt{d}}\\tag{1}", "W_Q", "d^2"]


def test_real_jekyll_shows_the_handmade_post_with_the_same_apparatus(handmade_project):
    html, jekyll = (apparatus(page) for page in handmade_project[:2])
    assert compare_apparatus(html, jekyll, "p") == []
    assert compare_math(html["math"], jekyll["math"], "p") == []


def test_real_jekyll_shows_every_article_with_the_same_apparatus(jekyll_site):
    site, dest, pages = jekyll_site
    used = {kind: 0 for kind in ("citations", "xrefs", "references", "footnote_refs",
                                 "footnotes", "callouts", "equation_ids", "math")}
    for slug, permalink in pages.items():
        html = apparatus(find_post_page(site.html, slug).read_text(encoding="utf-8"))
        jekyll = apparatus(url_to_file(dest, permalink).read_text(encoding="utf-8"))
        assert compare_apparatus(html, jekyll, slug) == []
        for kind in used:
            used[kind] += len(html[kind])
    # The articles use every kind, so the parity above is not vacuous for any.
    assert all(used.values()), used


_SIDENOTES = """() => Array.from(document.querySelectorAll('.sidenote')).map(e => {
  const r = e.getBoundingClientRect(), body = document.querySelector('.post-body')
      .getBoundingClientRect(), ref = e.previousElementSibling.getBoundingClientRect();
  return {shown: getComputedStyle(e).display !== 'none', left: r.left, right: r.right,
          top: r.top, refTop: ref.top, bodyRight: body.right,
          viewport: document.documentElement.clientWidth};
})"""


@pytest.mark.parametrize("width, scheme", [(1280, "light"), (375, "dark")])
def test_a_sidenote_sits_in_the_margin_beside_its_reference_only_when_it_fits(
        handmade_project, serve_folder, new_context, width, scheme):
    server = serve_folder(handmade_project[2] / "site" / "html")
    context, _ = new_context(width=width, mobile=width < 500, color_scheme=scheme,
                             javascript=True)
    page = context.new_page()
    page.goto(f"{server.url}p/")
    notes = page.evaluate(_SIDENOTES)
    assert len(notes) == 1
    note = notes[0]
    if width < 500:
        assert not note["shown"]
        return
    assert note["shown"]
    assert note["left"] >= note["bodyRight"] + 16          # in the margin, clear of the text
    assert note["right"] <= note["viewport"]               # and inside the window
    assert abs(note["top"] - note["refTop"]) < 30          # on the line of its reference
