"""Render one post's body for every output format: Jinja over the author's Markdown, then the
format finishes it (Markdown -> HTML for the site, kramdown-safe Markdown for Jekyll). Errors
found in the Markdown after Jinja ran name the post, and the line where they can.
"""
from __future__ import annotations

import itertools

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..core.context import BuildContext
from ..core.errors import ContentError
from .context import body_context
from .jinja import body_renderer
from .links import local_links
from .listings import listings_of
from .markdown import markdowner
from .postcache import post_cache


@dataclass(frozen=True)
class Tools:
    """What an output format's finish() may use: the context's Markdown converter and math
    renderer. splice: the Markdown may be converted by editing a remembered conversion
    (render.markdown.Markdowner.splice): for a preview's early page only."""

    markdown: Any
    math: Any
    splice: bool = False


@dataclass
class RenderedPost:
    info: Any
    parts: dict[str, dict[str, Any]]             # output format name -> what it rendered
    figures_used: list = field(default_factory=list)   # [(experiment, figure name), ...]
    # The works it cites, in order of first citation, as Google Scholar citation_reference
    # contents (the same in every format: one body, one set of citations).
    references: list = field(default_factory=list)


def render_post(ctx: BuildContext, info, site, results: Mapping[str, Any],
                figures: Mapping[str, Mapping[str, bytes]], formats: list,
                links: Mapping[str, Mapping[str, str]] | None = None,
                git=None, *, splice: bool = False) -> RenderedPost:
    """The post's body rendered for each of ``formats`` (output format objects). links: every
    post's URL in each format (render.context.post_links), for post_url. git: the
    core.gitinfo.GitState the listings link their source with, or None. splice: see Tools
    (publish.early's page; a build's pages never splice)."""
    from .prerender import math_renderer
    from .callouts import expand as expand_callouts
    from .refs import Bibliography, PostRefs, Resolver

    renderer, md, listings = body_renderer(ctx), markdowner(ctx), listings_of(ctx)
    tools = Tools(markdown=md, math=math_renderer(ctx), splice=splice)
    post = info.post
    parts: dict[str, dict[str, Any]] = {}
    used: list = []
    references: list[str] = []
    lines = post.body.split("\n")

    def line_of(needle: str, nth: int = 1) -> int | None:
        """The post's line of the ``nth`` occurrence of ``needle`` in the body as written."""
        hits = (post.body_line + i for i, line in enumerate(lines) if needle in line)
        return next(itertools.islice(hits, nth - 1, None), None)

    for fmt in formats:
        refs = PostRefs()
        variables, helper = body_context(info, site, results, figures, fmt, md, refs, git,
                                         sources=listings.source, links=links)
        text = renderer.render(post.body, variables, path=post.path, first_line=post.body_line)
        _refuse_fenced_listings(text, post, line_of)
        used = helper.used
        try:
            text = expand_callouts(text, line_of=line_of, path=post.path)
            bib = Bibliography.of(ctx)
            text = Resolver(refs, bib, path=post.path, line_of=line_of).resolve(text)
            references = [bib.entries[key].scholar for key in refs.cited]
            parts[fmt.name] = fmt.finish(text, tools)
        except ContentError as exc:
            if exc.path is not None:
                raise                   # located already (an unknown citation names its line)
            raise _locate_markdown_error(exc, post) from None
        # Checked once every page exists (publish.links); found here, where the text the
        # format's Markdown was made from is at hand, and cached with the rest.
        parts[fmt.name]["links"] = [list(link) for link in local_links(text)]
    return RenderedPost(info=info, parts=parts, figures_used=used, references=references)


def _refuse_fenced_listings(text: str, post: Any, line_of) -> None:
    """``listing()`` writes a whole code block; inside a ``` fence (the form it once needed) its
    figure would show as code. Say so, on the line of that call: the n-th listing the body
    wrote is taken to be the n-th ``listing(`` of the post as written."""
    from .dialect import iter_blocks
    from .listings import LISTING_CLASS

    marker = f'<figure class="{LISTING_CLASS}"'
    if marker not in text:
        return
    try:
        blocks = iter_blocks(text)
    except ContentError:
        return                      # an unclosed $$: reported, with its line, by finish()
    seen = 0
    for kind, block in blocks:
        if kind == "fence" and marker in block:
            raise ContentError("a listing inside a ``` fence: listing() writes its own code block",
                               path=post.path, line=line_of("listing(", seen + 1),
                               hint="remove the ``` lines around the listing call")
        seen += block.count(marker)


def _locate_markdown_error(exc: ContentError, post: Any) -> ContentError:
    """An error found in the Markdown after Jinja ran (an unclosed $$, an inline $$) names the
    post, and the line when the same problem is in the post as written (it nearly always is:
    Jinja rarely writes the dollars). A line counted in the rendered text would mislead, so
    otherwise there is none."""
    from ..core.located import located, problem
    from .dialect import iter_blocks

    try:
        iter_blocks(post.body)
    except ContentError as src:
        if src.line is not None and problem(src) == problem(exc):
            return located(src, path=post.path, line=post.body_line + src.line - 1)
    return located(exc, path=post.path, line=None)


def cached_render_post(ctx: BuildContext, info, site, results: Mapping[str, Any],
                       figures: Mapping[str, Mapping[str, bytes]], formats: list, *,
                       result_files: dict[str, Any],
                       links: Mapping[str, Mapping[str, str]] | None = None,
                       git=None) -> RenderedPost:
    """render_post, or its parts from an earlier build whose inputs were exactly these
    (postcache): an edit to one post does not re-render the others. result_files: name ->
    {kind, settings, files: {file: sha256}} of every experiment the post declares. links: as
    for render_post (part of the key: a post's URL moving re-renders the posts that link to
    it). git: the GitState listings link with; its commit (and work tree) are part of the key,
    and with the source hashes already in it they decide which listed files differ from the
    commit."""
    cache = post_cache(ctx)
    bib = ctx.project.content / "references.bib"
    key = cache.key(info, site, {n: result_files[n] for n in sorted(info.post.experiments)},
                    {exp: sorted(files) for exp, files in sorted(figures.items())},
                    [f.name for f in formats],
                    extra={"bibliography": ctx.hashes.sha256(bib) if bib.is_file() else None,
                           "git": None if git is None else [str(git.toplevel), git.commit]},
                    links=links)
    doc = cache.get(key)
    if doc is not None and sorted(doc) == ["figures_used", "parts", "references"] \
            and sorted(doc["parts"]) == sorted(f.name for f in formats):
        return RenderedPost(info=info, parts=doc["parts"],
                            figures_used=[tuple(x) for x in doc["figures_used"]],
                            references=list(doc["references"]))
    rendered = render_post(ctx, info, site, results, figures, formats, links, git)
    cache.put(key, {"parts": rendered.parts, "figures_used": rendered.figures_used,
                    "references": rendered.references})
    return rendered
