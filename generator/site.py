"""Build the site: the one module that writes into site/.

``build`` reads as the pipeline itself: settings and posts -> results (run or reuse) -> figures
-> every page rendered to bytes in memory -> one atomic write of site/html and site/jekyll.
Rendering returns strings; ``write_tree`` is the only function that touches the output folder.

Output layout (URLs are root-relative and carry the baseurl, so the site works under /repo/):
  site/html/index.html                 list of posts
  site/html/<slug>/index.html          one page per post, at <baseurl>/<slug>/
  site/html/assets/style.css           the one stylesheet (Pygments light + dark appended)
  site/html/assets/images/<name>.png   figures of the experiment 'main' (and <name>@2x.png);
  site/html/assets/images/<exp>/...    figures of any other experiment
  site/html/404.html, feed.xml, sitemap.xml, .nojekyll
  site/jekyll/_posts/<date>-<slug>.md  the Jekyll post, plus _config.yml, _layouts/, _includes/,
  site/jekyll/index.html, assets/images/<name>.png, assets/css/style.css
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field, fields, replace
from html import escape as html_escape
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping

import yaml

from .config import SiteConfig, unknown_key_error
from .content import Post, read_post
from .errors import BuildError, ConfigError, ContentError
from .project import Project

DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
MAIN_EXPERIMENT = "main"
# Front matter keys that steer the build and are not passed on to Jekyll.
BUILD_KEYS = ("experiments", "data", "description", "slug")
PYGMENTS_LIGHT = "default"
PYGMENTS_DARK = "github-dark"

Explain = Callable[[str], None]

# --------------------------------------------------------------------------------------------
# Extra data for posts: front matter `data: [name, ...]` asks for these; each loader receives
# the project and the experiments' results and returns plain data the body sees as data.<name>.

DataLoader = Callable[[Project, Mapping[str, Any]], Any]
DATA_LOADERS: dict[str, DataLoader] = {}


def register_data(name: str) -> Callable[[DataLoader], DataLoader]:
    """Decorator: make ``data: [name]`` in a post's front matter call this loader."""
    def deco(fn: DataLoader) -> DataLoader:
        DATA_LOADERS[name] = fn
        return fn
    return deco


# Modules that register loaders with @register_data, imported only when a post asks for data (so
# a build that does not need them never pays for their imports).
LOADER_MODULES = ("generator.audit_site",)

# Figure sets that are not experiments (the claims audit's): set name -> {figure: alt text}.
# Their PNGs come in the figures mapping under the set's name, like an experiment's.
FIGURE_SETS: dict[str, Mapping[str, str]] = {}


def _load_optional_loaders() -> None:
    import importlib
    import importlib.util

    for module in LOADER_MODULES:
        # A module that does not exist is skipped; one that exists but fails to import is a bug
        # to report, not to hide.
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


# --------------------------------------------------------------------------------------------
# Settings

_BASEURL = re.compile(r"^(/[A-Za-z0-9._~!$'()*+,;=:@%-]+)*$")
_URL = re.compile(r"^https?://[^\s/\"'<>]+$")


def normalize_baseurl(value: str) -> str:
    """'' or '/a/b': leading slash, no trailing slash (so '{baseurl}/x' is always right)."""
    v = (value or "").strip()
    if v in ("", "/"):
        return ""
    v = "/" + v.strip("/")
    if not _BASEURL.match(v):
        raise ConfigError(f"baseurl {value!r} is not a URL path", field="baseurl",
                          hint="use a path such as /repo (letters, digits, - . _ ~)")
    return v


def load_site_config(project: Project, baseurl: str | None = None) -> SiteConfig:
    path = project.site_yml
    if not path.is_file():
        raise ConfigError("missing site settings", path=path,
                          hint="create it with title, description, author and url")
    try:
        source = path.read_text(encoding="utf-8")
        from .content import load_yaml

        data = load_yaml(source) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x})", path=path,
                          line=exc.object[:exc.start].count(b"\n") + 1,
                          hint="save the file as UTF-8") from None
    except yaml.YAMLError as exc:
        from .content import yaml_problem

        text, line = yaml_problem(exc, source=source)
        raise ConfigError(text, path=path, line=line,
                          hint="keep one of them" if "written twice" in text else
                          "fix the YAML on that line (quote values that contain ': ' "
                          "or start with a quote)") from None
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping of settings", path=path)
    names = [f.name for f in fields(SiteConfig)]
    for key in sorted(map(str, data)):
        if key not in names:
            raise unknown_key_error(key, names, source=path)
    for key in ("title", "description", "author", "url"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ConfigError("is required and must be a non-empty string", path=path, field=key,
                              hint=f"add a line such as '{key}: \"...\"' to site.yml")
    for key in ("baseurl", "mathjax_url", "lang"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"must be a string, got {data[key]!r}", path=path, field=key)
    url = data["url"].strip().rstrip("/")
    if not _URL.match(url):
        raise ConfigError(f"url {data['url']!r} must be an origin like https://user.github.io",
                          path=path, field="url", hint="no path: put the path in baseurl")
    try:
        base = normalize_baseurl(baseurl if baseurl is not None else data.get("baseurl", ""))
    except ConfigError as exc:
        from .located import located

        raise located(exc, path=None if baseurl is not None else path,
                      field="--baseurl" if baseurl is not None else "baseurl") from None
    mathjax = data.get("mathjax_url", SiteConfig.mathjax_url)
    if not re.match(r"^(https://|/)[^\s\"'<>]+$", mathjax):
        raise ConfigError(f"mathjax_url {mathjax!r} must be an https:// URL or a root path",
                          path=path, field="mathjax_url")
    lang = data.get("lang", "en")
    if not re.match(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$", lang):
        raise ConfigError(f"lang {lang!r} is not a language tag", path=path, field="lang",
                          hint="use a tag such as en, de or pt-BR")
    extra = data.get("extra") or {}
    if not isinstance(extra, dict):
        raise ConfigError("must be a mapping", path=path, field="extra")
    text = {k: plain_text(data[k], path=path, field=k) for k in ("title", "description", "author")}
    return SiteConfig(title=text["title"], description=text["description"],
                      author=text["author"], url=url, baseurl=base, mathjax_url=mathjax,
                      lang=lang, extra=extra)


# --------------------------------------------------------------------------------------------
# Posts

_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%z",
                 "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def parse_date(value: Any, *, path: Path) -> dt.datetime:
    """A post date as an aware datetime; a date without a zone is taken as UTC (never the
    machine's zone, so every machine builds the same feed)."""
    if isinstance(value, dt.datetime):
        d = value
    elif isinstance(value, dt.date):
        d = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        for f in _DATE_FORMATS:
            try:
                d = dt.datetime.strptime(value.strip(), f)
                break
            except ValueError:
                continue
        else:
            raise ContentError(f"date {value!r} is not a date", path=path, field="date",
                               hint="write it as 2026-01-11 10:00:00 +0530")
    else:
        raise ContentError("date is missing or not a date", path=path, field="date",
                           hint="write it as 2026-01-11 10:00:00 +0530")
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class PostInfo:
    """What templates need about a post besides its body."""

    post: Post
    slug: str
    title: str
    description: str
    date: dt.datetime
    date_text: str          # the date as the author wrote it, for the Jekyll front matter
    url: str                # root-relative, with the baseurl: /repo/<slug>/
    jekyll_name: str        # 2026-01-11-<slug>.md
    tags: tuple[str, ...] = ()   # from `tag:` or `tags:`, as Jekyll reads them

    @property
    def iso(self) -> str:
        return self.date.isoformat()

    @property
    def human_date(self) -> str:
        return f"{self.date.day} {self.date:%B %Y}"


_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# Characters no title, description or tag may hold: XML 1.0 cannot carry C0 controls at all (not
# even as references), HTML calls C1 controls parse errors, and lone surrogates have no UTF-8.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# Line breaks and tabs become one space: XML normalises them to spaces inside attributes, HTML
# shows them as one, so only then does every output read back the same string.
_SPACES = re.compile("[ \t\r\n\u2028\u2029]+")


def plain_text(value: str, *, path: object, field: str) -> str:
    """A title, description or tag as one line of text, identical in every output format."""
    bad = _FORBIDDEN.search(value)
    if bad:
        raise ContentError(f"contains the control character U+{ord(bad.group()):04X}", path=path,
                           field=field, hint="remove it; feeds and web pages cannot carry it")
    return _SPACES.sub(" ", value).strip()


def post_tags(meta: Mapping[str, Any], path: Path) -> tuple[str, ...]:
    """Tags as Jekyll reads them: `tag:` (one tag, or a list) wins over `tags:` (a list, or a
    string split at spaces). Numbers are taken as text (YAML reads `- 2026` as a number)."""
    key = "tag" if "tag" in meta else "tags"
    raw = meta.get(key)
    if raw is None:
        return ()
    if isinstance(raw, str):
        items = [raw] if key == "tag" else raw.split()
    elif isinstance(raw, list):
        items = raw
    else:
        raise ContentError("must be a tag or a list of tags", path=path, field=key,
                           hint="write tags as a YAML list of strings")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str) or not plain_text(item, path=path, field=f"{key}[{i}]"):
            raise ContentError(f"tag {i + 1} is {item!r}, not a non-empty string", path=path,
                               field=key, hint="write each tag as a string")
        out.append(plain_text(item, path=path, field=f"{key}[{i}]"))
    return tuple(out)


def post_info(post: Post, site: SiteConfig) -> PostInfo:
    meta = post.meta
    title = meta.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ContentError("title is required", path=post.path, field="title",
                           hint="add a line such as 'title: \"My post\"' to the front matter")
    title = plain_text(title, path=post.path, field="title")
    desc = meta.get("description", "")
    if not isinstance(desc, str):
        raise ContentError("description must be a string", path=post.path, field="description",
                           hint="quote it: description: \"...\"")
    desc = plain_text(desc, path=post.path, field="description")
    if not _SLUG.match(post.slug):
        raise ContentError(f"file name {post.path.name!r} does not make a URL slug",
                           path=post.path, hint="name it with lower-case letters, digits and -")
    raw_date = meta.get("date")
    date = parse_date(raw_date, path=post.path)
    for key in ("data",):
        if key in meta and not (isinstance(meta[key], list)
                                and all(isinstance(x, str) for x in meta[key])):
            raise ContentError("must be a list of names", path=post.path, field=key)
    date_text = raw_date if isinstance(raw_date, str) else date.strftime("%Y-%m-%d %H:%M:%S %z")
    return PostInfo(post=post, slug=post.slug, title=title.strip(), description=desc.strip(),
                    date=date, date_text=date_text, url=f"{site.baseurl}/{post.slug}/",
                    jekyll_name=f"{date:%Y-%m-%d}-{post.slug}.md",
                    tags=post_tags(meta, post.path))


# --------------------------------------------------------------------------------------------
# Render context of a post body

@dataclass(frozen=True)
class ExperimentView:
    """One experiment as the article sees it: main.config.d_model, main.metrics.steps, ..."""

    name: str
    config: Any
    metrics: Mapping[str, Any]
    provenance: Mapping[str, Any]


def image_dir(experiment: str) -> str:
    """Figures of 'main' sit at assets/images/<file> (the reference's paths); others below a
    folder named after their experiment."""
    return "assets/images" if experiment == MAIN_EXPERIMENT else f"assets/images/{experiment}"


class FigureHelper:
    """``{{ figure('before_lora', 'caption') }}`` in a post: an <figure> in HTML, an image
    line in the Jekyll post. Records what the post used so the build can check it."""

    def __init__(self, target: str, site: SiteConfig, figures: Mapping[str, Mapping[str, bytes]],
                 experiments: Mapping[str, Any], path: Path) -> None:
        self.target, self.site, self.figures = target, site, figures
        self.experiments, self.path = experiments, path
        self.count = 0
        self.used: list[tuple[str, str]] = []

    def __call__(self, name: str, caption: str | None = None, experiment: str = MAIN_EXPERIMENT,
                 alt: str | None = None, caller: Callable[[], str] | None = None) -> str:
        """The caption is an argument or, to write TeX without escaping backslashes in a Jinja
        string, the body of a call block: {% call figure('x') %}$QK^\\top${% endcall %}."""
        from .figures import ALT_TEXT, image_filename, image_size

        if caption is None:
            if caller is None:
                raise ContentError(f"figure {name!r} has no caption",
                                   hint="pass a caption or use {% call figure(...) %}")
            caption = " ".join(str(caller()).split())

        if experiment not in self.experiments and experiment not in FIGURE_SETS:
            raise ContentError(f"figure {name!r}: the post declares no experiment {experiment!r}",
                               hint="add it under experiments: in the front matter")
        alt_texts = FIGURE_SETS.get(experiment, ALT_TEXT)
        if name not in alt_texts or image_filename(name, 1) not in self.figures.get(experiment, {}):
            raise ContentError(f"figure {name!r} does not exist",
                               hint=f"use one of {', '.join(alt_texts)}")
        self.count += 1
        self.used.append((experiment, name))
        alt = alt or alt_texts[name]
        src = f"{self.site.baseurl}/{image_dir(experiment)}/{image_filename(name, 1)}"
        if self.target == "jekyll":
            md_alt = alt.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
            return (f"\n*Figure {self.count}: {caption}*\n\n![{md_alt}]({src})\n")
        from .render import inline_markdown_to_html

        src2 = f"{self.site.baseurl}/{image_dir(experiment)}/{image_filename(name, 2)}"
        w, h = image_size(1)
        cap = inline_markdown_to_html(caption)
        a = html_escape(alt, quote=True)
        # One raw HTML block with no blank line inside, so Markdown passes it through whole.
        return (f'\n<figure id="fig-{html_escape(name)}">\n'
                f'<img src="{html_escape(src)}" srcset="{html_escape(src)} 1x, '
                f'{html_escape(src2)} 2x" width="{w}" height="{h}" alt="{a}" loading="lazy" '
                f'decoding="async">\n'
                f'<figcaption><span class="fig-label">Figure {self.count}.</span> {cap}'
                f'</figcaption>\n</figure>\n')


def body_context(info: PostInfo, site: SiteConfig, results: Mapping[str, Any],
                 figures: Mapping[str, Mapping[str, bytes]], data: Mapping[str, Any],
                 target: str) -> tuple[dict[str, Any], FigureHelper]:
    from .listings import listing

    views = {}
    for name in info.post.experiments:
        saved = results[name]
        views[name] = ExperimentView(name=name, config=saved.config, metrics=saved.metrics,
                                     provenance=saved.provenance)
    figure = FigureHelper(target, site, figures, views, info.post.path)
    ctx: dict[str, Any] = {
        "experiments": views,
        "page": {"title": info.title, "description": info.description, "slug": info.slug,
                 "meta": info.post.meta},
        "site": site,
        "data": data,
        "listing": listing,
        "figure": figure,
        "target": target,
    }
    for name, view in views.items():
        if name in ctx:
            raise ConfigError(f"experiment name '{name}' clashes with a template name",
                              path=info.post.path, field=f"experiments.{name}",
                              hint="rename the experiment")
        ctx[name] = view
    return ctx, figure


def load_post_data(info: PostInfo, project: Project, results: Mapping[str, Any],
                   loaded: dict[str, Any] | None = None) -> dict:
    """The post's ``data:`` values by name. ``loaded``: values already loaded in this build
    (posts that read the same data share one load)."""
    names = info.post.meta.get("data") or []
    if names:
        _load_optional_loaders()
    loaded = {} if loaded is None else loaded
    out = {}
    for name in names:
        if name not in DATA_LOADERS:
            raise ContentError(f"no data loader named '{name}'", path=info.post.path,
                               field="data", hint=f"known: {', '.join(sorted(DATA_LOADERS)) or 'none'}")
        if name not in loaded:
            loaded[name] = DATA_LOADERS[name](project, results)
        out[name] = loaded[name]
    return out


# --------------------------------------------------------------------------------------------
# Rendering the pages (strings only)

@dataclass
class RenderedPost:
    info: PostInfo
    html_body: str
    toc: list
    jekyll_body: str
    figures_used: list = field(default_factory=list)


def render_post(info: PostInfo, site: SiteConfig, results, figures, data, *,
                bytecode_dir: Path | None = None) -> RenderedPost:
    """The post's HTML body, table of contents and Jekyll body. bytecode_dir: where compiled
    bodies are kept between builds (render.split_text says why)."""
    from .render import make_body_env, markdown_to_html, to_kramdown, render_body

    env = make_body_env(bytecode_dir)
    post = info.post
    out = {}
    used = []
    for target in ("html", "jekyll"):
        ctx, fig = body_context(info, site, results, figures, data, target)
        out[target] = render_body(env, post.body, ctx, path=post.path, first_line=post.body_line)
        used = fig.used
    try:
        doc = markdown_to_html(out["html"])
        jekyll = to_kramdown(out["jekyll"])
    except ContentError as exc:
        raise _locate_markdown_error(exc, post) from None
    return RenderedPost(info=info, html_body=doc.html, toc=doc.toc, jekyll_body=jekyll,
                        figures_used=used)


def _locate_markdown_error(exc: ContentError, post: Any) -> ContentError:
    """An error found in the Markdown after Jinja ran (an unclosed $$, an inline $$) names the
    post, and the line when the same problem is in the post as written (it nearly always is:
    Jinja rarely writes the dollars). A line counted in the rendered text would mislead, so
    otherwise there is none."""
    from .located import located, problem
    from .render import iter_blocks

    try:
        iter_blocks(post.body)
    except ContentError as src:
        if src.line is not None and problem(src) == problem(exc):
            return located(src, path=post.path, line=post.body_line + src.line - 1)
    return located(exc, path=post.path, line=None)


def cached_render_post(cache, info: PostInfo, site: SiteConfig, results, figures,
                       data, *, bytecode_dir: Path | None = None,
                       data_digests: dict[str, str | None] | None = None) -> RenderedPost:
    """render_post, or its parts from an earlier build whose inputs were exactly these
    (cache.post_render_key): an edit to one post does not re-render the others.
    data_digests: digests of data values already computed in this build, by name."""
    from dataclasses import fields as dc_fields

    from .cache import data_digest, post_render_key

    names = [f.name for f in dc_fields(RenderedPost) if f.name != "info"]
    digests = {} if data_digests is None else data_digests
    for name, value in data.items():
        if name not in digests:
            digests[name] = data_digest(value)
    data_key = {name: digests[name] for name in sorted(data)}
    key = None if None in data_key.values() else post_render_key(
        info.post.path.read_bytes(), info, site, results, figures,
        {"data": data_key, "fields": names})
    doc = cache.get(key)
    if doc is not None and sorted(doc) == sorted(names):
        if "figures_used" in doc:
            doc["figures_used"] = [tuple(x) for x in doc["figures_used"]]
        return RenderedPost(info=info, **doc)
    rendered = render_post(info, site, results, figures, data, bytecode_dir=bytecode_dir)
    cache.put(key, {name: getattr(rendered, name) for name in names})
    return rendered


def jekyll_front_matter(info: PostInfo) -> str:
    """The Jekyll front matter: layout first, then the author's keys in their order, minus the
    keys that only steer this build. safe_dump quotes whatever needs quoting."""
    meta = {"layout": info.post.meta.get("layout", "post")}
    for key, value in info.post.meta.items():
        if key in BUILD_KEYS or key == "layout":
            continue
        meta[key] = info.date_text if key == "date" else value
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False,
                          width=10_000)


def _json_ld(info: PostInfo, site: SiteConfig) -> dict:
    return {
        "@context": "https://schema.org",
        "@type": "BlogPosting",
        "headline": info.title,
        "description": info.description,
        "datePublished": info.iso,
        "author": {"@type": "Person", "name": site.author},
        **({"keywords": list(info.tags)} if info.tags else {}),
        "url": site.url + info.url,
        "mainEntityOfPage": site.url + info.url,
    }


def _template_frame(exc: BaseException, dirs: list[Path]) -> tuple[str | None, int | None]:
    """The template file and line being rendered when ``exc`` was raised: Jinja rewrites
    tracebacks so that template frames carry the template's file name and line."""
    roots = [str(d.resolve()) for d in dirs]
    import traceback

    found: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if any(frame.filename.startswith(r + os.sep) for r in roots):
            found = (frame.filename, frame.lineno)
    return found


def render_template(env, dirs: list[Path], name: str, **ctx: Any) -> str:
    """A page template rendered to a string; a Jinja error becomes one line naming the template
    file and line (an edited templates/ file is author input like a post)."""
    import jinja2

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
                           hint="check the name against the variables site.py passes to "
                                "this template") from None
    except (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError) as exc:
        file, line = _template_frame(exc, dirs)
        raise ContentError(f"error in a template: {type(exc).__name__}: {exc}",
                           path=file or name, line=line,
                           hint="fix the expression on that line") from None


def render_pages(project: Project, site: SiteConfig, infos: list[PostInfo],
                 rendered: dict[str, RenderedPost],
                 figures: Mapping[str, Mapping[str, bytes]]) -> dict[str, bytes]:
    """Every output file, as bytes, keyed by its path below site/."""
    from .figures import FIGURE_NAMES, image_filename
    from .render import escape_markdown, make_env, pygments_css

    dirs = template_dirs(project)
    env = make_env(dirs, bytecode_dir=project.cache / "jinja")

    def page(name: str, **ctx: Any) -> str:
        return render_template(env, dirs, name, **ctx)

    env.filters["to_yaml"] = lambda v: yaml.safe_dump(v, sort_keys=False, allow_unicode=True,
                                                      default_flow_style=False, width=10_000)
    files: dict[str, bytes] = {}

    def put(path: str, text: str | bytes) -> None:
        if path in files:
            raise BuildError(f"two outputs want the same file {path}")
        files[path] = text if isinstance(text, bytes) else text.encode("utf-8")

    posts = sorted(infos, key=lambda p: (p.date, p.slug), reverse=True)
    base = site.baseurl
    common = {"site": site, "base": base, "posts": posts,
              "updated": max((p.date for p in posts), default=None)}

    # ---- HTML site
    css = page("assets/style.css", **common)
    css += "\n" + pygments_css(PYGMENTS_LIGHT, PYGMENTS_DARK)
    put("html/assets/style.css", css)
    put("html/.nojekyll", b"")
    put("html/index.html", page("html/index.html",
        **common, canonical=f"{site.url}{base}/", page_title=site.title))
    put("html/404.html", page("html/404.html",
        **common, canonical=None, page_title=f"Page not found · {site.title}"))
    for info in posts:
        r = rendered[info.slug]
        first_img = None
        if r.figures_used:
            exp, name = r.figures_used[0]
            first_img = f"{site.url}{base}/{image_dir(exp)}/{image_filename(name, 1)}"
        put(f"html/{info.slug}/index.html", page("html/post.html",
            **common, post=info, body=r.html_body, toc=r.toc,
            canonical=f"{site.url}{info.url}", page_title=f"{info.title} · {site.title}",
            og_image=first_img, json_ld=_json_ld(info, site)))
    put("html/feed.xml", page("feed.xml", **common))
    put("html/sitemap.xml", page("sitemap.xml", **common))

    # ---- Jekyll tree
    put("jekyll/_config.yml", page("jekyll/_config.yml",
        **common, settings={
            "title": site.title, "description": site.description, "author": site.author,
            "url": site.url, "baseurl": base, "lang": site.lang,
            "markdown": "kramdown", "highlighter": "rouge",
            "kramdown": {"input": "GFM", "math_engine": "mathjax",
                         "syntax_highlighter": "rouge", "hard_wrap": False},
            "exclude": ["Gemfile", "Gemfile.lock", "vendor"],
        }))
    put("jekyll/_includes/mathjax.html",
        page("jekyll/_includes/mathjax.html", **common))
    put("jekyll/assets/css/style.css", css)
    static = _static_dir(project)
    for path in sorted(static.rglob("*")):
        if path.is_file():
            put("jekyll/" + path.relative_to(static).as_posix(), path.read_bytes())
    for info in posts:
        r = rendered[info.slug]
        put(f"jekyll/_posts/{info.jekyll_name}", page("jekyll/post.md",
            **common, front_matter=jekyll_front_matter(info),
            heading="# " + escape_markdown(info.title), body=r.jekyll_body))

    # ---- Figures, in both trees (Jekyll gets the 1x images its Markdown links to)
    for exp in sorted(figures):
        for filename in sorted(figures[exp]):
            put(f"html/{image_dir(exp)}/{filename}", figures[exp][filename])
        for name in FIGURE_NAMES + tuple(FIGURE_SETS.get(exp, ())):
            one = image_filename(name, 1)
            if one in figures[exp]:
                put(f"jekyll/{image_dir(exp)}/{one}", figures[exp][one])
    return files


def template_dirs(project: Project) -> list[Path]:
    """The project's own templates/ first (to override a file), then the built-in ones."""
    dirs = [p for p in (project.templates, DEFAULT_TEMPLATES) if p.is_dir()]
    seen, out = set(), []
    for d in dirs:
        if d.resolve() not in seen:
            seen.add(d.resolve())
            out.append(d)
    if not out:
        raise BuildError("no templates folder", path=project.templates,
                         hint="restore templates/ from the repository")
    return out


def _static_dir(project: Project) -> Path:
    for d in template_dirs(project):
        if (d / "jekyll" / "static").is_dir():
            return d / "jekyll" / "static"
    raise BuildError("no Jekyll static files", path=project.templates / "jekyll" / "static")


# --------------------------------------------------------------------------------------------
# Writing: the one place that touches site/

LOCK_NAME = "build.lock"


@contextlib.contextmanager
def build_lock(project: Project):
    """One build at a time per project. A second build fails at once, naming the pid of the one
    that runs, rather than waiting: a build can take minutes, and the person who started the
    second one should decide. The lock is an flock on .cache/lora-site/build.lock, which the
    kernel releases when its process exits (even on SIGKILL), so it never goes stale and the
    file itself never needs removing."""
    import fcntl

    path = project.cache / LOCK_NAME
    try:
        project.cache.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")
    except OSError as exc:
        raise BuildError(f"cannot create the build lock: {exc.strerror}", path=path,
                         hint="check that the project folder is writable") from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            pid = fh.read().strip() or "unknown"
            raise BuildError(f"another build is running (pid {pid})", path=path,
                             hint=f"wait for it to finish, or stop process {pid}; the lock is "
                                  "released when that process exits") from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


PAUSE_AT_ENV = "LORA_SITE_PAUSE_AT"
PAUSE_FILE_ENV = "LORA_SITE_PAUSE_FILE"


def failpoint(name: str) -> None:
    """A test hook: with LORA_SITE_PAUSE_AT=<name> and LORA_SITE_PAUSE_FILE=<path> set, the build
    writes its pid to <path> on reaching the point called <name>, then waits (up to two minutes)
    until <path> is removed. Tests use it to interrupt a build at a known place or to start a
    second build while the first holds the lock. Points: results, render, write."""
    if os.environ.get(PAUSE_AT_ENV) != name:
        return
    import time

    flag = Path(os.environ[PAUSE_FILE_ENV])
    flag.write_text(f"{os.getpid()}\n", encoding="utf-8")
    deadline = time.monotonic() + 120
    while flag.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def _leftovers(out: Path) -> list[Path]:
    """Temporary folders a killed build (SIGKILL, power loss) left beside ``out``."""
    parent = out.parent
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir()
                  if p.name.startswith((f".{out.name}.build-", f".{out.name}.old-")))


def recover_output(out: Path) -> None:
    """Undo what a killed build left behind; call with the build lock held.

    A build killed between its two renames has moved the previous output into .<name>.old-*/
    and not yet put the new one in place: that previous output is put back. Every other leftover
    (a half-written .<name>.build-* folder) is removed."""
    out = Path(out)
    for leftover in _leftovers(out):
        kept = leftover / "site"
        if leftover.name.startswith(f".{out.name}.old-") and kept.exists() \
                and not (out.exists() or out.is_symlink()):
            os.rename(kept, out)
        shutil.rmtree(leftover, ignore_errors=True)


def probe_output(out: Path) -> None:
    """Fail before any work when the output folder cannot be written: the build writes a folder
    beside ``out`` and renames it, so that is what is tried here."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BuildError("the output exists and is not a folder", path=out,
                         hint="move that file away or choose another folder with --out")
    blocker = next((a for a in out.parents if a.exists() or a.is_symlink()), None)
    if blocker is not None and not blocker.is_dir():
        raise BuildError(f"the output folder cannot be written: {blocker} is not a folder",
                         path=out, hint="choose another folder with --out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent)
        # A running build's clean-up of leftovers may have removed it already: no matter.
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(probe)
    except OSError as exc:
        raise BuildError(f"the output folder cannot be written: {exc.strerror or exc}",
                         path=out, hint="choose a writable folder with --out or fix the "
                                        "permissions of its parent") from None


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT and SIGTERM until the block ends, then act on them: the swap of the output
    folders and the cleanup after a failure must not stop halfway. Python runs signal handlers
    in the main thread only, so elsewhere this does nothing."""
    import signal

    caught: list[int] = []
    try:
        old = {s: signal.signal(s, lambda signum, frame: caught.append(signum))
               for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:              # not the main thread
        old = None
    try:
        yield
    finally:
        if old is not None:
            for s, handler in old.items():
                signal.signal(s, handler)
            if caught:
                handler = old[caught[0]]
                if callable(handler):
                    handler(caught[0], None)
                elif handler == signal.SIG_DFL:
                    os.kill(os.getpid(), caught[0])


def _undo(tmp: Path, old: Path | None, out: Path) -> None:
    """After a failed write: drop the new tree, put the previous output back if it was moved."""
    shutil.rmtree(tmp, ignore_errors=True)
    if old is None:
        return
    kept = old / "site"
    if kept.exists() or kept.is_symlink():
        if out.exists() or out.is_symlink():
            return                  # cannot happen; keep both rather than lose one
        os.rename(kept, out)
    shutil.rmtree(old, ignore_errors=True)


def write_tree(out: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` (relative path -> bytes) as the folder ``out``, atomically: everything goes
    into a temporary folder beside ``out``, which replaces ``out`` only once complete. On any
    failure or interruption the temporary folder is removed and the previous ``out`` is left as
    it was. (A build killed outright leaves its temporary folder; ``recover_output`` removes it
    at the next build.)"""
    out = Path(out)
    parent = out.parent
    if out.exists() and not out.is_dir():
        raise BuildError("the output exists and is not a folder", path=out,
                         hint="move that file away or choose another folder with --out")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=parent))
    except OSError as exc:
        raise BuildError(f"cannot create a folder beside the output: {exc.strerror}",
                         path=parent, hint="check that the folder is writable") from None
    old = None
    try:
        made = {tmp}
        for rel in sorted(files):
            # Checked on the name, not by resolving every path (a syscall per folder level):
            # the temporary folder is new, so it holds no symlink a name could follow.
            parts = PurePosixPath(rel).parts
            if not parts or PurePosixPath(rel).is_absolute() or any(
                    p in ("..", ".", "") or "\\" in p for p in parts):
                raise BuildError(f"refusing to write outside the output folder: {rel}")
            target = tmp.joinpath(*parts)
            for folder in reversed(target.parents[: len(parts) - 1]):
                if folder not in made:
                    folder.mkdir(exist_ok=True)
                    made.add(folder)
            with open(target, "xb") as fh:
                fh.write(files[rel])
                os.fchmod(fh.fileno(), 0o644)       # whatever the umask: ordinary public files
        for path in made:
            os.chmod(path, 0o755)                   # mkdtemp makes the top folder private
        failpoint("write")
        with signals_deferred():
            if out.exists() or out.is_symlink():
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
                os.rename(out, old / "site")
            os.rename(tmp, out)
    except OSError as exc:
        with signals_deferred():
            _undo(tmp, old, out)
        raise BuildError(f"cannot write the site: {exc.strerror or exc}", path=out,
                         hint="check free space and permissions") from None
    except BaseException:
        with signals_deferred():
            _undo(tmp, old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The build

@dataclass(frozen=True)
class BuildReport:
    out: Path
    files: tuple[str, ...]
    posts: tuple[str, ...]


def render_site(project: Project, *, results: Mapping[str, Any],
                figures: Mapping[str, Mapping[str, bytes]], baseurl: str | None = None,
                site: SiteConfig | None = None) -> dict[str, bytes]:
    """Stage 3: posts + results + figures -> {path below site/: bytes}. Writes nothing."""
    site = site or load_site_config(project, baseurl)
    posts = [read_post(p) for p in project.post_files()]
    if not posts:
        raise ContentError("no posts", path=project.posts,
                           hint="add a Markdown file with front matter to content/posts/")
    infos = [post_info(p, site) for p in posts]
    from .render import use_highlight_cache

    from .cache import PostCache

    highlights = use_highlight_cache(project.cache / "highlight.json")
    posts_cache = PostCache(project.cache)
    rendered = {}
    loaded: dict[str, Any] = {}
    digests: dict[str, str | None] = {}
    for info in infos:
        data = load_post_data(info, project, results, loaded)
        rendered[info.slug] = cached_render_post(posts_cache, info, site, results, figures, data,
                                                 bytecode_dir=project.cache / "jinja",
                                                 data_digests=digests)
    pages = render_pages(project, site, infos, rendered, figures)
    highlights.save()
    use_highlight_cache(None)
    posts_cache.prune()
    return pages


def build(project: Project, *, frozen: bool = False, force: bool = False,
          baseurl: str | None = None, explain: Explain | None = None,
          progress_factory: Callable | None = None, out: Path | None = None,
          refreeze: bool = False, warn: Explain | None = None) -> BuildReport:
    """Run every stage and write site/ (or ``out``) in one atomic step.

    frozen: never train, use content/_freeze only (``lora-site render``).
    force: re-run every experiment and redraw every figure.
    baseurl: override site.yml's baseurl (e.g. '/repo' for a project page).
    explain: called with one line per stage saying whether it ran or was reused.
    refreeze: recompute every result and write it into content/_freeze even where it matches
    the frozen bytes within tolerance (which a plain re-run keeps; see freeze.settle).
    warn: called with a line when a re-run differs from the freeze beyond tolerance.
    """
    from . import pipeline

    out = Path(out) if out is not None else project.site
    site = load_site_config(project, baseurl)        # fail fast, before any training
    for p in project.post_files():
        post_info(read_post(p), site)
    probe_output(out)                                # an unwritable folder fails before training
    with build_lock(project):
        recover_output(out)                          # what a killed build left behind
        failpoint("results")
        results = pipeline.results_stage(project, frozen=frozen, force=force,
                                         progress_factory=progress_factory, explain=explain,
                                         refreeze=refreeze, warn=warn)
        figures = pipeline.figures_stage(project, results, force=force or refreeze,
                                         explain=explain,
                                         frozen=frozen)
        figures = {**figures, **pipeline.audit_stage(project, results, frozen=frozen,
                                                     force=force or refreeze, explain=explain,
                                                     refreeze=refreeze, warn=warn)}
        failpoint("render")
        files = render_site(project, results=results, figures=figures, site=site)
        if explain:
            explain(f"render: ran ({len(files)} files)")
        write_tree(out, files)
        if explain:
            explain(f"write: {out}")
    pipeline.close_draw_pool()                       # figure workers left idle by the stages
    posts = tuple(sorted(p.stem for p in project.post_files()))
    return BuildReport(out=out, files=tuple(sorted(files)), posts=posts)
