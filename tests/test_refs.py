"""Citations from content/references.bib and cross-references to figures, equations, tables and
sections (render/refs.py), in both outputs; bad keys and labels are one-line errors."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.cli import main

REPO = Path(__file__).resolve().parents[1]
SITE_YML = 'title: "Refs"\ndescription: "d"\nauthor: "A. Author"\nurl: "https://example.org"\n'

BODY = """## Setup {: #sec:setup}

LoRA [@hu2022lora] and Adam [@kingma2015adam; @hu2022lora] give @eq:scores and
@tbl:numbers, as @sec:setup and @fig:before_lora say. Code `[@nothing]` and math $[@x]$ stay.

{% call figure('before_lora') %}Attention before training.{% endcall %}

$$
S = \\frac{QK^\\top}{\\sqrt{d}}
$$
{: #eq:scores}

{{ table('numbers', 'Two numbers.') }}

| a | b |
|---|---|
| 1 | 2 |

Closing words.

{{ bibliography() }}
"""


def make(root: Path, body: str = BODY, *, bib: bool = True) -> Path:
    posts = root / "content" / "posts"
    posts.mkdir(parents=True)
    (root / "content" / "site.yml").write_text(SITE_YML)
    if bib:
        shutil.copy(REPO / "content" / "references.bib", root / "content" / "references.bib")
    (posts / "p.md").write_text("---\ntitle: Refs\ndate: 2026-01-11\nexperiments:\n"
                                "  main: {d_model: 8, seq_len: 6, key: 2, max_steps: 5}\n---\n"
                                + body)
    return root


def build(root: Path):
    return CliRunner().invoke(main, ["build", "--root", str(root), "-q"])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = make(tmp_path_factory.mktemp("refs"))
    res = build(root)
    assert res.exit_code == 0, res.output
    html = (root / "site" / "html" / "p" / "index.html").read_text()
    jekyll = next((root / "site" / "jekyll" / "_posts").glob("*-p.md")).read_text()
    return html, jekyll


def test_citations_are_numbered_in_order_of_first_use_and_linked(built):
    for text in built:
        cites = re.findall(r'<a class="citation" href="#ref-([\w-]+)" title="([^"]+)">(\d+)</a>',
                           text)
        assert [(k, n) for k, _, n in cites] == [("hu2022lora", "1"), ("kingma2015adam", "2"),
                                                 ("hu2022lora", "1")]
        assert cites[0][1].startswith("Edward J. Hu, Yelong Shen")
        # The bibliography lists the cited works only, in that order, where the post asked.
        refs = re.findall(r'<li id="ref-([\w-]+)">(.*?)</li>', text)
        assert [k for k, _ in refs] == ["hu2022lora", "kingma2015adam"]
        assert "Adam: a method for stochastic optimization" in refs[1][1]
        assert text.index("Closing words.") < text.index('<ol class="references">')
        assert "[@nothing]" in text and "[@x]" in text        # code and math are not read


def test_cross_references_name_and_link_their_targets(built):
    html, jekyll = built
    for text in built:
        assert '<a class="xref" href="#eq-scores">Eq. (1)</a>' in text
        assert '<a class="xref" href="#tbl-numbers">Table 1</a>' in text
        assert '<a class="xref" href="#sec-setup">“Setup”</a>' in text
        assert '<a class="xref" href="#fig-before_lora">Figure 1</a>' in text
        assert ('<p class="table-caption" id="tbl-numbers"><span class="tbl-label">Table 1.'
                '</span> Two numbers.</p>') in text
    # The targets carry the ids: in the HTML page directly...
    assert '<h2 id="sec-setup">Setup</h2>' in html
    assert '<div class="math-display" id="eq-scores"' in html
    assert 'data-tex="S = \\frac{QK^\\top}{\\sqrt{d}} \\tag{1}"' in html
    assert '<figure id="fig-before_lora">' in html
    # ...and in the Jekyll post as kramdown attribute lists (tests/clients check real Jekyll).
    assert "## Setup {#sec-setup}" in jekyll
    assert "\\tag{1}\n$$\n{: #eq-scores}" in jekyll
    assert "(/assets/images/before_lora@2x.png)\n{: #fig-before_lora .figure-image}" in jekyll


def test_without_a_bibliography_call_the_list_is_appended(tmp_path):
    root = make(tmp_path, "Cited [@vaswani2017attention].\n")
    assert build(root).exit_code == 0
    html = (root / "site" / "html" / "p" / "index.html").read_text()
    assert re.search(r'<h2 id="references">References</h2>\s*<ol class="references">\s*'
                     r'<li id="ref-vaswani2017attention">', html)


LINE = 7    # the body's first line in the file (after six lines of front matter)


@pytest.mark.parametrize("body, line, message", [
    ("Intro.\n\nLoRA [@hu2021lora].\n", 2,
     "no bibliography entry 'hu2021lora' (did you mean 'hu2022lora'?)"),
    ("See @fig:nope.\n", 0, "no figure labelled 'fig:nope' (labelled figures: none)"),
    ("A\n\nSee @eq:scores.\n", 2, "no equation labelled 'eq:scores' (labelled equations: none)"),
    ("{{ table('t', 'c') }}\n\n| a |\n|---|\n| 1 |\n\nSee @tbl:tt.\n", 6,
     "no table labelled 'tbl:tt' (did you mean '@tbl:t'?)"),
    ("## A {: #sec:a}\n\n## B {: #sec:a}\n", 2, "section label 'sec:a' is used twice"),
    ("$$\nx\n$$\n{: #eq:e}\n\n$$\ny\n$$\n{: #eq:e}\n", 8, "equation label 'eq:e' is used twice"),
    ("Mixed [@fig:before_lora].\n", 0, "[@fig:before_lora] mixes a cross-reference into a "
                                       "citation (write @fig:before_lora without brackets)"),
])
def test_bad_citations_and_labels_are_one_line_errors_naming_the_line(tmp_path, body, line,
                                                                      message):
    root = make(tmp_path, body)
    res = build(root)
    assert res.exit_code == 1
    out = res.output.strip()
    assert len(out.splitlines()) == 1 and "Traceback" not in out
    assert out.startswith(f"Error: {root / 'content' / 'posts' / 'p.md'}:{LINE + line}: "), out
    assert message in out, out
    assert not (root / "site").exists()


def test_a_citation_without_a_bibliography_file_says_to_create_it(tmp_path):
    root = make(tmp_path, "LoRA [@hu2022lora].\n", bib=False)
    res = build(root)
    assert res.exit_code == 1
    assert f"p.md:{LINE}: no bibliography entry 'hu2022lora' (create " \
           f"{root / 'content' / 'references.bib'} with a BibTeX entry for it)" in res.output


def test_a_broken_bibliography_names_its_file(tmp_path):
    root = make(tmp_path, "LoRA [@hu2022lora].\n")
    (root / "content" / "references.bib").write_text("@article{broken,\n  title = {x\n")
    res = build(root)
    assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1
    assert f"{root / 'content' / 'references.bib'}: cannot read the bibliography" in res.output


def test_a_citation_edit_in_the_bib_file_renders_the_post_again(tmp_path):
    root = make(tmp_path, "LoRA [@hu2022lora].\n")
    assert build(root).exit_code == 0
    bib = root / "content" / "references.bib"
    bib.write_text(bib.read_text().replace("Low-Rank Adaptation of Large Language Models",
                                           "Low-Rank Adaptation, Renamed"))
    assert build(root).exit_code == 0
    assert "low-rank adaptation, renamed" in (root / "site/html/p/index.html").read_text()


def test_the_formatted_bibliography_is_kept_between_builds(tmp_path, monkeypatch):
    """A rebuild (a prose edit, a fresh process) reads the formatted entries from .cache instead
    of formatting the .bib file with pybtex again; the page is the same."""
    from generator.render import refs

    root = make(tmp_path, "LoRA [@hu2022lora].\n")
    assert build(root).exit_code == 0
    page = (root / "site/html/p/index.html").read_bytes()
    assert len(list((root / ".cache" / "lora-site" / "bibliography").glob("*.json"))) == 1

    def never(self, path):
        raise AssertionError("formatted again")

    monkeypatch.setattr(refs.Bibliography, "__init__", never)
    shutil.rmtree(root / "site")
    shutil.rmtree(root / ".cache" / "lora-site" / "posts")      # the post renders again
    res = build(root)
    assert res.exit_code == 0, res.output
    assert (root / "site/html/p/index.html").read_bytes() == page
