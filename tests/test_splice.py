"""Markdown by splicing (render.markdown.Markdowner.splice), what the preview's early page uses:
an edit inside one plain paragraph or list of a document converted before is converted alone
and put in place. It must give exactly the bytes of a whole conversion, or decline (None).

Checked on the Markdown of every article as the build hands it over (after Jinja, citations
and cross-references): every block of each is edited in turn."""
from __future__ import annotations

import shutil

import pytest

from conftest import REPO
from generator.core.project import Project
from generator.render.markdown import Markdowner
from generator.serve.warm import WarmBuilder


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> dict[str, str]:
    """Each article's Markdown as the HTML output converts it, by its first line."""
    root = tmp_path_factory.mktemp("splice") / "project"
    for name in ("content", "templates"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    seen: list[str] = []
    real = Markdowner.to_html

    def record(self, source, **kw):
        seen.append(source)
        return real(self, source, **kw)
    mp = pytest.MonkeyPatch()
    mp.setenv("LORA_SITE_DRAW_WORKERS", "0")
    mp.setattr(Markdowner, "to_html", record)
    builder = WarmBuilder(Project(root))
    try:
        # No post cache yet: every post is converted.
        assert builder.build().ok
    finally:
        builder.close()
        mp.undo()
    docs = {src.split("\n", 1)[0][:60]: src for src in seen}
    assert len(docs) == 3, sorted(docs)
    return docs


def paragraphs(source: str) -> list[tuple[int, int]]:
    """(start, end) of each blank-line-separated block."""
    out, at = [], 0
    for block in source.split("\n\n"):
        out.append((at, at + len(block)))
        at += len(block) + 2
    return out


def test_every_spliced_paragraph_edit_is_the_whole_conversion(documents):
    truth = Markdowner(cache_file=None)
    spliced = paragraphs_seen = lists = 0
    for name, source in documents.items():
        whole_before = truth.to_html(source).html
        for start, end in paragraphs(source):
            block = source[start:end]
            if not block.strip():
                continue
            # A paragraph or a list as the reader sees it: converted alone, it is in the page.
            alone = truth._fragment(block.strip("\n"), "p") or truth._fragment(
                block.strip("\n"), "list")
            paragraphs_seen += alone is not None and alone in whole_before
            lists += alone is not None and alone in whole_before and alone.startswith("<ul>")
            # A word added inside the block's first line, as an author types.
            text = block.lstrip("\n")              # after a second blank line, if any
            cut = start + len(block) - len(text) + min(len(text.split("\n", 1)[0]), 12)
            # A word added inside the first line, as an author types; the last few characters
            # of the block rewritten.
            edits = [source[:cut] + " spliced *word*" + source[cut:],
                     source[:max(start, end - 5)] + "`x` done." + source[end:]]
            results = []
            for edited in edits:
                md = Markdowner(cache_file=None)
                md.to_html(source)
                doc = md.splice(edited)
                results.append(doc is not None)
                if doc is None:
                    continue
                whole = truth.to_html(edited)
                assert doc.html == whole.html, (name, block[:80], edited[start:end + 20])
                assert doc.toc == whole.toc, (name, block[:80])
            spliced += all(results)
    # The fast way is taken for nearly every paragraph and list (not those with a footnote).
    assert paragraphs_seen >= 60 and lists >= 5, (paragraphs_seen, lists)
    assert spliced >= 0.9 * paragraphs_seen, (spliced, paragraphs_seen)


def test_splicing_declines_what_depends_on_the_rest_of_the_document():
    source = ("# Title\n\nA plain paragraph with $x^2$ and [a link](https://example.org).\n\n"
              "Another one, cited.[^n]\n\n[^n]: A footnote.\n\n[ref]: https://example.org/ref\n")
    md = Markdowner(cache_file=None)
    md.to_html(source)
    plain = "A plain paragraph with $x^2$ and [a link](https://example.org)."
    accepted = source.replace(plain, plain + " More words, *emphasised*.")
    assert md.splice(accepted).html == Markdowner(cache_file=None).to_html(accepted).html
    for edited in (
        source.replace(plain, plain + " A new note.[^m]"),          # a footnote
        source.replace(plain, plain + " See [ref]."),               # a reference link
        source.replace(plain, "## " + plain),                       # now a heading
        source.replace(plain, plain + "\n\nA second paragraph."),   # now two blocks
        source.replace(plain, "- " + plain),                        # now a list
        source.replace(plain, plain + "\n===="),                    # a setext heading
        source.replace("Another one, cited.", "Another one, edited."),  # has a footnote
        source.replace("# Title", "# Title changed"),               # a heading
    ):
        assert md.splice(edited) is None, edited
    # The same text: the remembered conversion itself.
    assert md.splice(source) is not None and md.splice(source).html == md.to_html(source).html


def test_a_paragraph_whose_text_is_rendered_elsewhere_too_is_not_spliced():
    """The old paragraph's HTML must be found once, as a block of its own."""
    source = "Same words.\n\n<div markdown=\"1\">\n\nSame words.\n\n</div>\n"
    md = Markdowner(cache_file=None)
    md.to_html(source)
    assert md.splice(source.replace("Same words.", "Same words, edited.", 1)) is None


def test_lists_are_spliced_only_apart_from_other_lists_and_without_lists_inside():
    source = ("Intro.\n\n- one item\n- two items,\n  continued\n\nMiddle.\n\n1. first\n2. second\n\n"
              "After.\n\n- a\n\n- b, loose with the list before\n\nEnd.\n")
    md = Markdowner(cache_file=None)
    md.to_html(source)
    for old, new in (("two items,", "two edited items,"), ("2. second", "2. second, edited")):
        edited = source.replace(old, new, 1)
        assert md.splice(edited).html == Markdowner(cache_file=None).to_html(edited).html
    for edited in (
        source.replace("b, loose", "b, edited, loose"),             # next to another list
        source.replace("- two items,", "* two items,"),             # another kind of item
        source.replace("  continued", "  - continued"),             # a list inside
        source.replace("  continued", "      continued"),           # indented code
        source.replace("2. second", "2. second\n- bullet"),         # numbered, then bullets
    ):
        assert md.splice(edited) is None, edited


def whole_or_declined(old: str, new: str) -> bool:
    """Splicing ``new`` after ``old`` declines or gives the whole conversion; True if it
    spliced."""
    md = Markdowner(cache_file=None)
    md.to_html(old)
    doc = md.splice(new)
    if doc is None:
        return False
    whole = Markdowner(cache_file=None).to_html(new)
    assert (doc.html, doc.toc) == (whole.html, whole.toc), (old, new)
    return True


FIGURE = '\n\n<figure>\n<img src="a.png">\n</figure>\n'


@pytest.mark.parametrize("old, new", [
    # A "<" that is no whole inline tag changes how Markdown reads a later HTML block.
    ("Loss falls when n is small." + FIGURE, "Loss falls when n<d is small." + FIGURE),
    ("Loss falls when n<d is small." + FIGURE, "Loss falls when n is small." + FIGURE),
    ('Text.\n\n<div markdown="1">\n\nInner.\n\n</div>\n',
     'Text <em.\n\n<div markdown="1">\n\nInner.\n\n</div>\n'),
    ("Text <b>bold</b>." + FIGURE, "Text <b>bold." + FIGURE),
    # An id from an attribute list renames a heading's (the table of contents keeps ids unique).
    ("## Results\n\nWe measured it.\n\nEnd.", "## Results\n\nWe *measured*{: #results} it.\n\nEnd."),
    # The same words inside a fence (or an HTML block) as in a paragraph outside it.
    ("Run *this*.\n\n```markdown\nintro\n\nRun _this_.\n\nmore\n```\n",
     "Run *this*.\n\n```markdown\nintro\n\nRun _this_ now.\n\nmore\n```\n"),
    ("Run *this*.\n\n<div>\nintro\n\nRun _this_.\n\n</div>\n",
     "Run *this*.\n\n<div>\nintro\n\nRun _this_ now.\n\n</div>\n"),
    # From the second review: a later block closes what an earlier one left open,
    ("<!--\n\nDraft.\n", "<!--\n\nDraft. -->\n"),
    ("<div class='x'\n\nA.\n", "<div class='x'\n\nA <br> b.\n"),
    # a quote left open inside a tag, a "&#" that is no character reference,
    ("A pic." + FIGURE, 'A <img src="a.png> pic.' + FIGURE),
    ("A." + FIGURE, "A &# b." + FIGURE),
    ("X &#N; y.\n\nA." + FIGURE, "X &#N; y.\n\nA &#N; b." + FIGURE),
    # the footnotes' place marker,
    ("A.[^1]\n\n[^1]: N.\n\nB.\n", "A.[^1]\n\n[^1]: N.\n\n///Footnotes Go Here///\n"),
    # a twin hidden in a comment, in a block tag of Markdown's, in $$$ math, behind a
    # closing tag in a code span,
    ("*A*.\n\n<!--\n\n_A_.\n\n-->\n", "*A*.\n\n<!--\n\n_A_ b.\n\n-->\n"),
    ("*A*.\n\n<video>\n\n_A_.\n\n</video>\n", "*A*.\n\n<video>\n\n_A_ b.\n\n</video>\n"),
    ("*A*.\n\n$$$\n\n_A_.\n\n$$\n", "*A*.\n\n$$$\n\n_A_ b.\n\n$$\n"),
    ("`</div>`\n\n*A*.\n\n<div>\n\n_A_.\n\n</div>\n",
     "`</div>`\n\n*A*.\n\n<div>\n\n_A_ b.\n\n</div>\n"),
    # a carriage return before a fence (a post never has one: posts.py reads it so),
    ("x\r```\n\nWord *under* score.\n\n```\n\nWord _under_ score.\n",
     "x\r```\n\nWord *under* sc  ore.\n\n```\n\nWord _under_ score.\n"),
    # and a list joined to another across a definition, which renders nothing.
    ("* x\n\n# H\n\n- a\n\n[r]: /u\n\n- x\n", "* x\n\n# H\n\n- a\n\n[r]: /u\n\n- xy\n"),
])
def test_what_depends_on_the_document_is_not_spliced(old, new):
    assert not whole_or_declined(old, new)


def test_whole_inline_tags_and_the_last_paragraph_are_spliced():
    assert whole_or_declined("A <span>tag</span> here." + FIGURE,
                             "A <span>tag</span> here, edited." + FIGURE)
    assert whole_or_declined("First.\n\nLast words.\n", "First.\n\nLast words, edited.\n")
    assert whole_or_declined("So p < 0.05 here." + FIGURE, "So p < 0.01 here." + FIGURE)


def test_random_edits_of_random_documents_splice_right_or_decline():
    """Documents made of paragraphs, lists and every kind of block around them, edited by
    inserting or deleting Markdown's special characters anywhere (a fixed seed)."""
    import random

    rng = random.Random(16)
    paragraphs = ["Plain words here.", "Some *emph* and **bold** text.", "A [link](http://x.org).",
                  "Math $x^2$ inline.", "Code `a|b` span.", "Line one  \nline two.", "Intro",
                  "See [ref] there.", "Esc \\* star.", "A <span>tag</span> inline.",
                  "- a list\n- of two"]
    blocks = ["# Intro", "## Intro", "Intro\n=====", "- a\n- b", "1. one\n2. two", "> quote",
              "```\ncode\n\nmore\n```", "    indented code", "<div>\nraw\n</div>",
              '<div markdown="1">\n\nInner *md*.\n\n</div>', "| a | b |\n|---|---|\n| 1 | 2 |",
              "[ref]: http://example.org", "Text.[^1]\n\n[^1]: Note.", "$$\nx\n$$", "---",
              "<!-- c -->", "- a\n\n- b", "Term\n{: .cls}", FIGURE.strip(),
              "<details>\n<summary>s</summary>\n\nInside para.\n\n</details>",
              "<video>\n\nIn a video.\n\n</video>", "<!--\n\nA comment.\n\n-->"]
    snippets = [" *x*", "{: #intro}", "{#intro}", '<span id="intro">', "`", "\\", "  \n", "\n",
                "[a]", "\n[a]: /u", "$x$", "$", "<div>", "</div>", "<b>", "</b>", ">", "&", "\t",
                " | a | b", "*", "_", "**", "\n1. ", "\n- ", "\n==", "\n--", "#", "[^1]",
                "<http://x.y>", "~~~", "\n    code", "\n>", "[TOC]", "\n\n", "{", "}", "][",
                "<br>", "</span>", "<", "<em", "<!--", "-->", "![i](x.png)", "***", "\n+ x",
                "&#", "&#38;", '"', "'", "<?php ", "?>", "<video>", "</video>", "$$$", " < 1"]
    spliced = 0
    for _ in range(2000):
        parts = [rng.choice(paragraphs) if rng.random() < 0.5 else rng.choice(blocks)
                 for _ in range(rng.randint(2, 7))]
        old = ("\n\n" if rng.random() < 0.9 else "\n\n\n").join(parts) + \
            ("\n" if rng.random() < 0.7 else "")
        new = old
        for _ in range(rng.randint(1, 2)):
            i = rng.randint(0, len(new))
            if rng.random() < 0.75:
                new = new[:i] + rng.choice(snippets) + new[i:]
            else:
                new = new[:i] + new[min(len(new), i + rng.randint(1, 4)):]
        if new != old:
            spliced += whole_or_declined(old, new)
    assert spliced >= 150, spliced          # the cases spliced are many, and all were right
