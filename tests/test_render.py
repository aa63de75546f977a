"""render/: Jinja filters, Markdown -> HTML, Markdown -> kramdown-safe Markdown, listings."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from generator.core.errors import ContentError
from generator.render.jinja import fmt, make_body_env, num, pct, render_body, sci_tex
from generator.render.kramdown import (escape_markdown, guard_liquid, kramdown_inline_tex,
                                       to_kramdown)
from generator.render.listings import PACKAGE_DIR, listing
from generator.render.markdown import Markdowner

_MD = Markdowner()
markdown_to_html, inline_markdown_to_html, pygments_css = _MD.to_html, _MD.inline, _MD.pygments_css
from site_checks import liquid_visible, strip_raw_guards

# ---------------------------------------------------------------------------------------------
# Filters


def test_fmt_fixed_decimals_and_no_negative_zero():
    assert fmt(0.94103, 3) == "0.941"
    assert fmt(2, 2) == "2.00"
    assert fmt(-0.0001, 2) == "0.00"
    assert fmt(-1.5, 1) == "-1.5"


@pytest.mark.parametrize("bad", [None, "0.5", float("nan"), float("inf"), True])
def test_fmt_refuses_what_is_not_a_finite_number(bad):
    with pytest.raises(ContentError):
        fmt(bad, 2)


def test_num_prints_settings_as_written():
    assert num(8.0) == "8"
    assert num(0.01) == "0.01"
    assert num(500) == "500"
    assert num(2.5) == "2.5"


def test_sci_tex_and_pct():
    assert sci_tex(0.00081, 1) == "8.1 \\times 10^{-4}"
    assert sci_tex(1.19, 1) == "1.2"
    assert sci_tex(12345.0, 2) == "1.23 \\times 10^{4}"
    assert pct(0.1666) == "17%"


# ---------------------------------------------------------------------------------------------
# Rendering a body


def _render(src: str, **ctx) -> str:
    return render_body(make_body_env(), src, ctx, path=Path("post.md"), first_line=10)


def test_render_body_fills_values_and_drops_block_lines():
    out = _render("{% set x = 3 %}\nA {{ v | fmt(1) }}.\n{% if v > 1 %}\nbig\n{% endif %}\n", v=2.25)
    assert out == "A 2.2.\nbig\n" or out == "A 2.3.\nbig\n"


def test_undefined_value_is_an_error_naming_file_and_line():
    with pytest.raises(ContentError) as err:
        _render("line one\nline two {{ main.metrics.nope }}\n", main={"metrics": {}})
    msg = err.value.message
    assert msg.startswith("post.md:11: ")          # body line 2, body starts at file line 10
    assert "nope" in msg


def test_syntax_error_names_the_line():
    with pytest.raises(ContentError) as err:
        _render("a\nb\n{% if %}\n")
    assert err.value.message.startswith("post.md:12: template syntax error")


def test_fmt_error_inside_template_names_the_line():
    with pytest.raises(ContentError) as err:
        _render("a\n{{ none | fmt(2) }}\n", none=None)
    assert err.value.message.startswith("post.md:11: fmt: expected a number")


# ---------------------------------------------------------------------------------------------
# Markdown -> HTML


def test_html_math_is_wrapped_in_arithmatex():
    doc = markdown_to_html("## Head\n\nText $a_1 * b_2$ and \\(c\\).\n\n$$\nS = \\frac{Q}{\\sqrt{d}}\n$$\n")
    assert '<span class="arithmatex">\\(a_1 * b_2\\)</span>' in doc.html
    assert '<span class="arithmatex">\\(c\\)</span>' in doc.html
    # Display math may scroll sideways on a phone, so it takes keyboard focus.
    assert '<div class="arithmatex" tabindex="0">\\[\nS = \\frac{Q}{\\sqrt{d}}\n\\]</div>' \
        in doc.html
    assert doc.toc[0]["id"] == "head"


def test_html_code_is_highlighted_and_not_math():
    doc = markdown_to_html("```python\nx = '$a$'  # {{ y }}\n```\n")
    assert '<div class="highlight"><pre tabindex="0">' in doc.html
    assert "arithmatex" not in doc.html
    assert "{{ y }}" in doc.html


def test_inline_caption_has_no_paragraph():
    assert inline_markdown_to_html("Scores, $QK^\\top$.") == \
        'Scores, <span class="arithmatex">\\(QK^\\top\\)</span>.'


def test_pygments_css_has_both_schemes():
    css = pygments_css()
    # Print takes the light rules even when the reader prefers dark.
    assert "@media print, (prefers-color-scheme: light)" in css
    assert "@media screen and (prefers-color-scheme: dark)" in css
    assert css.count(".highlight .k ") == 2 or css.count(".highlight .k {") == 2


# ---------------------------------------------------------------------------------------------
# Markdown -> kramdown


def test_inline_math_becomes_double_dollar_with_vert():
    out = to_kramdown("Norm $|\\Delta Q|$ and $\\|x\\|$ and \\(a_b\\).\n")
    assert out == "Norm $$\\vert \\Delta Q\\vert $$ and $$\\Vert x\\Vert $$ and $$a_b$$.\n"


def test_display_math_gets_its_own_lines_between_blank_lines():
    out = to_kramdown("Text:\n$$\nS = \\frac{a}{b}\n$$\nMore.\n")
    assert out == "Text:\n\n$$\nS = \\frac{a}{b}\n$$\n\nMore.\n"
    out = to_kramdown("A\n\\[ x = 1 \\]\nB\n")
    assert out == "A\n\n$$\nx = 1\n$$\n\nB\n"


def test_fenced_code_is_left_exactly_as_written():
    code = "```python\nprice = '$5 and $6'  # a | b\nd = {'a': {'b': 1}}\n```"
    out = to_kramdown(f"Before $x$.\n\n{code}\n\nAfter.\n")
    # The code, then kramdown's attribute list making the block focusable (it can scroll).
    assert f"\n{code}\n{{: tabindex=\"0\"}}\n" in out


def test_fenced_code_with_liquid_is_guarded_outside_the_fence():
    code = "```jinja\n{{ value }} {% if x %}\n```"
    out = to_kramdown(code + "\n")
    assert out == "{% raw %}\n" + code + '\n{: tabindex="0"}\n{% endraw %}\n'


def test_liquid_in_text_and_math_is_guarded():
    src = "Use {{ x }} and {% tag %}; math $\\frac{{a}}{b}$.\n"
    out = to_kramdown(src)
    # What Liquid would interpret: everything outside {% raw %}..{% endraw %} regions.
    assert not re.search(r"\{[{%]", liquid_visible(out))
    assert strip_raw_guards(out) == "Use {{ x }} and {% tag %}; math $$\\frac{{a}}{b}$$.\n"


def test_guard_survives_a_literal_endraw():
    text = "say {% endraw %} here"
    assert strip_raw_guards(guard_liquid(text)) == text
    # Every {% is now the start of a raw or endraw tag.
    assert all(t in ("raw", "endraw") for t in re.findall(r"\{%\s*(\w+)", guard_liquid(text)))


def test_escaped_dollar_and_code_spans_are_not_math():
    src = "It costs \\$5, not `$x$`, and $y$.\n"
    assert to_kramdown(src) == "It costs \\$5, not `$x$`, and $$y$$.\n"


def test_inline_double_dollar_in_text_is_refused():
    with pytest.raises(ContentError):
        to_kramdown("Bad $$x$$ inline.\n")


def test_unclosed_display_math_is_an_error():
    with pytest.raises(ContentError):
        to_kramdown("$$\nx = 1\n")


def test_number_at_line_start_does_not_start_a_list():
    out = to_kramdown("attention on key\n5. Measured again\n\n1. first\n   wraps\n2. second\n")
    assert "key\n5\\. Measured" in out
    assert "\n1. first\n   wraps\n2. second\n" in out


def test_kramdown_inline_tex_keeps_escaped_bars():
    assert kramdown_inline_tex("a|b") == "a\\vert b"
    assert kramdown_inline_tex("\\|v\\|") == "\\Vert v\\Vert "


def test_escape_markdown_makes_markup_inert():
    assert escape_markdown("A <b> & {{x}} # [l](u) | $ {:x}") == \
        "A \\<b\\> &amp; {% raw %}{{{% endraw %}x}} \\# \\[l\\](u) \\| \\$ \\{:x}"


# ---------------------------------------------------------------------------------------------
# Listings


def _segment(module: str, name: str) -> str:
    path = PACKAGE_DIR / "science" / f"{module}.py"
    src = path.read_text(encoding="utf-8")
    for node in ast.parse(src).body:
        if getattr(node, "name", None) == name:
            return ast.get_source_segment(src, node)
    raise AssertionError(name)


@pytest.mark.parametrize("module,name", [("attention", "TinySelfAttention"),
                                         ("lora", "LoRALinear"), ("lora", "inject_lora")])
def test_listing_is_the_source_segment(module, name):
    assert listing(module, name) == _segment(module, name)
    assert listing(f"generator.science.{module}", name) == listing(module, name)
    assert listing(f"science.{module}", name) == listing(module, name)


def test_listing_of_a_method_is_dedented_and_keeps_decorators():
    text = listing("lora", "LoRALinear.merge")
    assert text.startswith("@torch.no_grad()\ndef merge(self)")


@pytest.mark.parametrize("module", ["../setup", "os.path", "/etc/passwd", "generator.x.y", ""])
def test_listing_refuses_modules_outside_the_package(module):
    with pytest.raises(ContentError):
        listing(module, "anything")


def test_listing_of_a_missing_name_is_an_error():
    with pytest.raises(ContentError) as err:
        listing("lora", "NoSuchClass")
    assert "NoSuchClass" in err.value.message


# ---------------------------------------------------------------------------------------------
# Jinja whitespace control never glues two Markdown blocks together

@pytest.mark.parametrize("body, line, marker", [
    ("- the last item\n\n{#- a comment -#}\n**Next paragraph.**\n", 3, "{#-"),
    ("- the last item\n\n{%- set x = 1 %}\n**Next paragraph.**\n", 3, "{%-"),
    ("A paragraph.\n\n   {{- x }} and more\n", 3, "{{-"),
    ("## Heading {# c -#}\n\nA paragraph.\n", 1, "-#}"),
    ("{% set y = 2 -%}\n\n\n| a | b |\n|---|---|\n", 1, "-%}"),
    ("Text {{ x -}}\n  \nmore text\n", 1, "-}}"),
])
def test_a_whitespace_marker_that_eats_a_blank_line_is_refused(body, line, marker):
    from generator.render.jinja import check_whitespace_control

    with pytest.raises(ContentError) as err:
        check_whitespace_control(body, path=Path("post.md"), first_line=10)
    assert err.value.message.startswith(f"post.md:{9 + line}: '{marker}' strips the blank line ")
    assert "glues two Markdown blocks together" in err.value.message
    # Through the renderer too, before anything renders.
    with pytest.raises(ContentError, match=f"post.md:{9 + line}:"):
        render_body(make_body_env(), body, {"x": 1}, path=Path("post.md"), first_line=10)


@pytest.mark.parametrize("body", [
    "{#- a note -#}\n{% set c = 1 %}\n## Introduction\n",      # the posts' opening comments
    "$q_{ {{- q -}} }$ inline\n",
    "- item\n- item {{- x }}\n\nA paragraph.\n",
    "{% raw %}\n\n{#- not a tag here -#}\n\n{% endraw %}\n",
    "text\n{%- if x %}\nyes\n{%- endif %}\n",
])
def test_whitespace_markers_that_keep_blocks_apart_are_fine(body):
    from generator.render.jinja import check_whitespace_control

    check_whitespace_control(body, path=Path("post.md"))
