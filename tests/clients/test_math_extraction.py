"""The math extractors the client checks compare with; pure Python, no client needed."""
from __future__ import annotations

from .checks import Math, compare_math, extract_math_from_html, extract_math_from_markdown


def I(tex):  # noqa: E743 - short names keep the expectations readable
    return Math("inline", tex)


def D(tex):
    return Math("display", tex)


def test_both_dollar_dialects_and_both_bracket_forms():
    md = ("Given $X \\in \\mathbb{R}^{n \\times d}$ and $$q_i$$, also \\(k_j\\).\n\n"
          "$$\nQ = X W_Q\n$$\n\n\\[\nK = X W_K\n\\]\n")
    assert extract_math_from_markdown(md) == [
        I("X\\in\\mathbb{R}^{n\\times d}"), I("q_i"), I("k_j"), D("Q=X W_Q"), D("K=X W_K")]


def test_display_needs_a_paragraph_of_its_own():
    assert extract_math_from_markdown("Text\n$$x$$\n\nmore") == [I("x")]
    assert extract_math_from_markdown("Text\n\n  $$x$$  \n\nmore") == [D("x")]
    assert extract_math_from_markdown("$$x$$") == [D("x")]


def test_code_escaped_dollars_and_prices_are_not_math():
    md = ("```python\nx = '$a$'\n```\n\nUse `$b$` inline; it costs \\$5, "
          "not $ 5 and $ 6; but $c$ is math.\n")
    assert extract_math_from_markdown(md) == [I("c")]


def test_math_never_spans_a_blank_line():
    assert extract_math_from_markdown("a $b\n\nc$ d") == []


def test_jekyll_dialect_guards_and_spellings_compare_equal_to_the_plain_ones():
    jekyll = ("---\nlayout: post\n---\n{%- include mathjax.html -%}\n$$\n\\vert x \\vert\n$$\n\n"
              "Inline {% raw %}$$a = {{ b }}$${% endraw %} and $$\\Vert y \\Vert$$.\n")
    plain = "$$|x|$$\n\nInline $a={{ b }}$ and $\\|y\\|$.\n"
    assert extract_math_from_markdown(jekyll) == extract_math_from_markdown(plain) == [
        D("|x|"), I("a={{b}}"), I("\\|y\\|")]


def test_html_math_is_read_from_text_with_entities_decoded_and_code_skipped():
    page = ("<html><head><script>MathJax={tex:{inlineMath:[['\\\\(','\\\\)']]}}</script></head>"
            "<body><p>a <span class='arithmatex'>\\(x &lt; y\\)</span></p>"
            "<pre><code>\\(not math\\)</code></pre>"
            "<div class='arithmatex'>\\[\n\\frac{a}{b} \\\\[2pt] c\n\\]</div></body></html>")
    assert extract_math_from_html(page) == [I("x<y"), D("\\frac{a}{b}\\\\[2pt]c")]


def test_compare_names_the_first_difference():
    assert compare_math([I("a"), D("b")], [I("a"), D("b")], "p") == []
    assert compare_math([I("a"), D("b")], [I("a"), I("b")], "p") == [
        "p: math #2 should be display 'b', the HTML has inline 'b'"]
    assert compare_math([I("a"), D("b")], [I("a")], "p") == [
        "p: 2 math expressions in the source, 1 intact in the HTML",
        "p: math #2 is missing from the HTML: display 'b'"]
