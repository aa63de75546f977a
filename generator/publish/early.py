"""The edited post's page, rendered before the rest of a build: the preview's fast path.

An author who changes the body of a post waits for one page, yet a build renders every post in
every format, the index, the feed and the Jekyll tree, and checks that no experiment is out of
date. When the change is to post bodies only (their front matter, and so their experiments,
URLs and dates, as the last build saw them), nothing else the page is made from can have moved:
the results, figures, templates, settings and the other posts are the last build's. So the page
is rendered from what the last build rendered with (RenderInputs), in one format, through the
same functions the build calls (render_post, the format's post_files), and served at once; the
full build then runs as usual, and whatever it renders differently replaces it. The one input
that moves with the edit, git's view of the work tree (the reproduce box says whether it has
changes), is updated for the edited files without asking git (_edited).

Any doubt means no early page: a path that is not a post the last build showed, a front matter
that changed, a post that does not parse or render, a local link the last build's files do not
serve. The full build then reports, as it would have.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Mapping

from ..authoring.post_info import post_info
from ..authoring.posts import read_post
from ..core.context import BuildContext
from ..core.errors import LoraSiteError
from ..outputs.base import formats
from ..render.post import render_post
from .build import RenderInputs
from .links import broken_link, served_by


def early_pages(ctx: BuildContext, last: RenderInputs, last_files: Mapping[str, bytes],
                changed: Iterable[str | Path], fmt_name: str = "html") -> dict[str, bytes] | None:
    """The files (as <format>/<path>) of the pages of the posts at ``changed`` in the format
    ``fmt_name``, rendered against the last build's inputs; None when the change may reach
    beyond those pages (see the module's docstring) or the format cannot render one post.
    ``last_files``: every file the last build wrote, as <format>/<path>."""
    fmt = next((f for f in formats() if f.name == fmt_name), None)
    paths = sorted({Path(p) for p in changed})
    if fmt is None or not paths:
        return None
    shown = {info.post.path: info for info in last.build.posts}
    if any(path not in shown for path in paths):
        return None                 # a new post, a draft, a setting, a template, a result...
    site = last.build.site
    git = _edited(last.build.git, paths)
    try:
        infos, rendered = {}, {}
        for path in paths:
            before = shown[path]
            post = read_post(ctx, path)
            info = post_info(post, site)
            # Everything but the body as the last build had it: the same experiments, data,
            # URL, date, title and draft state, so no other page and no result can differ.
            if (dataclasses.replace(info, post=before.post) != before
                    or post.meta != before.post.meta or post.data != before.post.data
                    or post.experiments != before.post.experiments):
                return None
            infos[info.slug] = info
            # splice: Markdown for the paragraph that changed only, when that is all.
            rendered[info.slug] = render_post(ctx, info, site, last.results, last.build.figures,
                                              [fmt], last.links, git, splice=True)
        build = last.build.with_posts(infos, rendered, git=git)
        served = served_by(build, fmt, last_files)
        out: dict[str, bytes] = {}
        for slug, info in infos.items():
            if broken_link(build, fmt, info, served) is not None:
                return None
            files = fmt.post_files(build, info)
            if files is None:
                return None
            out.update({f"{fmt.name}/{p}": data for p, data in files.items()})
        return out
    except LoraSiteError:
        return None                 # the full build meets the same error and reports it


def _edited(git, paths: list[Path]):
    """The last build's git state (core.gitinfo.GitState, or None) with the edited posts among
    the files that differ from HEAD, as asking git again would nearly always find (asking costs
    more than the page): the reproduce box then says the work tree has changes from the first
    edit after a commit on. An edit that puts a post back as committed, or a commit made since,
    is seen by the full build, whose page then replaces this one."""
    if git is None:
        return None
    rels = {rel for rel in (git.relpath(p) for p in paths) if rel is not None}
    return dataclasses.replace(git, changed=git.changed | rels) if rels else git
