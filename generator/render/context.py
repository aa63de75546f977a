"""What a post body sees when it is rendered for one output format.

The body's variables: each declared experiment under its own name (``main.metrics.steps``) and
in ``experiments``, ``data.<name>`` for the names listed under ``data:``, ``page``, ``site``,
``listing(module, name, fold=None)`` (a code block: render.listings), ``claims_table(audit)``
(the claims audit's verdicts: render.claims_table), ``figure(name, caption, experiment=...)``,
``post_url(slug)`` (the URL of another post in this output) and ``target`` (the output
format's name). The figure helper checks the figure exists and counts figures; the format
writes the markup.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..core.errors import ConfigError, ContentError
from ..plots.common import image_filename, image_size
from .claims_table import claims_table
from .listings import ListingHelper

MAIN_EXPERIMENT = "main"


def image_dir(experiment: str) -> str:
    """Figures of 'main' sit at assets/images/<file> (the reference's paths); others below a
    folder named after their experiment."""
    return "assets/images" if experiment == MAIN_EXPERIMENT else f"assets/images/{experiment}"


def data_dir(experiment: str) -> str:
    """Where an experiment's downloadable data sits (Kind.downloads)."""
    return f"assets/data/{experiment}"


@dataclass(frozen=True)
class FigureRef:
    """One figure placed in a body, as an output format draws it."""

    experiment: str
    name: str
    number: int                 # 1, 2, ... in the order the post shows them
    caption: str                # Markdown, math included, on one line
    alt: str
    src: str                    # root-relative URL of the 1x image (with the baseurl)
    src2x: str
    width: int
    height: int
    anchor: str = ""            # the id a format may give it: unique on the page
    data: tuple[tuple[str, str], ...] = ()  # (file name, URL) of the data behind it
    explore: str = ""           # URL of the data its interactive version reads, if shown


def figure_anchor(experiment: str, name: str, shown_before: int) -> str:
    """fig-<name> for the experiment 'main' (the reference's anchors), fig-<experiment>-<name>
    for another, so two experiments' figure of one name differ; -2, -3 for a figure shown
    again on the same page."""
    base = f"fig-{name}" if experiment == MAIN_EXPERIMENT else f"fig-{experiment}-{name}"
    return base if not shown_before else f"{base}-{shown_before + 1}"


class FigureHelper:
    """``{{ figure('before_lora', 'caption') }}`` in a post. Records what the post used so the
    build can check it, and hands the markup to the output format."""

    def __init__(self, fmt, site, figures: Mapping[str, Mapping[str, bytes]],
                 declared: Mapping[str, Any], path: Path, markdown, refs=None) -> None:
        self.fmt, self.site, self.figures = fmt, site, figures
        self.declared, self.path, self.markdown = declared, path, markdown
        self.refs = refs
        self.count = 0
        self.used: list[tuple[str, str]] = []

    def __call__(self, name: str, caption: str | None = None, experiment: str = MAIN_EXPERIMENT,
                 alt: str | None = None, explore: bool = False,
                 caller: Callable[[], str] | None = None) -> str:
        """The caption is an argument or, to write TeX without escaping backslashes in a Jinja
        string, the body of a call block: {% call figure('x') %}$QK^\\top${% endcall %}.
        explore=True adds the figure's interactive version (Kind.explorers) over the image."""
        if caption is None:
            if caller is None:
                raise ContentError(f"figure {name!r} has no caption",
                                   hint="pass a caption or use {% call figure(...) %}")
            caption = " ".join(str(caller()).split())
        d = self.declared.get(experiment)
        if d is None:
            raise ContentError(f"figure {name!r}: the post declares no experiment {experiment!r}",
                               hint="add it under experiments: in the front matter")
        alt_texts = d.kind.figures(d.settings)
        if name not in alt_texts or image_filename(name, 1) not in self.figures.get(experiment, {}):
            raise ContentError(f"figure {name!r} does not exist",
                               hint=f"use one of {', '.join(alt_texts) or 'none'}")
        self.count += 1
        shown_before = self.used.count((experiment, name))
        anchor = figure_anchor(experiment, name, shown_before)
        self.used.append((experiment, name))
        folder = f"{self.site.baseurl}/{image_dir(experiment)}"
        w, h = image_size(1)
        if self.refs is not None and not shown_before:     # @fig: names its first showing
            self.refs.add_figure(experiment, name, self.count, anchor)
        data_url = f"{self.site.baseurl}/{data_dir(experiment)}"
        data = tuple((f, f"{data_url}/{f}") for f in d.kind.downloads(d.settings))
        explore_url = ""
        if explore:
            explorers = d.kind.explorers(d.settings)
            if name not in explorers:
                raise ContentError(f"figure {name!r} has no interactive version",
                                   hint="drop explore=True" + (
                                       f", or use it with {', '.join(sorted(explorers))}"
                                       if explorers else ""))
            explore_url = f"{data_url}/{explorers[name]}"
        return self.fmt.figure(FigureRef(
            experiment=experiment, name=name, number=self.count, caption=caption,
            alt=alt or alt_texts[name], src=f"{folder}/{image_filename(name, 1)}",
            src2x=f"{folder}/{image_filename(name, 2)}", width=w, height=h,
            anchor=anchor, data=data, explore=explore_url), self.markdown)


def post_links(posts: Mapping[str, Any], site, formats) -> dict[str, dict[str, str]]:
    """slug -> output format name -> the post's URL there (OutputFormat.post_url)."""
    return {slug: {fmt.name: fmt.post_url(info, site) for fmt in formats}
            for slug, info in sorted(posts.items())}


class PostUrl:
    """``{{ post_url('other-slug') }}``: the URL of another post in the output being rendered
    (HTML: <baseurl>/<slug>/; Jekyll: the post's permalink). An unknown slug is an error naming
    the post and line."""

    def __init__(self, links: Mapping[str, Mapping[str, str]], fmt) -> None:
        self.links, self.fmt = links, fmt

    def __call__(self, slug: str) -> str:
        if slug not in self.links:
            import difflib

            close = difflib.get_close_matches(str(slug), list(self.links), n=1)
            raise ContentError(f"post_url: no post named {slug!r}",
                               hint=f"did you mean '{close[0]}'?" if close else
                               f"posts: {', '.join(sorted(self.links)) or 'none'}")
        return self.links[slug][self.fmt.name]


def body_context(info, site, results: Mapping[str, Any], figures: Mapping[str, Mapping[str, bytes]],
                 fmt, markdown, refs=None, git=None, *,
                 sources: Callable[[str, str], Any] | None = None,
                 links: Mapping[str, Mapping[str, str]] | None = None
                 ) -> tuple[dict[str, Any], FigureHelper]:
    """The variables of ``info``'s body rendered for output format ``fmt``, and its figure
    helper (which records the figures the body used). refs: the post's render.refs.PostRefs,
    which the figure and table helpers label. git: the core.gitinfo.GitState listings link
    their source with (None: no links). sources: (module, name) -> render.listings.Source,
    cached by the build (render.listings.listings_of); links: every post's URLs
    (post_links), for post_url; without them only the post itself is known."""
    from .refs import BIB_MARKER, PostRefs

    refs = refs if refs is not None else PostRefs()
    post = info.post
    views = {name: d.kind.view(name, results[name]) for name, d in post.experiments.items()}
    data = {name: post.experiments[name].kind.data(results[name]) for name in post.data}
    figure = FigureHelper(fmt, site, figures, post.experiments, post.path, markdown, refs)
    ctx: dict[str, Any] = {
        "experiments": views,
        "page": {"title": info.title, "description": info.description, "slug": info.slug,
                 "meta": post.meta},
        "site": site,
        "data": data,
        "listing": ListingHelper(site, git, sources=sources),
        "claims_table": claims_table,
        "figure": figure,
        "table": refs.table,
        "bibliography": lambda: BIB_MARKER,
        "post_url": PostUrl(links if links is not None else
                            post_links({info.slug: info}, site, [fmt]), fmt),
        "target": fmt.name,
    }
    for name, view in views.items():
        # authoring.names refuses these names when the post is read; this is the safety net
        # for a name added here and not there (tests/test_names.py checks they agree).
        if name in ctx:
            raise ConfigError(f"experiment name '{name}' clashes with a template name",
                              path=post.path, field=f"experiments.{name}",
                              hint="rename the experiment")
        ctx[name] = view
    return ctx, figure
