"""Rendering: the Jinja environment, Markdown -> HTML, and Markdown -> kramdown-safe Markdown.

Everything here returns strings; nothing writes files (site.py is the one place that does).

The author's dialect (what content/posts/*.md may use), chosen because Python-Markdown's
arithmatex understands it directly:
  inline math   $...$  or  \\(...\\)
  display math  $$ on a line of its own, the TeX, and $$ on a line of its own (or \\[ ... \\])
  a literal dollar sign in prose is written \\$
The Jekyll writer (``to_kramdown``) rewrites this into what kramdown and Liquid need.
"""
from __future__ import annotations

import math
import re
import traceback
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import jinja2

from .errors import ContentError

# --------------------------------------------------------------------------------------------
# Jinja


def fmt(value: Any, digits: int = 3) -> str:
    """A number with a fixed count of decimals: ``{{ x | fmt(3) }}``.

    None, NaN or a non-number is an error rather than a silent "None" in the article.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ContentError(f"fmt: expected a number, got {value!r}",
                           hint="check the metric name; some metrics are None when undefined")
    if not math.isfinite(value):
        raise ContentError(f"fmt: the value is not finite ({value!r})")
    text = f"{value:.{int(digits)}f}"
    # "-0.000" reads as a sign error; a value that rounds to zero is zero.
    if text.lstrip("-").strip("0.") == "":
        text = text.lstrip("-")
    return text


def fmt_sci(value: Any, digits: int = 1) -> str:
    """Scientific notation in the form a reader can paste into Python: 0.00081 -> '8.1e-04'."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ContentError(f"fmt_sci: expected a finite number, got {value!r}")
    return f"{value:.{int(digits)}e}"


def sci_tex(value: Any, digits: int = 1) -> str:
    """Scientific notation as TeX, for use inside math: 0.00081 -> '8.1 \\times 10^{-4}'."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ContentError(f"sci_tex: expected a finite number, got {value!r}")
    mantissa, exponent = f"{value:.{int(digits)}e}".split("e")
    exp = int(exponent)
    return mantissa if exp == 0 else f"{mantissa} \\times 10^{{{exp}}}"


def pct(value: Any, digits: int = 0) -> str:
    """A fraction as a percentage: 0.941 -> '94%'."""
    return fmt(value * 100 if isinstance(value, (int, float)) and not isinstance(value, bool)
               else value, digits) + "%"


def num(value: Any) -> str:
    """A setting as its author would write it: 8.0 -> '8', 0.01 -> '0.01', 500 -> '500'."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ContentError(f"num: expected a finite number, got {value!r}")
    return str(value) if isinstance(value, int) else f"{value:g}"


def argmax(values: Any, exclude: int | None = None) -> int:
    """Index of the largest value, skipping index ``exclude``: which other token moved most."""
    best = None
    for i, v in enumerate(values):
        if i != exclude and (best is None or v > values[best]):
            best = i
    if best is None:
        raise ContentError("argmax: no values to compare")
    return best


def argmin(values: Any, exclude: int | None = None) -> int:
    return argmax([-v for v in values], exclude)


class CodeCache(jinja2.BytecodeCache):
    """Compiled templates kept between builds, read back without pickle.

    Jinja's own FileSystemBytecodeCache stores each entry's checksum with pickle, and nothing
    this project reads from disk is unpickled. An entry here is one header line (this format,
    Python's bytecode magic number, Jinja's version, Jinja's checksum of the template source),
    then the code object marshalled as in a .pyc. An entry whose header is not exactly the
    expected one is ignored (and rewritten), so an edited template or another Python or Jinja
    never runs stale code. One file per template name: the folder does not grow with edits.
    """

    FORMAT = "lora-site-jinja-code 1"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, bucket: jinja2.bccache.Bucket) -> Path:
        return self.directory / f"{bucket.key}.code"

    def _header(self, bucket: jinja2.bccache.Bucket) -> bytes:
        from importlib.util import MAGIC_NUMBER

        return (f"{self.FORMAT} {MAGIC_NUMBER.hex()} {jinja2.__version__} "
                f"{bucket.checksum}\n").encode("ascii")

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        import marshal
        import types

        try:
            data = self._path(bucket).read_bytes()
        except OSError:
            return
        header = self._header(bucket)
        if not data.startswith(header):
            return
        try:
            code = marshal.loads(data[len(header):])
        except (EOFError, ValueError, TypeError):
            return
        if isinstance(code, types.CodeType):
            bucket.code = code

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        import marshal

        from .fsio import write_bytes_atomic

        write_bytes_atomic(self._path(bucket), self._header(bucket) + marshal.dumps(bucket.code))


def make_env(template_dirs: Iterable[Path],
             bytecode_dir: Path | None = None) -> jinja2.Environment:
    """The environment for page templates (HTML, XML, Jekyll files).

    Autoescaping is on for .html and .xml, so a title with < or & is inert everywhere;
    StrictUndefined turns a misspelt variable into an error instead of an empty string.
    bytecode_dir: where compiled templates are kept between builds (each checked against its
    template's source), so a prose edit does not recompile the page templates.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in template_dirs]),
        bytecode_cache=CodeCache(bytecode_dir) if bytecode_dir is not None else None,
        autoescape=jinja2.select_autoescape(["html", "xml"], default_for_string=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    _add_filters(env)
    return env


class _SkeletonLoader(jinja2.BaseLoader):
    """Holds the skeletons of post bodies (see split_text), by name, for get_template."""

    def __init__(self) -> None:
        self.sources: dict[str, str] = {}

    def get_source(self, environment: jinja2.Environment, template: str):
        if template not in self.sources:
            raise jinja2.TemplateNotFound(template)
        source = self.sources[template]
        return source, None, lambda: self.sources.get(template) == source


def make_body_env(bytecode_dir: Path | None = None) -> jinja2.Environment:
    """The environment for post bodies: Markdown, so no autoescaping (HTML is escaped by
    Markdown's own rules), and block tags that swallow their own line.

    bytecode_dir: where the compiled skeletons of bodies are kept between builds (render_body).
    """
    env = jinja2.Environment(
        loader=_SkeletonLoader(),
        bytecode_cache=CodeCache(bytecode_dir) if bytecode_dir is not None else None,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    _add_filters(env)
    return env


# The name under which a skeleton reads its text; a body that uses it is compiled whole.
TEXT_NAME = "__lora_site_text__"


@dataclass(frozen=True)
class Skeleton:
    """A template split by split_text: ``source`` renders, with ``TEXT_NAME=texts``, exactly as
    the original does; ``lines[i]`` is the original line of the skeleton's line i + 1."""
    source: str
    texts: list[str]
    lines: list[int]

    def original_line(self, line: int | None) -> int | None:
        if line is None or not 1 <= line <= len(self.lines):
            return None
        return self.lines[line - 1]


def split_text(env: jinja2.Environment, source: str) -> Skeleton:
    """Split a template into its tags and its plain text: the skeleton keeps every tag and
    comment as written and puts ``{{ TEXT_NAME[i] }}`` where the i-th run of text was.

    Why: compiling a post body costs more than the rest of a prose-edit rebuild, and a prose
    edit changes only the text. The skeleton stays the same, so its compiled code is reused
    from the bytecode cache. The texts come from Jinja's own lexer, after it has applied
    trim_blocks, lstrip_blocks and the - markers, so whitespace control is untouched.

    The skeleton has no line breaks of its own, so adding or removing lines of prose leaves it
    unchanged too; a tag that starts on a new line of the original starts a new line of the
    skeleton (after an empty comment), and ``lines`` maps each skeleton line back, so errors
    still name the post's line.
    """
    parts: list[str] = []
    texts: list[str] = []
    lines = [1]                 # the original line of each skeleton line so far
    for lineno, kind, value in env.lex(source):
        if kind in ("raw_begin", "raw_end"):
            continue            # the raw block's content is a text now
        if kind == "data":
            parts.append(f"{{{{ {TEXT_NAME}[{len(texts)}] }}}}")
            texts.append(value)
            continue
        if lineno != lines[-1]:
            parts.append("{#\n#}")
            lines.append(lineno)
        parts.append(value)
        # A tag that spans lines spans as many in both.
        lines.extend(range(lineno + 1, lineno + 1 + value.count("\n")))
    return Skeleton("".join(parts), texts, lines)


def _add_filters(env: jinja2.Environment) -> None:
    env.filters["fmt"] = fmt
    env.filters["fmt_sci"] = fmt_sci
    env.filters["pct"] = pct
    env.filters["num"] = num
    env.filters["sci_tex"] = sci_tex
    env.globals["argmax"] = argmax
    env.globals["argmin"] = argmin
    env.globals["enumerate"] = enumerate
    env.globals["zip"] = zip


def _template_line(exc: BaseException) -> int | None:
    """The line of the template being rendered when ``exc`` was raised (Jinja rewrites
    tracebacks so template frames carry the template's name and line)."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == "<template>":
            line = frame.lineno
    return line


_compiled: "weakref.WeakKeyDictionary[jinja2.Environment, dict[str, tuple]]" = \
    weakref.WeakKeyDictionary()


def _compile_body(env: jinja2.Environment, source: str,
                  name: str) -> tuple[jinja2.Template, dict, Skeleton | None]:
    """The body as (template, extra context, skeleton or None). With a bytecode cache, the
    template is the body's skeleton (split_text), found in the cache after a prose-only edit.
    Syntax errors carry the body's line numbers either way."""
    if env.bytecode_cache is None or TEXT_NAME in source:
        return env.from_string(source), {}, None
    try:
        skeleton = split_text(env, source)
    except jinja2.TemplateSyntaxError:
        # The lexer read the whole body before the parser saw its first tag; compiling whole
        # reports the error a reader meets first, as the uncached path does.
        return env.from_string(source), {}, None
    env.loader.sources[name] = skeleton.source
    try:
        template = env.get_template(name)
    except jinja2.TemplateSyntaxError as exc:
        exc.lineno = skeleton.original_line(exc.lineno)
        raise
    return template, {TEXT_NAME: skeleton.texts}, skeleton


def render_body(env: jinja2.Environment, source: str, context: dict[str, Any], *,
                path: Path, first_line: int = 1) -> str:
    """Render a post body (Jinja over Markdown). Errors name the post file and its line."""
    def where(line: int | None) -> int | None:
        return None if line is None else first_line + line - 1

    try:
        # A body is rendered once per output (HTML, Jekyll): compile it once.
        compiled = _compiled.setdefault(env, {})
        if source not in compiled:
            compiled[source] = _compile_body(env, source, name=f"post-body:{path.name}")
        template, extra, skeleton = compiled[source]
    except jinja2.TemplateSyntaxError as exc:
        raise ContentError(f"template syntax error: {exc.message}", path=path,
                           line=where(exc.lineno), hint="fix the {{ }} or {% %} tag") from None

    def line_of(exc: BaseException) -> int | None:
        line = _template_line(exc)
        return where(skeleton.original_line(line) if skeleton is not None else line)

    try:
        return template.render({**context, **extra})
    except ContentError as exc:
        from .located import located

        raise located(exc, path=path, line=line_of(exc)) from None
    except jinja2.UndefinedError as exc:
        raise ContentError(f"undefined value: {exc.message}", path=path, line=line_of(exc),
                           hint="check the name against the results' metrics and config") from None
    except jinja2.TemplateError as exc:
        raise ContentError(f"template error: {exc}", path=path, line=line_of(exc)) from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError) as exc:
        raise ContentError(f"error in a template expression: {type(exc).__name__}: {exc}",
                           path=path, line=line_of(exc)) from None


# --------------------------------------------------------------------------------------------
# Markdown -> HTML

@dataclass(frozen=True)
class HtmlDoc:
    html: str
    toc: list[dict]     # [{'level', 'id', 'name', 'html', 'children': [...]}], from Python-Markdown


_converters: dict[str, Any] = {}


def _markdown():
    """A Markdown converter, reset and ready. One is built per process and reused: building
    one loads seven extensions, which costs more than converting a caption."""
    md = _converters.get("md")
    if md is None:
        md = _converters["md"] = _new_markdown()
    md.reset()
    return md


class HighlightCache:
    """Highlighted code blocks kept between builds in a JSON file, keyed by the hash of
    everything that decides one: the code, its language and the Pygments version.

    Pygments' import and a lexer's first use cost more than the rest of a prose-edit rebuild;
    the listings rarely change, so they are looked up instead. The stylesheet's Pygments rules
    are kept here too. The newest MAX_ENTRIES entries are kept (a post reused from the post
    cache highlights nothing, yet its blocks will be wanted again).
    """

    MAX_ENTRIES = 400
    FORMAT = 2

    def __init__(self, path: Path) -> None:
        import json

        self.path = Path(path)
        try:
            self.entries: dict[str, str] = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(self.entries, dict):
                self.entries = {}
        except (OSError, ValueError):
            self.entries = {}
        self.used: dict[str, str] = {}

    def save(self) -> None:
        import json

        from .fsio import write_bytes_atomic

        new = {k: v for k, v in self.used.items() if k not in self.entries}
        if new:
            # Oldest first, so the cap drops what has not been used for longest.
            kept = {k: v for k, v in self.entries.items() if k not in self.used}
            merged = list(kept.items()) + list(self.used.items())
            self.entries = dict(merged[-self.MAX_ENTRIES:])
            text = json.dumps(self.entries, indent=0)
            write_bytes_atomic(self.path, text.encode("utf-8"))


_highlight_cache: HighlightCache | None = None


def use_highlight_cache(path: Path | None) -> HighlightCache | None:
    """Look highlighted code blocks up in ``path`` from now on (None: highlight every time)."""
    global _highlight_cache
    _highlight_cache = HighlightCache(path) if path is not None else None
    return _highlight_cache


def _pygments_version() -> str:
    """Read from the installed distribution's metadata folder: importing Pygments to ask it
    costs what the cache saves."""
    from .freeze import installed_version

    return installed_version("pygments") or "unknown"


def _highlight_fence(code: str, language: str) -> str:
    """mdext.highlight, through the HighlightCache when one is in use."""
    from .mdext import highlight

    cache = _highlight_cache
    if cache is None:
        return highlight(code, language)
    import hashlib
    import json

    key = hashlib.sha256(json.dumps([HighlightCache.FORMAT, _pygments_version(), language, code])
                         .encode("utf-8")).hexdigest()
    html = cache.entries.get(key)
    if html is None:
        html = highlight(code, language)
    cache.used[key] = html
    return html


def _new_markdown():
    # Extensions as objects, not names: by name, Markdown first reads every installed
    # package's entry points to find them, which costs more than a prose-edit render.
    import markdown
    from markdown.extensions.attr_list import AttrListExtension
    from markdown.extensions.md_in_html import MarkdownInHtmlExtension
    from markdown.extensions.tables import TableExtension
    from markdown.extensions.toc import TocExtension

    from .mdext import MathAndCodeExtension

    return markdown.Markdown(
        extensions=[
            # $...$, \\(...\\), $$ blocks and ``` fences, as the Jekyll writer reads them.
            MathAndCodeExtension(highlighter=_highlight_fence),
            TocExtension(permalink=False, toc_depth="2-3"),
            TableExtension(),
            AttrListExtension(),
            MarkdownInHtmlExtension(),
        ],
        output_format="html",
    )


def markdown_to_html(source: str) -> HtmlDoc:
    md = _markdown()
    html = md.convert(source)
    # A block that can scroll sideways (code, wide display math) must be reachable from the
    # keyboard, or keyboard users cannot scroll it (axe: scrollable-region-focusable).
    html = html.replace('<div class="highlight"><pre>', '<div class="highlight"><pre tabindex="0">')
    html = html.replace('<div class="arithmatex">', '<div class="arithmatex" tabindex="0">')
    html = html.replace('<table>', '<table tabindex="0">')      # tables scroll sideways too
    return HtmlDoc(html=html, toc=list(getattr(md, "toc_tokens", [])))


def inline_markdown_to_html(source: str) -> str:
    """One line of Markdown (a caption) as inline HTML, math included, without the <p>."""
    html = _markdown().convert(source).strip()
    if html.startswith("<p>") and html.endswith("</p>") and html.count("<p>") == 1:
        html = html[3:-4]
    return html


def pygments_css(light: str = "default", dark: str = "github-dark") -> str:
    """Highlighting rules for both colour schemes, each inside its own media query so no rule of
    one scheme leaks into the other."""
    cache = _highlight_cache
    key = None
    if cache is not None:
        key = f"css:{_pygments_version()}:{light}:{dark}"
        if key in cache.entries:
            cache.used[key] = cache.entries[key]
            return cache.entries[key]
    from pygments.formatters import HtmlFormatter

    def rules(style: str) -> str:
        css = HtmlFormatter(style=style).get_style_defs(".highlight")
        return "\n".join("  " + line for line in css.splitlines() if line.strip())

    css = (f"/* Pygments '{light}' */\n@media (prefers-color-scheme: light) {{\n{rules(light)}\n}}\n"
           f"/* Pygments '{dark}' */\n@media (prefers-color-scheme: dark) {{\n{rules(dark)}\n}}\n")
    if cache is not None:
        cache.used[key] = css
    return css


# --------------------------------------------------------------------------------------------
# Markdown -> kramdown-safe Markdown (the Jekyll post)

FOCUSABLE_IAL = '{: tabindex="0"}'
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})")
_LIQUID = re.compile(r"\{[{%]")


def _display_open(line: str) -> str | None:
    s = line.strip()
    if s.startswith("$$"):
        return "$$"
    if s.startswith("\\["):
        return "\\]"
    return None


def iter_blocks(source: str):
    """Split Markdown into ('fence', text), ('math', tex) and ('text', text) blocks.

    Fenced code and display math are recognised line by line; everything else is text."""
    lines = source.split("\n")
    i = 0
    text: list[str] = []

    def flush():
        if text:
            yield_ = "\n".join(text)
            text.clear()
            return yield_
        return None

    out: list[tuple[str, str]] = []
    while i < len(lines):
        line = lines[i]
        m = _FENCE.match(line)
        close = _display_open(line)
        if m:
            t = flush()
            if t is not None:
                out.append(("text", t))
            marker = m.group(2)
            j = i + 1
            while j < len(lines):
                c = lines[j].strip()
                if c.startswith(marker[0] * len(marker)) and set(c) <= {marker[0]}:
                    break
                j += 1
            out.append(("fence", "\n".join(lines[i:j + 1])))
            i = j + 1
            continue
        if close:
            t = flush()
            if t is not None:
                out.append(("text", t))
            opener = "$$" if close == "$$" else "\\["
            rest = line.strip()[len(opener):]
            body: list[str] = []
            j = i
            # The display may open and close on one line: $$ x $$
            if rest.rstrip().endswith(close) and rest.strip() != "":
                body.append(rest.rstrip()[: -len(close)].strip())
            else:
                if rest.strip():
                    body.append(rest)
                j = i + 1
                while j < len(lines) and not lines[j].rstrip().endswith(close):
                    body.append(lines[j])
                    j += 1
                if j >= len(lines):
                    raise ContentError(f"display math opened with {opener} is never closed",
                                       line=i + 1,
                                       hint=f"end it with {close} on a line of its own")
                last = lines[j].rstrip()[: -len(close)]
                if last.strip():
                    body.append(last)
            out.append(("math", "\n".join(body).strip("\n")))
            i = j + 1
            continue
        text.append(line)
        i += 1
    t = flush()
    if t is not None:
        out.append(("text", t))
    return out


def inline_math_spans(text: str, allow_display: bool = False):
    """Yield (start, end, tex) for every inline math span in a text block, skipping code spans
    and escaped dollars. Recognises $...$ (Pandoc's rule: no space just inside the dollars)
    and \\(...\\). A $$ in running text is an error, or with allow_display is passed over."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            if text[i + 1] == "(":
                end = text.find("\\)", i + 2)
                if end != -1:
                    yield i, end + 2, text[i + 2:end]
                    i = end + 2
                    continue
            i += 2                          # an escaped character, \$ included
            continue
        if c == "`":
            run = len(text[i:]) - len(text[i:].lstrip("`"))
            end = text.find("`" * run, i + run)
            i = (end + run) if end != -1 else i + run
            continue
        if c == "$":
            if text.startswith("$$", i):
                if allow_display:
                    i += 2
                    continue
                raise ContentError("inline $$...$$ in running text",
                                   hint="write inline math as $...$ and display math as $$ on "
                                        "lines of their own")
            j = i + 1
            while j < n:
                if text[j] == "\\":
                    j += 2
                    continue
                if text[j] == "$":
                    break
                j += 1
            tex = text[i + 1:j]
            if j < n and tex and not tex[0].isspace() and not tex[-1].isspace():
                yield i, j + 1, tex
                i = j + 1
                continue
        i += 1


def kramdown_inline_tex(tex: str) -> str:
    """Inline TeX kramdown will not misread: | would start a table cell, so it becomes \\vert
    (and \\| becomes \\Vert). A trailing space ends the control word before a following letter."""
    tex = tex.replace("\\|", "\\Vert ")
    return re.sub(r"(?<!\\)\|", r"\\vert ", tex)


def guard_liquid(text: str) -> str:
    """Hide every {{ and {% from Liquid, which runs before kramdown. One raw tag per occurrence
    keeps the guard correct even when the text itself mentions endraw."""
    return _LIQUID.sub(lambda m: "{% raw %}" + m.group(0) + "{% endraw %}", text)


_OL_START = re.compile(r"^(\s*)(\d+)\.(?=\s)")
_DL_START = re.compile(r"^(\s*):(?=\s)")
_LIST_ITEM = re.compile(r"^(\s*)(?:\d+\.|[-*+])(\s+)")


def _guard_block_starts(text: str) -> str:
    """Escape '5. ' and ': ' at the start of a line that continues a paragraph.

    kramdown's GFM parser lets an ordered list interrupt a paragraph and reads ': ' as a
    definition, so a number filled in by Jinja at the start of a wrapped line ('... on key\n5.
    Measured ...') would split the paragraph; Python-Markdown keeps it in the paragraph. A line
    at least as indented as the line before it continues it (a new list item is less indented
    than the text of the item above)."""
    lines = text.split("\n")
    for i in range(1, len(lines)):
        prev, line = lines[i - 1], lines[i]
        if not prev.strip():
            continue
        m = _OL_START.match(line) or _DL_START.match(line)
        if not m:
            continue
        indent = len(m.group(1))
        pm = _LIST_ITEM.match(prev)
        prev_indent = (len(pm.group(0)) if pm else len(prev) - len(prev.lstrip()))
        if indent >= prev_indent:
            cut = m.end()
            lines[i] = line[: cut - 1] + "\\" + line[cut - 1:]
    return "\n".join(lines)


def to_kramdown(source: str) -> str:
    """Rewrite author Markdown into kramdown-safe Markdown for a Jekyll post (see DESIGN.md)."""
    parts: list[str] = []
    for kind, text in iter_blocks(source):
        if kind == "fence":
            # Code is left as written. The attribute list on the next line makes the block
            # keyboard-focusable, so a reader without a mouse can scroll a long line
            # (kramdown puts it on the block's wrapper). If the code holds Liquid-looking
            # text, raw tags go on lines of their own outside the fence.
            block = text + "\n" + FOCUSABLE_IAL
            if _LIQUID.search(text) and "endraw" not in text:
                parts.append("{% raw %}\n" + block + "\n{% endraw %}")
            else:
                parts.append(guard_liquid(block) if _LIQUID.search(text) else block)
        elif kind == "math":
            # Display math: $$ on their own lines with blank lines around, which kramdown reads
            # as a block (a $$ inside a paragraph would be inline math).
            parts.append("\n$$\n" + guard_liquid(text) + "\n$$\n")
        else:
            out, last = [], 0
            for start, end, tex in inline_math_spans(text):
                out.append(guard_liquid(text[last:start]))
                out.append("$$" + guard_liquid(kramdown_inline_tex(tex)) + "$$")
                last = end
            out.append(guard_liquid(text[last:]))
            parts.append(_guard_block_starts("".join(out)))
    result = "\n".join(parts)
    # Collapse the runs of blank lines the display blocks introduce.
    return re.sub(r"\n{3,}", "\n\n", result).strip("\n") + "\n"


_MD_ESCAPE = re.compile(r"([\\`*_\[\]#<>|$]|\{(?=:))")


def escape_markdown(text: str) -> str:
    """Plain text (a title) as kramdown that renders to exactly that text, with {{ and {%
    hidden from Liquid ('{:' is escaped too: kramdown reads it as an attribute list)."""
    return guard_liquid(_MD_ESCAPE.sub(r"\\\1", text).replace("&", "&amp;"))
