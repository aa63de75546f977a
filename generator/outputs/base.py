"""What an output format declares, the page templates they share, and the registry.

An output format turns rendered posts into one folder of site/ (site/<name>/). It declares:
  figure(ref, markdown)      the markup ``{{ figure(...) }}`` puts in a body (Markdown source)
  finish(text, markdown)     a rendered body -> the JSON-able parts its pages need (cached)
  files(build)               every file of its tree: relative path -> bytes
  post_files(build, info)    optional: the files of one post's own page alone (the same bytes
                             files() writes for it), which the preview serves before the rest
                             of the build (publish.early); None: the format cannot
  post_url(info, site)       where a post is in that tree, for links between posts
Adding a format is one module in this package that sets ``FORMAT = YourFormat()``, plus its
templates under templates/<name>/; the registry finds it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import BuildError
from ..core.project import Project
from ..render.context import FigureRef, data_dir, image_dir
from ..render.jinja import make_env, render_template
from ..render.markdown import Markdowner

DEFAULT_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


class OutputFormat:
    name: str = ""

    def figure(self, ref: FigureRef, markdown: Markdowner) -> str:
        raise NotImplementedError

    def finish(self, text: str, tools) -> dict[str, Any]:
        """A body after Jinja -> the JSON-able parts its pages need (render.post.Tools gives
        the Markdown converter and the math renderer)."""
        raise NotImplementedError

    def files(self, build: "SiteBuild") -> dict[str, bytes]:
        raise NotImplementedError

    def post_files(self, build: "SiteBuild", info: Any) -> dict[str, bytes] | None:
        """The files of the post ``info``'s own page(s), path -> bytes, exactly as files()
        writes them; None when this format has no page of a post's own to render alone."""
        return None

    def page_url(self, info: Any) -> str:
        """The URL path of a post's page in this format, below the baseurl."""
        raise NotImplementedError

    def served(self, build: "SiteBuild", files: Mapping[str, bytes]) -> set[str]:
        """Every URL path (below the baseurl) the tree ``files`` of this format serves: what a
        post's local links are checked against."""
        out = set()
        for path in files:
            out.add("/" + path)
            if path == "index.html" or path.endswith("/index.html"):
                out.add("/" + path[: -len("index.html")])
        return out

    def post_url(self, info, site) -> str:
        """The root-relative URL (with the baseurl) of a post in this format's output, for
        ``{{ post_url('slug') }}``."""
        return site.baseurl + self.page_url(info)


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


@dataclass
class SiteBuild:
    """What every format's files() reads: the settings, the posts newest first with their
    rendered parts, the figures, and the page templates."""

    project: Project
    site: Any                                   # authoring.site_config.SiteConfig
    posts: list                                 # PostInfo, newest first
    rendered: dict[str, Any]                    # slug -> render.post.RenderedPost
    figures: Mapping[str, Mapping[str, bytes]]  # experiment -> file name -> PNG bytes
    markdown: Markdowner
    bytecode_dir: Path | None = None
    data: Mapping[str, Mapping[str, bytes]] | None = None    # experiment -> file -> bytes
    git: Any = None                             # core.gitinfo.GitState, or None (no links)

    def __post_init__(self) -> None:
        import yaml

        self.dirs = template_dirs(self.project)
        self.env = make_env(self.dirs, bytecode_dir=self.bytecode_dir)
        self.env.filters["to_yaml"] = lambda v: yaml.safe_dump(
            v, sort_keys=False, allow_unicode=True, default_flow_style=False, width=10_000)
        # The feed and the sitemap never list a draft, even in a build with --drafts: they are
        # for readers' feed readers and for search engines, not for previewing.
        listed = [p for p in self.posts if not p.draft]
        self.common = {"site": self.site, "base": self.site.baseurl, "posts": self.posts,
                       "feed_posts": listed,
                       "updated": max((p.date for p in listed or self.posts), default=None)}
        self._css: str | None = None

    def with_posts(self, infos: Mapping[str, Any], rendered: Mapping[str, Any],
                   git: Any = None) -> "SiteBuild":
        """This build with the posts of ``infos`` (slug -> PostInfo) and their renderings
        swapped for new ones (and git's state, if given), sharing its templates: what one
        post's page is rendered with again (publish.early)."""
        import copy

        new = copy.copy(self)
        if git is not None:
            new.git = git
        new.posts = [infos.get(p.slug, p) for p in self.posts]
        new.rendered = {**self.rendered, **rendered}
        new.common = {**self.common, "posts": new.posts,
                      "feed_posts": [infos.get(p.slug, p) for p in self.common["feed_posts"]]}
        return new

    def page(self, name: str, **ctx: Any) -> str:
        return render_template(self.env, self.dirs, name, **{**self.common, **ctx})

    def css(self) -> str:
        """The one stylesheet, with both colour schemes' highlighting rules and the rules of
        the math pre-rendered as SVG appended."""
        from ..render.prerender import CSS as MATH_CSS

        if self._css is None:
            self._css = (self.page("assets/style.css") + "\n" + self.markdown.pygments_css()
                         + "/* Math pre-rendered by MathJax (render/prerender.py) */\n"
                         + MATH_CSS)
        return self._css

    def reproduce(self, info) -> dict[str, Any]:
        """What a post's "Reproduce this article" box shows (templates/reproduce.html): the
        repository at the commit that built the page when both are known, whether the work
        tree differed from that commit, and the command that recomputes the post's results."""
        repo, git = self.site.repository or None, self.git
        commit = git.commit if (repo and git is not None) else None
        names = list(info.post.experiments)            # as the front matter declares them
        return {
            "repository": repo,
            "label": repo.split("://", 1)[-1] if repo else None,
            "folder": repo.rstrip("/").rsplit("/", 1)[-1] if repo else None,
            "url": f"{repo}/tree/{commit}" if commit else repo,
            "commit": commit,
            "short": git.short if commit else None,
            "dirty": bool(commit and git.dirty),
            "experiments": names,
            "run": ("lora-site run " + " ".join(f"--only {n}" for n in names)) if names else None,
        }

    def figure_files(self, *, light_only: bool = False) -> dict[str, bytes]:
        """assets/images/.../<file> -> PNG bytes of every figure (the light theme's files only,
        1x and 2x, for a format whose pages link one plain image and its full-resolution view)."""
        from ..plots.common import is_light

        out = {}
        for exp in sorted(self.figures):
            files = self.figures[exp]
            for filename in sorted(files):
                if light_only and not is_light(filename):
                    continue
                out[f"{image_dir(exp)}/{filename}"] = files[filename]
        return out

    def asset(self, name: str) -> bytes:
        """A static file of the templates (the project's own first), copied as it is."""
        for d in self.dirs:
            if (d / name).is_file():
                return (d / name).read_bytes()
        raise BuildError(f"no template file {name}", path=self.project.templates / name,
                         hint="restore templates/ from the repository")

    def data_files(self) -> dict[str, bytes]:
        """assets/data/<experiment>/<file> -> bytes: what each experiment's figures link to
        for readers to download (Kind.downloads)."""
        return {f"{data_dir(exp)}/{name}": blob
                for exp in sorted(self.data or {}) for name, blob in sorted(self.data[exp].items())}


class Files(dict):
    """A tree of output files; two writers of one path is a bug."""

    def put(self, path: str, data: str | bytes) -> None:
        if path in self:
            raise BuildError(f"two outputs want the same file {path}")
        self[path] = data if isinstance(data, bytes) else data.encode("utf-8")


def formats() -> list[OutputFormat]:
    """Every output format of this package, by name."""
    import importlib
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    out = []
    for f in sorted(os.listdir(here)):
        if not f.endswith(".py") or f == "base.py" or f.startswith("_"):
            continue
        fmt = getattr(importlib.import_module(f"{__package__}.{f[:-3]}"), "FORMAT", None)
        if isinstance(fmt, OutputFormat):
            out.append(fmt)
    return sorted(out, key=lambda f: f.name)
