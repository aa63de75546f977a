"""The article, built from content/ into a temporary project: both outputs, end to end.

Facts about the reference post (its front matter, section titles, equations, figure names and
references) are written here as literals; measured numbers never are: every number the tests
look for is read from the results the build itself saved.
"""
from __future__ import annotations

import inspect
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from generator.core.project import Project
from generator.kinds.lora_results import load_result
from generator.plots.common import image_size
from generator.plots.lora_figures import FIGURES
from generator.render.jinja import fmt
from generator.science.config import ExperimentConfig
from helpers import build

ALT_TEXT = FIGURES.alt_texts(ExperimentConfig())
from site_checks import (ARTICLE, GENERATED_LIQUID, REPO, broken_links, fenced_blocks,
                         kramdown_math, liquid_markup, liquid_visible, make_project, norm_tex,
                         read_page, split_jekyll, strip_fences, strip_raw_guards)

SLUG = "lora-attention-geometry"
JEKYLL_POST = f"jekyll/_posts/2026-01-11-{SLUG}.md"
HTML_POST = f"html/{SLUG}/index.html"

REFERENCE_FRONT_MATTER = {
    "layout": "post",
    "title": "How Low-Rank Adaptation (LoRA) Changes the Geometry of Self-Attention",
    "date": "2026-01-11 10:00:00 +0530",
    "category": "blog",
    "headerImage": False,
    "tag": ["LoRA", "Attention", "Machine Learning", "Deep Learning", "Transformers"],
}
# What the build adds to the Jekyll front matter for _includes/citation-meta.html: Google
# Scholar's tags (the post cites no work of references.bib, so no citation_reference) and the
# licence of the text, from site.yml.
REFERENCE_GENERATED = {"lora_site": {
    "citation": [
        ["citation_title", REFERENCE_FRONT_MATTER["title"]],
        ["citation_author", "lora-site"],
        ["citation_publication_date", "2026/01/11"],
        ["citation_online_date", "2026/01/11"],
        ["citation_technical_report_institution", "lora-site: reproducible notes on LoRA"],
        ["citation_language", "en"],
    ],
    "license": "https://creativecommons.org/licenses/by/4.0/",
}}
JEKYLL_FRONT_MATTER = {**REFERENCE_FRONT_MATTER, **REFERENCE_GENERATED}
REFERENCE_SECTIONS = [
    "Introduction",
    "Self-Attention as a Geometric Operation",
    "A Minimal Self-Attention Implementation",
    "LoRA in Attention Layer",
    "Minimal LoRA Implementation",
    "Injecting LoRA into Self-Attention",
    "Effect on Attention Scores",
    "Empirical Evidence: How LoRA Alters Attention Geometry",
    "Why LoRA Works Well on Queries",
    "Conclusion",
    "References",
]
REFERENCE_FIGURE_SECTIONS = [
    "Attention Distribution Before LoRA",
    "Attention Distribution After LoRA Training",
    "Score Matrix Before LoRA (Pre-Softmax Geometry)",
    "Score Matrix After LoRA",
    "Query Rotation: Directional Change",
    "Query Update Magnitude",
]
REFERENCE_FIGURES = ["before_lora", "after_lora", "score_before_lora", "score_after_lora",
                     "token_rotation_lora", "token_rotation_magnitude"]
REFERENCE_EQUATIONS = [
    r"X \in \mathbb{R}^{n \times d}",
    r"Q = X W_Q, \quad K = X W_K, \quad V = X W_V",
    r"\text{Attention}(X) = \text{softmax}\left(\frac{Q K^\top}{\sqrt{d}}\right) V",
    r"q_i",
    r"k_j",
    r"W \in \mathbb{R}^{d \times d}",
    r"W' = W + BA",
    r"A \in \mathbb{R}^{r \times d}",
    r"B \in \mathbb{R}^{d \times r}",
    r"r \ll d",
    r"\Delta W = BA",
    r"B=0",
    r"S = \frac{Q K^\top}{\sqrt{d}}",
    r"Q' = Q + \Delta Q",
    r"S' = \frac{(Q + \Delta Q) K^\top}{\sqrt{d}}",
    r"QK^\top / \sqrt{d}",
    r"Q'K^\top / \sqrt{d}",
    r"\Delta S = \frac{\Delta Q K^\top}{\sqrt{d}}",
    r"\cos(Q_{\text{before}}, Q_{\text{after}})",
    r"|\Delta Q|",
]
REFERENCE_REFERENCES = [
    "Hu et al., LoRA: Low-Rank Adaptation of Large Language Models, ICLR 2021",
    "Vaswani et al., Attention Is All You Need, NeurIPS 2017",
    "He et al., Towards a Unified View of Parameter-Efficient Transfer Learning, ICLR 2022",
    "Dettmers et al., QLoRA, NeurIPS 2023",
]


class Built:
    """One built article: its output folder, its saved results, and parsed views of both posts."""

    def __init__(self, root: Path, out: Path, baseurl: str = "") -> None:
        self.root, self.out, self.baseurl = root, out, baseurl
        saved = load_result(root / "content" / "_freeze" / "main")
        self.cfg, self.m = saved.config, saved.metrics
        self.page = read_page(out / HTML_POST)
        self.html = (out / HTML_POST).read_text(encoding="utf-8")
        self.meta, self.body = split_jekyll((out / JEKYLL_POST).read_text(encoding="utf-8"))
        # The Jekyll body as a reader will see it: Liquid's raw guards gone, code removed.
        self.prose = strip_fences(strip_raw_guards(self.body))

    @property
    def text(self) -> str:
        return self.page.text


def _with_settings(settings: str) -> str:
    text = ARTICLE.read_text(encoding="utf-8")
    assert "  main: {}\n" in text
    return text.replace("  main: {}\n", f"  main: {settings}\n", 1)


@pytest.fixture(scope="module")
def article(tmp_path_factory) -> Built:
    root = make_project(tmp_path_factory.mktemp("article"))
    build(Project(root), out=root / "out")
    return Built(root, root / "out")


@pytest.fixture(scope="module")
def article_repo(article) -> Built:
    """The same project served under /repo/ (results and figures are reused)."""
    out = article.root / "out-repo"
    build(Project(article.root), baseurl="/repo/", frozen=True, out=out)
    return Built(article.root, out, "/repo")


def _variant(tmp_path_factory, settings: str) -> Built:
    root = tmp_path_factory.mktemp("variant")
    make_project(root, post_text=_with_settings(settings), slug=SLUG)
    build(Project(root), out=root / "out")
    return Built(root, root / "out")


# ---------------------------------------------------------------------------------------------
# The Jekyll post


def test_jekyll_front_matter_equals_the_reference(article):
    assert article.meta == JEKYLL_FRONT_MATTER
    assert list(article.meta) == list(JEKYLL_FRONT_MATTER)


def test_jekyll_body_opens_with_the_include_then_the_title(article):
    lines = article.body.lstrip("\n").split("\n")
    assert lines[0] == "{%- include mathjax.html -%}"
    assert lines[1] == "# How Low-Rank Adaptation (LoRA) Changes the Geometry of Self-Attention"


def test_jekyll_body_has_no_jinja_and_no_liquid_but_include_and_raw(article):
    tags = re.findall(r"\{%-?\s*(\w+)", article.body)
    assert tags.count("include") == 1
    assert set(tags) <= {"include", "raw", "endraw"}
    assert tags.count("raw") == tags.count("endraw")
    # Liquid sees the include and, in the BibTeX at the end, the post's URL; nothing else.
    assert liquid_markup(article.body) == GENERATED_LIQUID
    visible = liquid_visible(article.body)
    for generated in GENERATED_LIQUID:
        visible = visible.replace(generated, "")
    assert not re.search(r"\{[{%#]", visible)
    # Nothing of Jinja survives, guarded or not (the article itself prints no braces pairs).
    assert not re.search(r"\{[{%#]", strip_raw_guards(visible))


def test_jekyll_inline_math_never_uses_a_single_dollar(article):
    without_math = re.sub(r"\$\$.+?\$\$", "", article.prose, flags=re.S)
    assert "$" not in without_math.replace("\\$", "")
    for tex in kramdown_math(article.prose):
        assert "|" not in tex, tex                    # | would start a table cell in kramdown


def test_jekyll_display_math_stands_between_blank_lines(article):
    lines = article.prose.split("\n")
    fences = [i for i, line in enumerate(lines) if line == "$$"]
    assert len(fences) >= 2 * 7 and len(fences) % 2 == 0
    for start, end in zip(fences[::2], fences[1::2]):
        assert lines[start - 1] == "" and lines[end + 1] == "", lines[start - 1: end + 2]


# ---------------------------------------------------------------------------------------------
# Both outputs: structure, equations, figures, listings


def test_sections_follow_the_reference_order(article):
    h2 = [t for tag, t in article.page.headings if tag == "h2"]
    # The reproduce box (templates/reproduce.html) closes every post, after its sections.
    assert h2 == ["Contents"] + REFERENCE_SECTIONS + ["Reproduce this article"]
    h3 = [t for tag, t in article.page.headings if tag == "h3"]
    assert h3[: len(REFERENCE_FIGURE_SECTIONS)] == REFERENCE_FIGURE_SECTIONS
    md_h2 = [line[3:] for line in article.prose.split("\n") if line.startswith("## ")]
    assert md_h2 == REFERENCE_SECTIONS
    h1 = [t for tag, t in article.page.headings if tag == "h1"]
    assert h1 == [REFERENCE_FRONT_MATTER["title"]]


def test_table_of_contents_links_every_section(article):
    toc = article.html.split('<nav class="toc"', 1)[1].split("</nav>", 1)[0]
    ids = re.findall(r'href="#([^"]+)"', toc)
    assert len(ids) == len(REFERENCE_SECTIONS) + len(REFERENCE_FIGURE_SECTIONS) + 1
    assert all(i in article.page.ids for i in ids)


def test_every_reference_equation_appears_in_both_outputs(article):
    html_math = [norm_tex(t) for t in re.findall(r"\\[(\[](.+?)\\[)\]]",
                                                 "".join(article.page.math_text), flags=re.S)]
    jekyll_math = [norm_tex(t) for t in kramdown_math(article.prose)]
    for eq in REFERENCE_EQUATIONS:
        want = norm_tex(eq)
        assert any(want in t for t in html_math), f"HTML lacks {eq}"
        assert any(want in t for t in jekyll_math), f"Jekyll post lacks {eq}"


def test_html_math_is_pre_rendered_svg_with_mathml_and_its_tex(article):
    outside = "".join(article.page.plain_text)
    for marker in ("\\(", "\\)", "\\[", "\\]", "$"):
        assert marker not in outside, marker
    assert 'class="arithmatex"' not in article.html          # every formula was rendered
    containers = re.findall(r'<mjx-container data-tex="([^"]*)" class="MathJax" jax="SVG"'
                            r'( display="true")?[^>]*>(.*?)</mjx-container>', article.html,
                            flags=re.S)
    assert len(containers) > 40 and len(containers) == len(article.page.math_text)
    for tex, display, inner in containers:
        assert tex and "<svg" in inner and "<math" in inner, tex
    displays = re.findall(r'<div class="math-display"[^>]*><mjx-container[^>]*display="true"',
                          article.html)
    assert displays and len(displays) == sum(1 for *_, d, _ in
                                             [(c[0], c[1], c[2]) for c in containers] if d)


def test_six_figures_in_reference_order_with_alt_caption_and_sizes(article):
    imgs = article.page.all("img")
    assert [a["src"] for a in imgs] == [f"/assets/images/{n}.png" for n in REFERENCE_FIGURES]
    w, h = image_size(1)
    for a, name in zip(imgs, REFERENCE_FIGURES):
        assert a["srcset"] == f"/assets/images/{name}.png 1x, /assets/images/{name}@2x.png 2x"
        assert (a["width"], a["height"]) == (str(w), str(h))
        assert a["alt"] == ALT_TEXT[name]
        for f in (f"{name}.png", f"{name}@2x.png"):
            assert (article.out / "html/assets/images" / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert article.html.count("<figcaption>") == 6
    jekyll_imgs = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", article.prose)
    assert [src for _, src in jekyll_imgs] == [f"/assets/images/{n}.png" for n in REFERENCE_FIGURES]
    assert [alt for alt, _ in jekyll_imgs] == [ALT_TEXT[n] for n in REFERENCE_FIGURES]
    for name in REFERENCE_FIGURES:
        assert (article.out / "jekyll/assets/images" / f"{name}.png").is_file()
    assert len(re.findall(r"^\*Figure \d: ", article.prose, flags=re.M)) == 6


def test_listings_equal_the_package_source(article):
    from generator.science.attention import TinySelfAttention
    from generator.science.experiment import _run
    from generator.science.lora import LoRALinear, inject_lora

    sources = [inspect.getsource(obj).rstrip("\n")
               for obj in (TinySelfAttention, LoRALinear, inject_lora, _run)]
    blocks = fenced_blocks(article.body)
    for src in sources:
        assert src in blocks
    code = [c.rstrip("\n") for c in article.page.code_text]
    for src in sources:
        assert src in code


def test_references_are_the_reference_four(article):
    for ref in REFERENCE_REFERENCES:
        assert ref in article.text
        assert ref in article.prose
    items = article.html.split('id="references"', 1)[1]
    assert len(re.findall(r"<li>", items)) == 4


# ---------------------------------------------------------------------------------------------
# Numbers come from the run


def _settings_and_numbers(b: Built) -> list[str]:
    """Sentences the article must contain, built from the saved config and metrics."""
    c, m = b.cfg, b.m
    return [
        f"query {c.query} puts {fmt(m['target_weight_after'], 3)} of its attention on key {c.key}",
        f"weight of {fmt(m['target_weight_before'], 3)}",
        f"Query {c.query} has a cosine of {fmt(m['cos_q_target'], 2)}",
        f"a ratio of {fmt(m['dq_ratio'], 1)}",
        f"the targeted entry is {fmt(m['score_before_target'], 2)}",
        f"sequence has n = {c.seq_len} tokens of width d = {c.d_model}",
        f"TinySelfAttention(d_model={c.d_model})",
        f"{m['trainable_params']} trainable numbers",
    ]


def _rendered_text(b: Built) -> str:
    """HTML text with math spans reduced to their TeX, to compare with plain sentences."""
    text = "".join(b.page.flow_text) + " " + " ".join(b.page.code_text)
    text = text.replace("\\(", "").replace("\\)", "")
    return " ".join(text.split())


def test_numbers_in_the_text_are_the_measured_ones(article):
    text = _rendered_text(article)
    prose = " ".join(article.prose.replace("$$", "").split())
    for sentence in _settings_and_numbers(article):
        assert sentence in text, sentence
        assert sentence in prose or sentence.startswith("TinySelfAttention"), sentence
    m = article.m
    if m["reached_stop_prob"]:
        assert f"reached the target after {m['steps']} optimizer steps" in text
    else:
        assert f"stopped at the limit of {m['steps']} steps" in text


def test_statements_follow_the_measurements(article):
    """The conditional sentences agree with the numbers, whichever way they fall."""
    c, m, text = article.cfg, article.m, _rendered_text(article)
    ratio = m["q_norm_ratio_target"]
    if ratio > 1.1:
        assert f"Its length grew by a factor of {fmt(ratio, 2)}" in text
    elif ratio < 0.9:
        assert f"Its length shrank by a factor of {fmt(1 / ratio, 2)}" in text
    else:
        assert f"Its length changed only by a factor of {fmt(ratio, 2)}" in text
    verdict = "Holds" if 0.9 <= ratio <= 1.1 else "Partly"
    assert f"Query {c.query} is rotated. {verdict}: it turns by" in text
    low = [i for i, v in enumerate(m["cos_q"]) if i != c.query and v < 0.95]
    for i in low:
        assert f"query {i} has a cosine of {fmt(m['cos_q'][i], 2)}" in text
    if not low:
        assert "Every other query keeps a cosine above 0.95" in text
    if m["tv_others_max"] >= 0.05:
        assert "The other rows are not left untouched" in text
    assert f"numerical rank is {m['dscore_rank']}" in text
    if m["delta_w_sigma2_over_sigma1"] < 0.01:
        assert "in effect the adapter learned a rank-one update" in text


def test_what_we_measured_section_states_norm_and_others(article):
    section = article.html.split('id="what-we-measured"', 1)[1].split("<h2", 1)[0]
    assert "length" in section and fmt(article.m["q_norm_ratio_target"], 2) in section
    assert fmt(article.m["cos_q_others_min"], 2) in section


def _numbers(b: Built) -> list[str]:
    body = b.html.split('<div class="post-body">', 1)[1]
    body = re.sub(r"<pre>.*?</pre>", "", body, flags=re.S)
    return re.findall(r"\d+\.\d+", re.sub(r"<[^>]+>", " ", body))


@pytest.mark.parametrize("settings,what", [("{key: 7}", "key 7"), ("{seed: 1}", "seed 1")])
def test_changing_a_setting_changes_the_printed_numbers(article, tmp_path_factory, settings,
                                                       what):
    variant = _variant(tmp_path_factory, settings)
    assert variant.m != article.m
    assert _numbers(variant) != _numbers(article)
    assert what in _rendered_text(variant)
    text = _rendered_text(variant)
    for sentence in _settings_and_numbers(variant):
        assert sentence in text, sentence
    assert variant.meta == JEKYLL_FRONT_MATTER


# ---------------------------------------------------------------------------------------------
# The HTML site: parses, links resolve, meta, MathJax


def test_html_pages_parse_with_landmarks(article):
    for rel in ("html/index.html", "html/404.html", HTML_POST):
        page = read_page(article.out / rel)
        assert page.errors == [], (rel, page.errors)
        tags = [t for t, _ in page.tags]
        assert tags.count("h1") == 1, rel
        for landmark in ("header", "main", "nav", "footer"):
            assert landmark in tags, (rel, landmark)
        html_tag = page.all("html")[0]
        assert html_tag["lang"] == "en"
        metas = page.all("meta")
        assert {"charset": "utf-8"} in metas
        assert any(a.get("name") == "viewport" for a in metas)
        for img in page.all("img"):
            assert img.get("alt") and img.get("width") and img.get("height")
    ET.parse(article.out / "html/feed.xml")
    ET.parse(article.out / "html/sitemap.xml")


def test_canonical_and_open_graph(article):
    site = yaml.safe_load((article.root / "content/site.yml").read_text())
    url = f"{site['url'].rstrip('/')}/{SLUG}/"
    links = article.page.all("link")
    assert [a["href"] for a in links if a.get("rel") == "canonical"] == [url]
    og = {a["property"]: a["content"] for a in article.page.all("meta") if "property" in a}
    assert og["og:url"] == url and og["og:type"] == "article"
    assert og["og:title"] == REFERENCE_FRONT_MATTER["title"]
    assert og["og:image"].endswith("/assets/images/before_lora.png")


# ---------------------------------------------------------------------------------------------
# Per article: Google Scholar's tags, the licences, "Cite this", the feed's full content

REFERENCE_BIBTEX = """@online{lora-attention-geometry-2026,
  title        = {{How Low-Rank Adaptation (LoRA) Changes the Geometry of Self-Attention}},
  author       = {lora-site},
  organization = {lora-site: reproducible notes on LoRA},
  year         = {2026},
  date         = {2026-01-11},
  url          = {https://lora-site.github.io/lora-attention-geometry/},
}"""


def _metas(page_html: str) -> list[tuple[str, str]]:
    import html

    head = page_html.split("</head>")[0]
    return [(n, html.unescape(c)) for n, c in
            re.findall(r'<meta name="(citation_[a-z_]+)" content="([^"]*)">', head)]


def test_the_post_head_has_google_scholar_tags_and_the_licence(article):
    assert _metas(article.html) == [
        *[tuple(t) for t in REFERENCE_GENERATED["lora_site"]["citation"]],
        ("citation_fulltext_html_url", "https://lora-site.github.io/lora-attention-geometry/")]
    assert [a["href"] for a in article.page.all("link") if a.get("rel") == "license"] == [
        "https://creativecommons.org/licenses/by/4.0/"]


def test_the_post_ends_with_its_licences_and_bibtex(article, article_repo):
    import html

    from pybtex.database import parse_string

    footer = article.html.split('<footer class="post-footer">')[1].split("</footer>")[0]
    assert '<p class="post-license">Text and figures: <a rel="license" href="https://creative' \
        'commons.org/licenses/by/4.0/">CC BY 4.0</a> · Code: <a href="https://spdx.org/licenses' \
        '/MIT.html">MIT</a></p>' in footer
    bibtex = html.unescape(footer.split("<code>")[1].split("</code>")[0])
    assert bibtex == REFERENCE_BIBTEX
    entry = parse_string(bibtex, "bibtex").entries["lora-attention-geometry-2026"]
    assert entry.fields["url"] == "https://lora-site.github.io/lora-attention-geometry/"
    # Under a baseurl the entry names the page where it is served.
    repo = article_repo.html.split("<code>@online")[1].split("</code>")[0]
    assert "url          = {https://lora-site.github.io/repo/lora-attention-geometry/}," in repo
    # The byline names the author (site.yml's: the post sets none).
    assert '· <span class="post-authors">lora-site</span></p>' in article.html


def test_the_feed_carries_every_post_in_full_with_mathml_and_absolute_urls(article):
    from html.parser import HTMLParser

    from clients.checks import check_atom_feed

    data = (article.out / "html/feed.xml").read_bytes()
    assert check_atom_feed(data) == []
    atom = "{http://www.w3.org/2005/Atom}"
    entries = ET.fromstring(data).findall(f"{atom}entry")
    slugs = sorted(p.name for p in (article.out / "html").iterdir()
                   if (p / "index.html").is_file())
    assert sorted(e.findtext(f"{atom}id").rstrip("/").rsplit("/", 1)[1] for e in entries) == slugs

    class Urls(HTMLParser):
        def __init__(self):
            super().__init__()
            self.urls, self.tags = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            for k, v in attrs:
                if k in ("href", "src"):
                    self.urls.append(v)
                if k == "srcset":
                    self.urls += [c.split()[0] for c in v.split(",")]

    for entry in entries:
        slug = entry.findtext(f"{atom}id").rstrip("/").rsplit("/", 1)[1]
        page = (article.out / "html" / slug / "index.html").read_text(encoding="utf-8")
        content = entry.find(f"{atom}content")
        assert content.get("type") == "html"
        assert entry.findtext(f"{atom}summary")            # the summary stays
        reader = Urls()
        reader.feed(content.text)
        # Every expression of the page, as MathML: one <math> per pre-rendered formula.
        expressions = page.count("<mjx-container")
        assert expressions > 0 and reader.tags.count("math") == expressions, slug
        for absent in ("script", "svg", "mjx-container", "style"):
            assert absent not in reader.tags, (slug, absent)
        assert reader.urls and all(re.match(r"https?://[^/]+/", u) for u in reader.urls), \
            [u for u in reader.urls if not re.match(r"https?://[^/]+/", u)]
        # Every figure of the page is in the entry, at its absolute address.
        for src in re.findall(r'<img src="([^"]+)"', page):
            assert f'src="https://lora-site.github.io{src}"' in content.text


def test_the_page_needs_no_script_for_its_math_and_the_jekyll_post_loads_mathjax(article):
    site = yaml.safe_load((article.root / "content/site.yml").read_text())
    scripts = [a.get("src") for a in article.page.all("script")]
    assert site["mathjax_url"] not in scripts and "MathJax" not in article.html.split(
        "<body")[0]
    css = (article.out / "html/assets/style.css").read_text()
    assert 'mjx-container[jax="SVG"]' in css and "mjx-assistive-mml" in css
    # The Jekyll post keeps its TeX for the blog's MathJax: its include loads the pinned URL.
    include = (article.out / "jekyll/_includes/mathjax.html").read_text()
    assert f'src="{site["mathjax_url"]}"' in include


@pytest.mark.parametrize("which", ["article", "article_repo"])
def test_every_internal_link_resolves(request, which):
    b = request.getfixturevalue(which)
    assert broken_links(b.out / "html", b.baseurl) == []
    prefix = b.baseurl
    for _, src in re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", b.prose):
        assert src.startswith(f"{prefix}/assets/images/")
        assert (b.out / "jekyll" / src[len(prefix) + 1:]).is_file()


def test_link_check_notices_a_missing_file(article, tmp_path):
    import shutil

    copy = tmp_path / "html"
    shutil.copytree(article.out / "html", copy)
    (copy / "assets/images/after_lora@2x.png").unlink()
    # Named twice: the zoom link's target and the srcset's 2x image.
    assert broken_links(copy, "") == [
        f"{SLUG}/index.html: /assets/images/after_lora@2x.png -> missing"] * 2


def test_baseurl_build_differs_only_in_urls(article, article_repo):
    assert article_repo.meta == JEKYLL_FRONT_MATTER
    assert _numbers(article_repo) == _numbers(article)
    imgs = [a["src"] for a in article_repo.page.all("img")]
    assert imgs == [f"/repo/assets/images/{n}.png" for n in REFERENCE_FIGURES]


# ---------------------------------------------------------------------------------------------
# The command line a user runs


def test_console_script_builds_both_trees(tmp_path):
    """`lora-site build` (what `make site` runs) in a fresh project writes both trees."""
    make_project(tmp_path)
    exe = Path(sys.executable).with_name("lora-site")
    proc = subprocess.run([str(exe), "build", "--root", str(tmp_path), "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "site" / JEKYLL_POST).is_file()
    assert (tmp_path / "site" / HTML_POST).is_file()
    assert proc.stdout == ""
    assert "lora-site build" in (REPO / "Makefile").read_text()


def test_other_branches_of_the_text_follow_other_numbers(article):
    """Feed the article numbers the run did not produce: each conditional sentence flips."""
    from types import SimpleNamespace

    from generator.authoring.post_info import post_info
    from generator.authoring.posts import read_post
    from generator.authoring.site_config import load_site_config
    from generator.kinds.claims_audit import KIND as AUDIT
    from generator.outputs.html import FORMAT as HTML
    from generator.plots.common import image_filename
    from generator.plots.lora_figures import FIGURE_NAMES
    from generator.render.post import render_post
    from helpers import context

    project = Project(article.root)
    site = load_site_config(project)
    ctx = context(project)
    info = post_info(read_post(ctx, article.root / "content" / "posts" / f"{SLUG}.md"), site)
    c, m = article.cfg, dict(article.m)
    n, q = c.seq_len, c.query
    m.update(
        reached_stop_prob=False,
        q_norm_ratio_target=1.02,
        cos_q=[0.5 if i == q else 0.99 for i in range(n)],
        cos_q_others_min=0.99,
        tv_others_max=0.01,
        dq_norm_others_max=0.05 * m["dq_norm_target"],
        delta_w_sigma2_over_sigma1=0.5,
    )
    saved = SimpleNamespace(config=c, metrics=m, provenance={})
    figures = {"main": {image_filename(f, s): b"" for f in FIGURE_NAMES for s in (1, 2)}}
    # The conclusion quotes the claims audit.
    audit = AUDIT.load(project.freeze / "audit", "audit")
    with ctx:
        r = render_post(ctx, info, site, {"main": saved, "audit": audit}, figures, [HTML])
    text = " ".join(re.sub(r"<[^>]+>", " ", r.parts["html"]["html"]).split())
    assert f"stopped at the limit of {m['steps']} steps" in text
    assert f"Its length changed only by a factor of {fmt(1.02, 2)}" in text
    assert "Every other query keeps a cosine above 0.95" in text
    assert "The other rows barely move" in text
    assert "Query {} is rotated. Holds".format(q) in text
    assert "The other queries get near-zero updates. Holds" in text
    assert "more than one direction carries weight" in text
    assert "in effect the adapter learned a rank-one update" not in text


def test_rebuilding_gives_identical_bytes(article, tmp_path):
    build(Project(article.root), frozen=True, out=tmp_path / "again")

    def files(folder):
        return {p.relative_to(folder).as_posix(): p.read_bytes()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    assert files(tmp_path / "again") == files(article.out)


def test_render_from_saved_results_imports_neither_torch_nor_matplotlib(article, tmp_path):
    code = ("import sys; from pathlib import Path; from generator.publish.build import build; "
            "from generator.core.context import BuildContext; "
            "from generator.core.project import Project;"
            f"build(BuildContext(Project(Path({str(article.root)!r}))), frozen=True, "
            f"out={str(tmp_path / 'o')!r});"
            "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert (tmp_path / "o" / HTML_POST).is_file()


def test_the_audit_summary_is_its_own_paragraph_in_both_outputs(article):
    """The conclusion's last list item and the audit summary after it stay two blocks (a
    Jinja comment once glued them: render.jinja.check_whitespace_control refuses the class)."""
    assert "<p><strong>How well does this hold up?</strong>" in article.html
    assert "does not make.</li>" in article.html
    assert "\n\n**How well does this hold up?**" in article.body
