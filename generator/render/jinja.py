"""Jinja for post bodies and page templates: the number filters a body uses, the compiled-code
cache (read without pickle), and rendering a body through its skeleton (render/skeleton.py),
so a prose edit recompiles nothing.

Everything here returns strings; nothing writes the site.
"""
from __future__ import annotations

import math
import os
import re
import traceback
from pathlib import Path
from typing import Any, Iterable

import jinja2

from ..core.errors import ContentError
from ..core.fsio import write_bytes_atomic
from ..core.located import located
from .skeleton import TEXT_NAME, Skeleton, edit_text, split_text

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
    Python's bytecode magic number, Jinja's version, the hash of this module's source, Jinja's
    checksum of the template source), then the code object marshalled as in a .pyc. An entry
    whose header is not exactly the expected one is ignored (and rewritten), so an edited
    template or another Python or Jinja never runs stale code. This module's source is in the
    header because Jinja's optimiser runs the filters defined here on constants while it
    compiles (``{{ 8.0 | num }}`` is compiled to "8"): an edited filter must recompile them.
    One file per template name: the folder does not grow with edits.

    code: what stands for the filters' source in the header (default: this file's hash).
    """

    FORMAT = "lora-site-jinja-code 2"

    def __init__(self, directory: Path, code: str | None = None) -> None:
        import hashlib

        self.directory = Path(directory)
        if code is None:
            code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
        self.code = code

    def _path(self, bucket: jinja2.bccache.Bucket) -> Path:
        return self.directory / f"{bucket.key}.code"

    def _header(self, bucket: jinja2.bccache.Bucket) -> bytes:
        from importlib.util import MAGIC_NUMBER

        return (f"{self.FORMAT} {MAGIC_NUMBER.hex()} {jinja2.__version__} {self.code} "
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


# A '-' on a tag strips the whitespace beside it, newlines included. Where that whitespace holds
# a blank line, it is the break between two Markdown blocks: stripping it glues the next block
# (a heading, a paragraph, a table) onto the list item or paragraph before, as the old "...does
# not make.**How well does this hold up?**" conclusion showed. That is never what an author
# means, so it is an error, found on the source before anything renders.
_STRIP_BEFORE = re.compile(r"\n[ \t]*\n[ \t\n]*(\{[%{#]-)")
_STRIP_AFTER = re.compile(r"(-[%}#]\})[ \t]*\n[ \t]*\n")
_RAW = re.compile(r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}", re.S)


def check_whitespace_control(source: str, *, path: Path, first_line: int = 1) -> None:
    """Refuse a '-' whitespace marker that would strip a blank line (see above)."""
    # Raw blocks hold text, not tags: blank them out, keeping their line breaks.
    text = _RAW.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), source)
    found = [(m.start(1), m.group(1), "before") for m in _STRIP_BEFORE.finditer(text)]
    found += [(m.start(1), m.group(1), "after") for m in _STRIP_AFTER.finditer(text)]
    if not found:
        return
    at, marker, side = min(found)
    line = first_line + text.count("\n", 0, at)
    plain = marker.replace("-", "")
    raise ContentError(f"{marker!r} strips the blank line {side} it, which glues two Markdown "
                       "blocks together (a list item or paragraph swallows the next block)",
                       path=path, line=line,
                       hint=f"write {plain!r} without the '-', or keep the tag away from the "
                            "blank line")


class BodyRenderer:
    """The environment post bodies are rendered in, and the bodies compiled so far: a body is
    rendered once per output format, and compiled once (a preview server's context keeps them
    across rebuilds, keeping the bodies the last build rendered; the bytecode cache keeps them
    across processes)."""

    def __init__(self, ctx=None, *, bytecode_dir: Path | None = None) -> None:
        if ctx is not None and bytecode_dir is None:
            bytecode_dir = ctx.project.cache / "jinja"
        self.env = make_body_env(bytecode_dir)
        self.compiled: dict[str, tuple] = {}
        self.latest: dict[str, str] = {}        # template name -> the source last compiled
        self.used: set[str] = set()
        if ctx is not None:
            ctx.on_new_build(self.trim)

    def render(self, source: str, context: dict[str, Any], *, path: Path,
               first_line: int = 1) -> str:
        self.used.add(source)
        return render_body(self, source, context, path=path, first_line=first_line)

    def trim(self) -> None:
        """Forget the bodies the last build did not render (every edit of a post makes a new
        one), so a long preview session does not grow; each post's latest body is kept, as the
        base its next edit is patched into."""
        keep = self.used | set(self.latest.values())     # the latest: the next edit's base
        self.compiled = {s: c for s, c in self.compiled.items() if s in keep}
        self.used = set()


def body_renderer(ctx) -> BodyRenderer:
    return ctx.state("body-jinja", BodyRenderer)


def _patched(compiled: dict[str, tuple], before: str | None, source: str) -> tuple | None:
    """The compiled body of ``source`` from that of the source compiled before it under the
    same name, when the edit between them is prose (edit_text): same code, new texts."""
    if before is None or before not in compiled:
        return None
    template, _extra, skeleton = compiled[before]
    if skeleton is None:
        return None
    patched = edit_text(skeleton, before, source)
    if patched is None:
        return None
    return template, {TEXT_NAME: patched.texts}, patched


def render_body(renderer: "BodyRenderer | jinja2.Environment", source: str,
                context: dict[str, Any], *, path: Path, first_line: int = 1) -> str:
    """Render a post body (Jinja over Markdown). Errors name the post file and its line.
    ``renderer``: a BodyRenderer, or an environment (compiled anew each call)."""
    def where(line: int | None) -> int | None:
        return None if line is None else first_line + line - 1

    if isinstance(renderer, jinja2.Environment):
        env, compiled, latest = renderer, {}, {}
    else:
        env, compiled, latest = renderer.env, renderer.compiled, renderer.latest
    name = f"post-body:{path.name}"
    if source not in compiled:
        check_whitespace_control(source, path=path, first_line=first_line)
    try:
        if source not in compiled:
            compiled[source] = _patched(compiled, latest.get(name), source) or \
                _compile_body(env, source, name=name)
            latest[name] = source
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
        raise located(exc, path=path, line=line_of(exc)) from None
    except jinja2.UndefinedError as exc:
        raise ContentError(f"undefined value: {exc.message}", path=path, line=line_of(exc),
                           hint="check the name against the results' metrics and config") from None
    except jinja2.TemplateError as exc:
        raise ContentError(f"template error: {exc}", path=path, line=line_of(exc)) from None
    except (TypeError, ValueError, LookupError, AttributeError, ArithmeticError,
            RecursionError) as exc:
        # What an expression in the body can raise (1/0, 10.0 ** 400, a macro calling itself,
        # fmt(x, -1)): the body's fault, reported at its line.
        raise ContentError(f"error in a template expression: {type(exc).__name__}: {exc}",
                           path=path, line=line_of(exc)) from None


# --------------------------------------------------------------------------------------------
# Page templates (templates/): errors name the template file and line

def _template_frame(exc: BaseException, dirs: list[Path]) -> tuple[str | None, int | None]:
    """The template file and line being rendered when ``exc`` was raised: Jinja rewrites
    tracebacks so that template frames carry the template's file name and line."""
    roots = [str(d.resolve()) for d in dirs]
    found: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if any(frame.filename.startswith(r + os.sep) for r in roots):
            found = (frame.filename, frame.lineno)
    return found


def render_template(env: jinja2.Environment, dirs: list[Path], name: str, **ctx: Any) -> str:
    """A page template rendered to a string; a Jinja error becomes one line naming the template
    file and line (an edited templates/ file is author input like a post)."""
    try:
        return env.get_template(name).render(**ctx)
    except jinja2.TemplateNotFound as exc:
        raise ContentError(f"template {exc.name!r} not found (needed for {name})",
                           path=dirs[0], hint="restore it from the repository's templates/") from None
    except jinja2.TemplateSyntaxError as exc:
        raise ContentError(f"template syntax error: {exc.message}", path=exc.filename or name,
                           line=exc.lineno, hint="fix the {{ }} or {% %} tag") from None
    except ContentError:
        raise
    except jinja2.UndefinedError as exc:
        file, line = _template_frame(exc, dirs)
        raise ContentError(f"undefined value: {exc.message}", path=file or name, line=line,
                           hint="check the name against the variables the output format "
                                "passes to this template") from None
    except (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError) as exc:
        file, line = _template_frame(exc, dirs)
        raise ContentError(f"error in a template: {type(exc).__name__}: {exc}",
                           path=file or name, line=line,
                           hint="fix the expression on that line") from None
