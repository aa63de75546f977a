"""A post body is compiled as a skeleton (render.jinja.split_text) whose compiled code is kept
in a pickle-free bytecode cache (render.jinja.CodeCache): a prose edit reuses it, and the output and the
error lines are those of compiling the body whole."""
from __future__ import annotations

import pickle
from pathlib import Path

import jinja2
import pytest
from hypothesis import given, settings, strategies as st

from generator.core.errors import ContentError
from generator.render.jinja import (TEXT_NAME, CodeCache, edit_text, make_body_env, make_env,
                                    render_body, split_text)

CTX = {"x": 2, "items": [1, 2, 3], "name": "LoRA", "flag": True}

# Templates that stress whitespace control, raw blocks, comments, macros, call blocks and
# block assignments: each must render identically whole and as a skeleton.
CASES = [
    "plain text only\n",
    "",
    "a {{ x }} b\n\n{% if flag %}\nyes\n{% endif %}\nend",
    "  {% if flag %}\n    indented {{ name }}\n  {% endif %}\n",
    "one\n\n\n   {%- if flag -%}   \n\n  two  \n\n {%- endif %}\n\nthree",
    "{% raw %}{{ not a var }} {% if %}{% endraw %} after {{ x }}",
    "before\n{% raw %}\nline1\n{{ y }}\n{% endraw %}\nafter {{ x }}\n",
    "{# a comment\nover lines #}text {{ x }}\n{#- stripped -#}\n  more\n",
    "{% macro m(a) %}\n<{{ a }} and {{ name }}>\n{% endmacro %}\n{{ m(1) }}{{ m('q') }}\n",
    "{% macro f(c) %}[{{ caller() }}|{{ c }}]{% endmacro %}\n"
    "{% call f(3) %}\ncaption $x^2$ {{ x }}\n{% endcall %}\n",
    "{% set block %}\ninner {{ x }}\ntext\n{% endset %}\n>{{ block | upper }}<\n",
    "{% for i in items %}\n- item {{ i }}{% if not loop.last %},{% endif %}\n{% endfor %}\n",
    "{% filter upper %}shout {{ name }}{% endfilter %} calm\n",
    "{%+ if flag %}  kept{% endif %}\n  {%+ if flag %}x{% endif %}\n",
    "tail without newline {{ x }}",
    "$$\n\\frac{a}{b} = {{ x }}\n$$\n\n| a | b |\n|---|---|\n| {{ x }} | 2 |\n",
    "dollars \\$5 and {{ '{{' }} literal braces {{ '}}' }}\n",
]


def _whole(src: str) -> str:
    return make_body_env().from_string(src).render(CTX)


def _skeleton(src: str) -> str:
    env = make_body_env()
    sk = split_text(env, src)
    return env.from_string(sk.source).render({**CTX, TEXT_NAME: sk.texts})


@pytest.mark.parametrize("src", CASES)
def test_skeleton_renders_exactly_like_the_whole_template(src):
    assert _skeleton(src) == _whole(src)


_PIECES = st.sampled_from([
    "text ", "\n", "\n\n", "  ", "\t", "{{ x }}", "{{- x }}", "{{ x -}}", "{% if flag %}",
    "{%- if flag %}", "{% if flag -%}", "{%+ if flag %}", "{% endif %}", "{%- endif -%}",
    "{# c #}", "{#- c\n-#}", "$a|b$", "{% raw %}{{ r }}\n{% endraw %}", "-", "%", "}", "{",
])


@st.composite
def _templates(draw):
    # Balanced by construction: every {% if %} piece opens one block closed at the end.
    pieces = draw(st.lists(_PIECES, max_size=25))
    out, depth = [], 0
    for p in pieces:
        if "endif" in p:
            if depth == 0:
                continue
            depth -= 1
        elif "if flag" in p:
            depth += 1
        out.append(p)
    out.extend(["{% endif %}"] * depth)
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(_templates())
def test_skeleton_equals_whole_on_generated_templates(src):
    try:
        expected = _whole(src)
    except jinja2.TemplateSyntaxError:
        with pytest.raises(jinja2.TemplateSyntaxError):
            _skeleton(src)
        return
    assert _skeleton(src) == expected


def test_a_prose_edit_leaves_the_skeleton_unchanged():
    env = make_body_env()
    a = ("Intro text.\n\n{% if flag %}\nThe value is {{ x }}.\n{% endif %}\nOutro.\n\n"
         "A closing {{ name }} paragraph.\n")
    sa = split_text(env, a)
    for edited in [
        a.replace("Intro text.", "A longer introduction,\nnow on two lines,\n\nand three."),
        a.replace("Outro.", "Outro with more words."),
        a.replace("Intro text.\n\n", "Intro.\n"),
        a.replace("A closing", "Lines\n\nbefore a closing"),
    ]:
        sb = split_text(env, edited)
        assert sb.texts != sa.texts
        assert sb.source == sa.source, edited
    # Moving a tag onto another line is a change of the skeleton (its line map depends on it).
    moved = a.replace("The value is {{ x }}.", "The value is\n{{ x }}.")
    assert split_text(env, moved).source != sa.source


def _error_line(src: str, tmp_path: Path, cached: bool) -> int | None:
    env = make_body_env(tmp_path / "jinja" if cached else None)
    with pytest.raises(ContentError) as err:
        render_body(env, src, dict(CTX), path=Path("post.md"), first_line=10)
    return err.value.line


@pytest.mark.parametrize("src", [
    "a\n\n\n   {%- if flag -%}\n\n\n {{ missing }}\n{% endif %}\n",
    "{% raw %}\n\n{% endraw %}\n\n  {{- missing.attr }}\n",
    "{# one\ntwo\nthree #}\n{%- if flag %}\n{{ x | fmt(2) }} {{ nope }}{% endif %}\n",
    "line\n\n{% if flag %}\n{% for i in items %}\n{{ i.bad.attr }}\n{% endfor %}{% endif %}\n",
    "ok\n\n\n{% if flag %}\n{% endfor %}\n",              # a syntax error
])
def test_errors_name_the_same_line_whole_and_as_skeleton(src, tmp_path):
    whole = _error_line(src, tmp_path, cached=False)
    assert whole is not None
    assert _error_line(src, tmp_path, cached=True) == whole


@settings(max_examples=200, deadline=None)
@given(_templates(), st.integers(min_value=0, max_value=30),
       st.sampled_from(["{{ missing }}", "{{- nope.attr }}", "{% if x.y.z %}!{% endif %}",
                        "{{ x | fmt(2) }}{{ 1 / 0 }}", "{% endfor %}", "{{ x +\n\n nope }}"]))
def test_error_lines_match_on_generated_templates(src, at, bad):
    """Any template with one bad tag put anywhere: the error names the same line whole and as
    a skeleton (whatever whitespace control stripped around it)."""
    cut = min(at, len(src))
    # Only between pieces that are not inside a tag.
    while cut > 0 and src.count("{", 0, cut) != src.count("}", 0, cut):
        cut -= 1
    bad_src = src[:cut] + bad + src[cut:]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        lines = []
        for cached in (False, True):
            env = make_body_env(Path(tmp) / "jinja" if cached else None)
            try:
                render_body(env, bad_src, dict(CTX), path=Path("post.md"), first_line=1)
                lines.append("no error")
            except ContentError as err:
                lines.append(err.line)
        assert lines[0] == lines[1], bad_src


def test_a_body_that_uses_the_text_name_is_compiled_whole(tmp_path):
    env = make_body_env(tmp_path / "jinja")
    src = f"{{% set {TEXT_NAME} = 1 %}}text {{{{ x }}}}\n"
    assert render_body(env, src, dict(CTX), path=Path("p.md")) == "text 2\n"


def _count_compiles(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = jinja2.Environment._compile

    def counting(self, source, filename):
        calls.append(source)
        return real(self, source, filename)

    monkeypatch.setattr(jinja2.Environment, "_compile", counting)
    return calls


def test_a_prose_edit_reuses_the_compiled_body_from_the_cache(tmp_path, monkeypatch):
    src = "Intro.\n\n{% if flag %}\nvalue {{ x }} of {{ name }}\n{% endif %}\n"
    edited = src.replace("Intro.", "A new first sentence.\n\nAnd a new paragraph,\nlonger.")
    tagged = edited.replace("{{ x }}", "{{ x + 1 }}")
    expected = {s: _whole(s) for s in (edited, tagged)}
    calls = _count_compiles(monkeypatch)
    cache = tmp_path / "jinja"
    out1 = render_body(make_body_env(cache), src, dict(CTX), path=Path("p.md"))
    assert len(calls) == 1
    # A new process: a new environment, the cache folder as the only memory.
    out2 = render_body(make_body_env(cache), edited, dict(CTX), path=Path("p.md"))
    assert len(calls) == 1, "the edited body was compiled again"
    assert out2 == out1.replace("Intro.", "A new first sentence.\n\nAnd a new paragraph,\nlonger.")
    assert out2 == expected[edited]
    # A change to a tag is a new skeleton: compiled again, and right.
    assert render_body(make_body_env(cache), tagged, dict(CTX), path=Path("p.md")) == expected[tagged]
    assert len(calls) == 2


def test_the_code_cache_never_unpickles(tmp_path, monkeypatch):
    folder = tmp_path / "jinja"
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "page.html").write_text("<p>{{ x }}</p>\n", encoding="utf-8")
    assert make_env([tmp_path / "t"], folder).get_template("page.html").render(x=1) == "<p>1</p>\n"
    [entry] = sorted(folder.iterdir())
    assert entry.read_bytes().startswith(CodeCache.FORMAT.encode())

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used to read the cache")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    calls = _count_compiles(monkeypatch)
    assert make_env([tmp_path / "t"], folder).get_template("page.html").render(x=2) == "<p>2</p>\n"
    assert calls == []                          # loaded from the cache, without pickle


@pytest.mark.parametrize("damage", ["header", "truncate", "garbage", "not code"])
def test_a_damaged_or_foreign_cache_entry_is_ignored_and_rewritten(tmp_path, monkeypatch, damage):
    import marshal

    folder = tmp_path / "jinja"
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "page.html").write_text("{{ x }}!", encoding="utf-8")
    make_env([tmp_path / "t"], folder).get_template("page.html")
    [entry] = sorted(folder.iterdir())
    data = entry.read_bytes()
    header, _, code = data.partition(b"\n")
    entry.write_bytes({
        "header": header.replace(b"lora-site", b"other-tool") + b"\n" + code,
        "truncate": data[: len(header) + 8],
        "garbage": header + b"\n" + b"\x00\xff" * 40,
        "not code": header + b"\n" + marshal.dumps({"a": 1}),
    }[damage])
    calls = _count_compiles(monkeypatch)
    assert make_env([tmp_path / "t"], folder).get_template("page.html").render(x=5) == "5!"
    assert len(calls) == 1                      # compiled afresh, not run from the bad entry
    assert entry.read_bytes() == data           # and the entry rewritten


def test_an_edited_template_is_never_run_from_a_stale_entry(tmp_path):
    folder = tmp_path / "jinja"
    (tmp_path / "t").mkdir()
    page = tmp_path / "t" / "page.html"
    page.write_text("old {{ x }}", encoding="utf-8")
    assert make_env([tmp_path / "t"], folder).get_template("page.html").render(x=1) == "old 1"
    page.write_text("new {{ x }}", encoding="utf-8")
    assert make_env([tmp_path / "t"], folder).get_template("page.html").render(x=1) == "new 1"


def test_a_filter_folded_into_compiled_code_is_recompiled_when_its_source_changes(tmp_path):
    """Jinja runs a filter on constants while compiling ({{ 8.0 | num }} becomes "8"), so the
    cached code of a body depends on the filters' source: it is part of the entry's header."""
    folder = tmp_path / "jinja"

    def render(code: str, num) -> str:
        env = make_body_env(folder)
        env.bytecode_cache.code = code
        env.filters["num"] = num
        env.loader.sources["body"] = "Rank {{ 8.0 | num }}."
        return env.get_template("body").render()

    assert render("a", lambda v: f"{v:g}") == "Rank 8."
    assert render("a", lambda v: f"num{v:g}") == "Rank 8."     # same header: the cached code
    assert render("b", lambda v: f"num{v:g}") == "Rank num8."  # filters' source changed
    assert CodeCache(folder).code == CodeCache(tmp_path / "other").code   # this file's hash


# ---------------------------------------------------------------------------------------------
# A prose edit patched into the last skeleton (render.jinja.edit_text) instead of lexing again

_PROSE = st.text(alphabet="ab \n\t-%}{#$|.", max_size=6)


@st.composite
def _edits(draw):
    """A template and an edit of it: some characters replaced by others, anywhere."""
    old = draw(_templates())
    a = draw(st.integers(0, len(old)))
    b = draw(st.integers(a, min(len(old), a + 6)))
    return old, old[:a] + draw(_PROSE) + old[b:]


def _same(a, b) -> bool:
    return (a.source, a.texts, a.lines, a.spans, a.marks) == \
        (b.source, b.texts, b.lines, b.spans, b.marks)


@settings(max_examples=5000, deadline=None)
@given(_edits())
def test_a_patched_skeleton_is_the_one_lexing_would_make(edit):
    old, new = edit
    env = make_body_env()
    try:
        before = split_text(env, old)
    except jinja2.TemplateSyntaxError:
        return
    patched = edit_text(before, old, new)
    if patched is None:
        return
    assert _same(patched, split_text(env, new)), (old, new)


def test_prose_edits_are_patched_and_tag_edits_are_not():
    env = make_body_env()
    a = ("Intro text,\nsecond line.\n\n{% if flag %}\nThe value is {{ x }}.\nmore\n{% endif %}\n"
         "Outro.\nend\n")
    sa = split_text(env, a)
    patched = [
        a.replace("Intro text", "A longer\n\nintroduction"),       # lines added before tags
        a.replace("The value is", "The value now is"),               # a tag's line, no break
        a.replace("Outro.", "Outro, longer."),
        a.replace("second line.", "second $W_{q}$ line."),          # TeX braces are prose
        a.replace(".\nmore\n", ".\nmore and more\n"),               # a line before the last
    ]
    for new in patched:
        sb = edit_text(sa, a, new)
        assert sb is not None, new
        assert _same(sb, split_text(env, new))
    for new in [a.replace("{{ x }}", "{{ y }}"),                     # a tag
                a.replace("is {{", "is {{ '{' }}{{"),                # a new tag
                a.replace("more\n", "mo{{ x }}re\n"),
                a.replace("more\n{% endif", "more\nso {% endif"),    # the last line, a block next
                a.replace("The value is", "The\nvalue is"),                # a break before a tag
                a.replace("The value", "Now the value"),                    # the run's first char
                a]:
        assert edit_text(sa, a, new) is None, new


def test_a_patched_body_renders_and_names_error_lines_as_a_fresh_one(tmp_path, monkeypatch):
    from generator.render import jinja as jinja_module
    from generator.render.jinja import BodyRenderer

    renderer = BodyRenderer(bytecode_dir=tmp_path / "jinja")
    body = "Intro.\nMore intro.\n\n{% if flag %}\nvalue {{ x }}\n{% endif %}\n{{ missing }}\n"
    with pytest.raises(ContentError) as err:
        renderer.render(body, dict(CTX), path=Path("post.md"), first_line=5)
    assert err.value.line == 5 + 6
    lexed = []
    real = jinja_module.split_text
    monkeypatch.setattr(jinja_module, "split_text", lambda *a: lexed.append(1) or real(*a))
    longer = body.replace("More intro.", "More intro,\nnow on\nthree lines.")
    with pytest.raises(ContentError) as err:
        renderer.render(longer, dict(CTX), path=Path("post.md"), first_line=5)
    assert err.value.line == 5 + 8 and lexed == []          # patched, not lexed again
    fixed = longer.replace("{{ missing }}", "{{ x }}")      # a tag: lexed again
    assert renderer.render(fixed, dict(CTX), path=Path("post.md")) == _whole(fixed)
    assert lexed == [1]
    prose = fixed.replace("now on", "spread over")
    assert renderer.render(prose, dict(CTX), path=Path("post.md")) == _whole(prose)
    assert lexed == [1]
