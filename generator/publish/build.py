"""Build the site: ``build`` reads as the pipeline itself.

settings and posts -> results (run or reuse, every kind) -> figures -> every page of every
output format rendered to bytes in memory -> one atomic write of site/<format>/ for each.
Rendering returns strings; publish.tree.write_tree is the only function that touches site/.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..authoring.post_info import post_info
from ..authoring.posts import collect_experiments, read_posts
from ..authoring.site_config import SiteConfig, load_site_config
from ..core.context import BuildContext
from ..core.errors import ContentError
from ..outputs.base import SiteBuild, formats
from ..render.markdown import markdowner
from ..render.post import RenderedPost, cached_render_post
from ..render.postcache import post_cache
from ..stages import run
from .lock import build_lock, failpoint
from .tree import probe_output, recover_output, write_tree


@dataclass(frozen=True)
class BuildReport:
    out: Path
    files: tuple[str, ...]                  # every file written, as <format>/<path>
    posts: tuple[str, ...]
    counts: tuple[tuple[str, int], ...] = ()    # (format, files) in format order


def _result_files(ctx: BuildContext, declared) -> dict[str, Any]:
    """name -> what identifies each experiment's result for the post render cache."""
    store = run.store_of(ctx)
    out = {}
    for name, d in declared.items():
        folder = store.folder(name)
        out[name] = {"kind": d.kind.name, "settings": d.kind.settings_dict(d.settings),
                     "files": {f: ctx.hashes.sha256(folder / f) for f in d.kind.result_files}}
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


def render_site(ctx: BuildContext, *, results: Mapping[str, Any],
                figures: Mapping[str, Mapping[str, bytes]], site: SiteConfig,
                declared: Mapping[str, Any] | None = None) -> dict[str, bytes]:
    """Stage 3: posts + results + figures -> {path below site/: bytes}. Writes nothing."""
    posts = read_posts(ctx)
    if not posts:
        raise ContentError("no posts", path=ctx.project.posts,
                           hint="add a Markdown file with front matter to content/posts/")
    declared = declared if declared is not None else collect_experiments(posts)
    infos = sorted((post_info(p, site) for p in posts), key=lambda p: (p.date, p.slug),
                   reverse=True)
    fmts = formats()
    result_files = _result_files(ctx, declared)
    git = source_state(ctx, site)
    rendered: dict[str, RenderedPost] = {
        info.slug: cached_render_post(ctx, info, site, results, figures, fmts,
                                      result_files=result_files, git=git)
        for info in sorted(infos, key=lambda i: i.slug)}
    md = markdowner(ctx)
    build = SiteBuild(project=ctx.project, site=site, posts=infos, rendered=rendered,
                      figures=figures, markdown=md, bytecode_dir=ctx.project.cache / "jinja",
                      git=git)
    files: dict[str, bytes] = {}
    for fmt in fmts:
        for path, data in sorted(fmt.files(build).items()):
            files[f"{fmt.name}/{path}"] = data
    md.save()
    post_cache(ctx).prune()
    return files


def build(ctx: BuildContext, *, frozen: bool = False, force: bool = False,
          baseurl: str | None = None, out: Path | None = None,
          opts: run.StageOptions | None = None) -> BuildReport:
    """Run every stage and write site/ (or ``out``) in one atomic step.

    frozen: never compute, use content/_freeze only (``lora-site render``).
    force: re-run every experiment and redraw every figure.
    baseurl: override site.yml's baseurl (e.g. '/repo' for a project page).
    opts: the stages' options (explain, warn, progress, refreeze), which then hold frozen and
    force too.
    """
    opts = opts or run.StageOptions(frozen=frozen, force=force)
    project = ctx.project
    out = Path(out) if out is not None else project.site
    site = load_site_config(project, baseurl)        # fail fast, before any training
    posts = read_posts(ctx)
    for p in posts:
        post_info(p, site)
    declared = collect_experiments(posts)
    probe_output(out)                                # an unwritable folder fails before training
    with build_lock(project):
        recover_output(out)                          # what a killed build left behind
        failpoint("results")
        results, figures = run.experiments(ctx, declared, opts)
        failpoint("render")
        files = render_site(ctx, results=results, figures=figures, site=site,
                            declared=declared)
        opts.say(f"render: ran ({len(files)} files)")
        write_tree(out, files)
        opts.say(f"write: {out}")
    if ctx.has_state("workers"):
        run.workers_of(ctx).close_pool()             # figure workers left idle by the stages
    counts = {}
    for path in files:
        fmt = path.split("/", 1)[0]
        counts[fmt] = counts.get(fmt, 0) + 1
    return BuildReport(out=out, files=tuple(sorted(files)),
                       posts=tuple(sorted(p.slug for p in posts)),
                       counts=tuple((f.name, counts.get(f.name, 0)) for f in formats()))
