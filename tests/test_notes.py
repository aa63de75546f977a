"""Footnotes (with sidenotes on the HTML site) and callouts, in both outputs; a callout of an
unknown kind is a one-line error naming the line."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.cli import main
from generator.render.callouts import expand
from generator.render.sidenotes import add_sidenotes

SITE_YML = 'title: "Notes"\ndescription: "d"\nauthor: "A. Author"\nurl: "https://example.org"\n'
FRONT = "---\ntitle: Notes\ndate: 2026-01-11\n---\n"
LINE = 5          # the body's first line in the post

BODY = """A claim.[^seeds] Another one.[^long] The first again.[^seeds]

> [!NOTE]
> Read $x_0$ as the **target** query.
>
> - one
> - two

> [!WARNING] Seeds *matter*
> Ten runs are not a thousand.

> A plain quotation
> [!TIP] is not a callout when the marker is not its first line.

```text
> [!NOTE]
> inside a fence: left alone
```

[^seeds]: One seed is [one draw](https://example.org/draws) of $W_Q$.
[^long]: A note of two paragraphs.

    It stays at the end only.
"""


def make(root: Path, body: str = BODY) -> Path:
    posts = root / "content" / "posts"
    posts.mkdir(parents=True)
    (root / "content" / "site.yml").write_text(SITE_YML)
    (posts / "p.md").write_text(FRONT + body)
    return root


def build(root: Path):
    return CliRunner().invoke(main, ["build", "--root", str(root), "-q"])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = make(tmp_path_factory.mktemp("notes"))
    res = build(root)
    assert res.exit_code == 0, res.output
    page = (root / "site" / "html" / "p" / "index.html").read_text()
    post = next((root / "site" / "jekyll" / "_posts").glob("*-p.md")).read_text()
    return page, post


def _body(page: str) -> str:
    return page[page.index('<div class="post-body">'):page.index("</article>")]


def test_footnotes_are_numbered_in_citation_order_and_listed_at_the_end(built):
    body = _body(built[0])
    refs = re.findall(r'<sup id="(fnref\d*:\w+)"><a class="footnote-ref" href="#fn:(\w+)">(\d)</a>',
                      body)
    assert refs == [("fnref:seeds", "seeds", "1"), ("fnref:long", "long", "2"),
                    ("fnref2:seeds", "seeds", "1")]
    items = re.findall(r'<li id="fn:(\w+)">', body)
    assert items == ["seeds", "long"]
    assert body.index('<div class="footnote">') > body.index("inside a fence")


def test_a_one_paragraph_note_is_repeated_in_the_margin_hidden_from_screen_readers(built):
    body = _body(built[0])
    sides = re.findall(r'<span class="sidenote" aria-hidden="true">(.*?)</span>(?= Another)',
                       body, re.S)
    assert len(sides) == 1
    side = sides[0]
    assert side.startswith('<span class="sidenote-number">1</span> One seed is ')
    assert '<a tabindex="-1" href="https://example.org/draws">one draw</a>' in side
    assert 'data-tex="W_Q"' in side                     # the math is drawn in the margin too
    assert "footnote-backref" not in side
    # Only the note's first reference gets it; the two-paragraph note stays at the end only.
    assert body.count('class="sidenote"') == 1


def test_callouts_become_boxes_and_a_marker_elsewhere_stays_text(built):
    body = _body(built[0])
    boxes = re.findall(r'<div class="callout callout-(\w+)" role="note">\n'
                       r'<p class="callout-title">(.*?)</p>', body)
    assert boxes == [("note", "Note"), ("warning", "Seeds <em>matter</em>")]
    note = body[body.index("callout-note"):body.index("callout-warning")]
    assert "<strong>target</strong>" in note and "<li>one</li>" in note
    assert 'data-tex="x_0"' in note
    assert "<blockquote>\n<p>A plain quotation\n[!TIP] is not a callout" in body
    assert ('<span class="line">&gt; [!NOTE]</span>\n'
            '<span class="line">&gt; inside a fence: left alone</span>') in body


def test_the_jekyll_post_carries_the_same_notes_and_callouts_for_kramdown(built):
    post = built[1]
    assert post.count("[^seeds]") == 3 and post.count("[^long]") == 2
    assert '<div class="callout callout-note" role="note" markdown="1">\n' \
           '<p class="callout-title" markdown="span">Note</p>\n\nRead $$x_0$$ as the ' in post
    assert '<p class="callout-title" markdown="span">Seeds *matter*</p>' in post
    assert "sidenote" not in post
    assert "> [!NOTE]\n> inside a fence" in post


def test_the_feed_variant_has_no_sidenote():
    from generator.outputs.html import HtmlSite

    class Tools:
        class markdown:
            @staticmethod
            def to_html(text, splice=False):
                from generator.render.markdown import Markdowner
                return Markdowner(cache_file=None).to_html(text, splice=splice)
        math = None
        splice = False

    parts = HtmlSite().finish("A.[^n]\n\n[^n]: The note.\n", Tools)
    assert parts["html"].count('class="sidenote"') == 1
    assert "sidenote" not in parts["feed_html"]


@pytest.mark.parametrize("body, line, message", [
    ("Intro.\n\n> [!NOTICE]\n> text\n", 2,
     "unknown callout [!NOTICE] (use one of [!NOTE], [!TIP], [!IMPORTANT], [!WARNING], "
     "[!CAUTION], [!SUMMARY])"),
])
def test_an_unknown_callout_is_a_one_line_error_naming_the_line(tmp_path, body, line, message):
    root = make(tmp_path, body)
    res = build(root)
    assert res.exit_code == 1
    out = res.output.strip()
    assert out == f"Error: {root / 'content' / 'posts' / 'p.md'}:{LINE + line}: {message}"


def test_expand_keeps_text_without_callouts_byte_for_byte():
    text = "a\n\n$$\nx\n$$\n\n> quote [!x\n"
    assert expand(text) == text


def test_a_note_whose_reference_is_missing_gets_no_sidenote():
    page = ('<p>x</p>\n<div class="footnote">\n<hr>\n<ol>\n<li id="fn:a">\n<p>Note.</p>\n'
            '</li>\n</ol>\n</div>')
    assert add_sidenotes(page) == page
