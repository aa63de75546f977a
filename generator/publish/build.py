"""Build the site: ``build`` reads as the pipeline itself.

settings and posts -> results (run or reuse, every kind) -> figures -> every page of every
output format rendered to bytes in memory -> one atomic write of site/<format>/ for each.
Rendering returns strings; publish.tree.write_tree is the only function that touches site/.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..authoring.post_info import PostInfo, post_info
from ..authoring.posts import collect_experiments, read_posts
from ..authoring.site_config import SiteConfig, load_site_config
from ..authoring.urls import check_urls
from ..core.context import BuildContext
from ..core.errors import ContentError
from ..outputs.base import SiteBuild, formats
from ..render.context import post_links
from ..render.markdown import markdowner
from ..render.post import RenderedPost, cached_render_post
from ..render.postcache import post_cache
from ..stages import run
from ..stages.store import recover_freeze
from .links import check_links
from .lock import build_lock, failpoint
from .tree import OutputMemo, probe_output, recover_output, write_tree


@dataclass(frozen=True)
class BuildReport:
    out: Path
    files: tuple[str, ...]                  # every file written, as <format>/<path>
    posts: tuple[str, ...]
    counts: tuple[tuple[str, int], ...] = ()    # (format, files) in format order
    # The bytes written, for a caller that compares one build with the next (the preview).
    contents: Mapping[str, bytes] | None = field(default=None, repr=False, compare=False)
    # What the pages were rendered from, for a caller that renders one post again (the
    # preview's early page, publish.early).
    inputs: "RenderInputs | None" = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class RenderInputs:
    """What the render stage rendered every page from: the formats' SiteBuild, the results,
    and every post's URL in each format (post_url)."""

    build: SiteBuild
    results: Mapping[str, Any]
    links: Mapping[str, Mapping[str, str]]


def _result_files(ctx: BuildContext, declared) -> dict[str, Any]:
    """name -> what identifies each experiment's result for the post render cache: its kind
    (and, for a kind of the project's own, its module's source, which decides what a body
    sees), its settings and the hashes of its files."""
    store = run.store_of(ctx)
    out = {}
    for name, d in declared.items():
        folder = store.folder(name)
        out[name] = {"kind": d.kind.name, "settings": d.kind.settings_dict(d.settings),
                     "files": {f: ctx.hashes.sha256(folder / f) for f in d.kind.result_files},
                     **run.outside_sources(ctx, d)}
    return out


def source_state(ctx: BuildContext, site: SiteConfig):
    """What git says about the folders a build reads (core.gitinfo.GitState), for the listings'
    source links and each post's reproduce box; None without a ``repository`` setting (then
    nothing links to a commit, and git is not asked), without git or outside a repository."""
    from ..core.gitinfo import git_state
    from ..core.keys import package_dir

    if not site.repository:
        return None
    project, pkg = ctx.project, package_dir()
    return git_state(project.root, [project.content, project.templates, pkg,
                                    pkg.parent / "templates"])


def shown_posts(ctx: BuildContext, site: SiteConfig, drafts: bool = False) -> list[PostInfo]:
    """The posts this build shows, newest first: every post, drafts (``published: false``)
    only with ``drafts``. Their URLs are checked (authoring.urls) before anything runs."""
    posts = read_posts(ctx)
    if not posts:
        raise ContentError("no posts", path=ctx.project.posts,
                           hint="add a Markdown file with front matter to content/posts/")
    infos = [post_info(p, site) for p in posts]
    shown = [i for i in infos if drafts or not i.draft]
    if not shown:
        raise ContentError("every post is a draft (published: false)", path=ctx.project.posts,
                           hint="build with --drafts to see them, or publish one")
    check_urls(shown)
    return sorted(shown, key=lambda p: (p.date, p.slug), reverse=True)


IGNORED_MEMO = "ignored.json"


def report_ignored(ctx: BuildContext, opts: run.StageOptions) -> None:
    """Name the files in content/posts the build does not read (a post in a subfolder, a
    .markdown file, an editor's file): each under --explain, and once as a warning, when the
    set differs from the one warned about last (.cache/lora-site/ignored.json)."""
    import json

    ignored = ctx.project.ignored_files()
    for rel, why in ignored:
        opts.say(f"ignored: content/posts/{rel} ({why})")
    memo = ctx.project.cache / IGNORED_MEMO
    names = [rel for rel, _ in ignored]
    try:
        last = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        last = []
    if names == last:
        return
    if names and opts.warn is not None:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        opts.warn(f"{len(names)} file(s) in content/posts are not posts and are ignored: "
                  f"{shown} (--explain says why)")
    from ..core.fsio import write_bytes_atomic

    write_bytes_atomic(memo, (json.dumps(names) + "\n").encode("utf-8"))


def render_site(ctx: BuildContext, *, results: Mapping[str, Any],
                figures: Mapping[str, Mapping[str, bytes]], site: SiteConfig,
                declared: Mapping[str, Any] | None = None,
                infos: list[PostInfo] | None = None,
                keep_caches: bool = True) -> dict[str, bytes]:
    """Stage 3: posts + results + figures -> {path below site/: bytes}. Writes nothing but the
    render caches (keep_caches=False: the caller writes them with keep_render_caches, once
    the pages are out). infos: the posts to show (shown_posts; default: every post that is not
    a draft)."""
    return render_with_inputs(ctx, results=results, figures=figures, site=site,
                              declared=declared, infos=infos, keep_caches=keep_caches)[0]


def render_with_inputs(ctx: BuildContext, *, results: Mapping[str, Any],
                       figures: Mapping[str, Mapping[str, bytes]], site: SiteConfig,
                       declared: Mapping[str, Any] | None, infos: list[PostInfo] | None,
                       keep_caches: bool) -> tuple[dict[str, bytes], RenderInputs]:
    """render_site, and what the pages were rendered from (for publish.early)."""
    infos = infos if infos is not None else shown_posts(ctx, site)
    declared = declared if declared is not None else collect_experiments(
        [i.post for i in infos])
    fmts = formats()
    result_files = _result_files(ctx, declared)
    git = source_state(ctx, site)
    links = post_links({info.slug: info for info in infos}, site, fmts)
    rendered: dict[str, RenderedPost] = {
        info.slug: cached_render_post(ctx, info, site, results, figures, fmts,
                                      result_files=result_files, links=links, git=git)
        for info in sorted(infos, key=lambda i: i.slug)}
    md = markdowner(ctx)
    store = run.store_of(ctx)
    data = {name: d.kind.download_bytes(store.folder(name), results[name])
            for name, d in sorted(declared.items())}
    build = SiteBuild(project=ctx.project, site=site, posts=infos, rendered=rendered,
                      figures=figures, markdown=md, bytecode_dir=ctx.project.cache / "jinja",
                      data=data, git=git)
    files: dict[str, bytes] = {}
    for fmt in fmts:
        for path, data in sorted(fmt.files(build).items()):
            files[f"{fmt.name}/{path}"] = data
    check_links(build, fmts, files)
    if keep_caches:
        keep_render_caches(ctx)
    return files, RenderInputs(build=build, results=results, links=links)


def keep_render_caches(ctx: BuildContext) -> None:
    """Write the highlighted code and the rendered posts of this build (and drop the posts'
    renderings it did not use)."""
    markdowner(ctx).save()
    post_cache(ctx).prune()


def build(ctx: BuildContext, *, frozen: bool = False, force: bool = False,
          baseurl: str | None = None, out: Path | None = None,
          opts: run.StageOptions | None = None, drafts: bool = False,
          on_rendered: Callable[[Mapping[str, bytes]], None] | None = None) -> BuildReport:
    """Run every stage and write site/ (or ``out``) in one atomic step.

    frozen: never compute, use content/_freeze only (``lora-site render``).
    force: re-run every experiment and redraw every figure.
    baseurl: override site.yml's baseurl (e.g. '/repo' for a project page).
    opts: the stages' options (explain, warn, progress, refreeze), which then hold frozen and
    force too.
    drafts: show the posts with ``published: false`` too, marked as drafts. Without it a
    draft reaches no output: its page, its experiments and their figures are left out.
    on_rendered: told every file's bytes once all are rendered, before they are written (the
    preview serves them from memory while they are written).
    """
    opts = opts or run.StageOptions(frozen=frozen, force=force)
    ctx.new_build()                                  # a warm context renews per-build state
    project = ctx.project
    out = Path(out) if out is not None else project.site
    site = load_site_config(project, baseurl)        # fail fast, before any training
    infos = shown_posts(ctx, site, drafts)
    report_ignored(ctx, opts)
    declared = collect_experiments([i.post for i in infos])
    if not ctx.state("outputs", OutputMemo).wrote_last(out):
        probe_output(out)                            # an unwritable folder fails before training
    with build_lock(project):
        recover_output(out)                          # what a killed build left behind
        recover_freeze(ctx)                          # ... and a killed commit of the freeze
        failpoint("results")
        results, figures = run.experiments(ctx, declared, opts)
        failpoint("render")
        files, inputs = render_with_inputs(ctx, results=results, figures=figures, site=site,
                                           declared=declared, infos=infos, keep_caches=False)
        opts.say(f"render: ran ({len(files)} files)")
        if on_rendered is not None:
            on_rendered(files)
        if ctx.has_state("workers"):
            run.workers_of(ctx).finish_drawing()     # every figure staged before the commit
        keep_render_caches(ctx)
        # The commit, in the order that leaves nothing half-changed: first every byte of the
        # new content/_freeze is written beside it (a full disk fails here, and changes
        # nothing), then every byte of site/ beside it (likewise), then the two folders are
        # swapped in one uninterruptible step, the freeze first; if site/ then cannot be
        # swapped the freeze is swapped back. So a failed build leaves both as they were.
        memo = ctx.state("outputs", OutputMemo)
        same = memo.same(out, files)                 # a warm context's unchanged files
        memo.forget(out)                             # until this write has succeeded
        commit = run.store_of(ctx).prepare()
        try:
            write_tree(out, files, alongside=commit, same=same)
        except BaseException:
            if commit is not None:
                commit.abandon()
            raise
        memo.wrote(out, files)
        opts.say(f"write: {out}")
    if ctx.has_state("workers"):
        run.workers_of(ctx).close_pool()             # figure workers left idle by the stages
    counts = {}
    for path in files:
        fmt = path.split("/", 1)[0]
        counts[fmt] = counts.get(fmt, 0) + 1
    return BuildReport(out=out, files=tuple(sorted(files)),
                       posts=tuple(sorted(i.slug for i in infos)),
                       counts=tuple((f.name, counts.get(f.name, 0)) for f in formats()),
                       contents=files, inputs=inputs)
