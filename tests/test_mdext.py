"""mdext: math and fenced code in the HTML output, decided by the same rules as the Jekyll
writer (render.dialect.iter_blocks, render.dialect.inline_math_spans)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from generator.render.mdext import display_math_html, fence_parts, highlight
from generator.render.dialect import inline_math_spans, iter_blocks
from generator.render.kramdown import to_kramdown
from generator.render.markdown import Markdowner

_MD = Markdowner()          # no highlight cache file: highlights every time
markdown_to_html, inline_markdown_to_html = _MD.to_html, _MD.inline

SPAN = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)
DIV = re.compile(r'<div class="arithmatex"(?: tabindex="0")?>\\\[\n(.*?)\n\\\]</div>', re.S)


def html(src: str) -> str:
    return markdown_to_html(src).html


@pytest.mark.parametrize("src, spans", [
    ("Text $a_1 * b_2$ and \\(c\\).", ["a_1 * b_2", "c"]),
    ("Price \\$5 and \\$6, not math.", []),
    ("A $ 5 and $ not math; $x$ is.", ["x"]),
    ("Escaped backslash \\\\$x$ then.", ["x"]),
    ("Code `$x$` and ``a `$` b`` then $y$.", ["y"]),
    ("Less $x < y$ and amp $a \\& b$.", ["x &lt; y", "a \\&amp; b"]),
    ("Pipes $|x|$ and $\\|v\\|$.", ["|x|", "\\|v\\|"]),
    ("Escaped dollar inside $a\\$b$.", ["a\\$b"]),
    ("*a $x*y$ b* and [t $z$](http://e.com)", ["x*y", "z"]),
    ("Unclosed $x and more.", []),
    ("| a | b |\n|---|---|\n| $x$ | 2 |", ["x"]),
    ("- item $y$\n- two\n\n> quote $q$", ["y", "q"]),
])
def test_inline_math_is_what_the_jekyll_writer_calls_math(src, spans):
    out = html(src)
    assert SPAN.findall(out) == spans
    # The same spans, by the Jekyll writer's own finder (TeX unescaped for comparison).
    found = [tex for kind, text in iter_blocks(src) if kind == "text"
             for _, _, tex in inline_math_spans(text)]
    assert [t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            for t in found] == spans


def test_an_escaped_dollar_is_a_dollar_sign():
    assert html("Costs \\$5, or \\$6.") == "<p>Costs $5, or $6.</p>"


def test_math_is_never_markdown():
    out = html("Stars $a*b*c$ and underscores $x_1 + y_1$.")
    assert "<em>" not in out
    assert SPAN.findall(out) == ["a*b*c", "x_1 + y_1"]


def test_display_math_is_one_block_in_both_outputs():
    src = "Para.\n\n$$\nS = \\frac{Q}{\\sqrt{d}} < 1 \\& 2\n$$\n\nAfter $z$.\n\n\\[\nx^2\n\\]\n"
    out = html(src)
    assert DIV.findall(out) == ["S = \\frac{Q}{\\sqrt{d}} &lt; 1 \\&amp; 2", "x^2"]
    assert out.startswith("<p>Para.</p>\n<div class=\"arithmatex\" tabindex=\"0\">")
    assert out.count("<p>") == 2
    kramdown = to_kramdown(src)
    assert kramdown.count("\n$$\n") == 4         # two display blocks, $$ on lines of their own


def test_display_math_without_blank_lines_is_still_display_math():
    # The Jekyll writer sets it apart; the HTML page must agree, not print the dollars.
    out = html("A line\n$$\nx\n$$\nmore text")
    assert DIV.findall(out) == ["x"] and "$$" not in out
    assert out == ('<p>A line</p>\n<div class="arithmatex" tabindex="0">\\[\nx\n\\]</div>\n'
                   '<p>more text</p>')


def test_display_math_html_escapes_only_what_html_needs():
    assert display_math_html('a < b & "c"') == '<div class="arithmatex">\\[\na &lt; b &amp; "c"\n\\]</div>'


def test_heading_with_math_keeps_its_math_and_toc():
    doc = markdown_to_html("## Head $x_1$ here\n\ntext\n")
    assert doc.html.startswith('<h2 id="head-x_1-here">Head <span class="arithmatex">'
                               '\\(x_1\\)</span> here</h2>')
    assert doc.toc[0]["id"] == "head-x_1-here"
    assert doc.toc[0]["name"] == "Head \\(x_1\\) here"


@pytest.mark.parametrize("block, language, code", [
    ("```python\nx = 1\n```", "python", "x = 1"),
    ("``` python\nx\n```", "python", "x"),
    ("```{.python}\nx\n```", "python", "x"),
    ("~~~\nplain\n~~~", "", "plain"),
    ("  ```js\n  a\n    b\n  ```", "js", "a\n  b"),
    ("````\n```\ninner\n```\n````", "", "```\ninner\n```"),
    ("```python\nnever closed", "python", "never closed"),
])
def test_fence_parts(block, language, code):
    assert fence_parts(block) == (language, code)


def test_fenced_code_is_highlighted_and_keeps_its_text():
    out = html("```python\ndef f(x):\n    return x < 1  # $x$ *not* math\n```\n\nAfter.")
    assert out.startswith('<div class="highlight"><pre tabindex="0"><span></span><code>'
                          '<span class="line"><span class="k">def</span>')
    assert "&lt;" in out and "$x$ *not* math" in out and "arithmatex" not in out
    assert out.endswith("</code></pre></div>\n<p>After.</p>")
    text = re.sub(r"<[^>]+>", "", out.split("</code>")[0])
    assert text == "def f(x):\n    return x &lt; 1  # $x$ *not* math\n"


@pytest.mark.parametrize("language", ["", "no-such-language-xyz"])
def test_unknown_or_missing_language_is_plain_text(language):
    out = highlight("a <b> & c", language)
    assert out == ('<div class="highlight"><pre><span></span><code><span class="line">'
                   'a &lt;b&gt; &amp; c</span>\n</code></pre></div>\n')


def test_indented_code_looks_like_fenced_code():
    out = html("    indented $x$ <b> &amp; &\n\nafter")
    assert out == ('<div class="highlight"><pre tabindex="0"><span></span><code>'
                   '<span class="line">indented $x$ &lt;b&gt; &amp;amp; &amp;</span>\n'
                   '</code></pre></div>\n<p>after</p>')


def test_consecutive_fences_are_separate_blocks():
    out = html("Multiple\n\n```python\nx = 1\n```\n\n```python\ny = 2\n```\n\nend")
    assert out.count('<div class="highlight">') == 2
    assert "</div>\n<div" in out and "\n\n" not in out


def test_a_caption_with_one_paragraph_loses_its_p_and_others_keep_theirs():
    assert inline_markdown_to_html("Scores, $QK^\\top$.") == \
        'Scores, <span class="arithmatex">\\(QK^\\top\\)</span>.'
    two = inline_markdown_to_html("One.\n\nTwo.")
    assert two == "<p>One.</p>\n<p>Two.</p>"


def test_rendering_math_and_cached_code_imports_no_pymdownx_pygments_or_urllib(tmp_path):
    """The point of this module: a rebuild whose code blocks are cached does not pay for
    importing Pygments (or pymdown-extensions and the urllib.request it pulls in)."""
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from generator.render.markdown import Markdowner\n"
        f"md = Markdowner(cache_file=Path({str(tmp_path / 'hl.json')!r}))\n"
        "md.to_html('x $a$\\n\\n```python\\nx = 1\\n```\\n')\n"
        "md.save()\n"
        "print(json.dumps([m for m in ('pygments', 'pymdownx', 'urllib.request')"
        " if m in sys.modules]))\n")
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    assert "pygments" in first.stdout                  # the first time, it highlights
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    assert again.stdout.strip() == "[]"
