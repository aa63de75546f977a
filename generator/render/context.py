"""What a post body sees when it is rendered for one output format.

The body's variables: each declared experiment under its own name (``main.metrics.steps``) and
in ``experiments``, ``data.<name>`` for the names listed under ``data:``, ``page``, ``site``,
``listing(module, name)``, ``figure(name, caption, experiment=...)`` and ``target`` (the output
format's name). The figure helper checks the figure exists and counts figures; the format
writes the markup.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..core.errors import ConfigError, ContentError
from ..plots.common import image_filename, image_size
from .listings import listing

MAIN_EXPERIMENT = "main"


def image_dir(experiment: str) -> str:
    """Figures of 'main' sit at assets/images/<file> (the reference's paths); others below a
    folder named after their experiment."""
    return "assets/images" if experiment == MAIN_EXPERIMENT else f"assets/images/{experiment}"


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


class FigureHelper:
    """``{{ figure('before_lora', 'caption') }}`` in a post. Records what the post used so the
    build can check it, and hands the markup to the output format."""

    def __init__(self, fmt, site, figures: Mapping[str, Mapping[str, bytes]],
                 declared: Mapping[str, Any], path: Path, markdown) -> None:
        self.fmt, self.site, self.figures = fmt, site, figures
        self.declared, self.path, self.markdown = declared, path, markdown
        self.count = 0
        self.used: list[tuple[str, str]] = []

    def __call__(self, name: str, caption: str | None = None, experiment: str = MAIN_EXPERIMENT,
                 alt: str | None = None, caller: Callable[[], str] | None = None) -> str:
        """The caption is an argument or, to write TeX without escaping backslashes in a Jinja
        string, the body of a call block: {% call figure('x') %}$QK^\\top${% endcall %}."""
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
        self.used.append((experiment, name))
        folder = f"{self.site.baseurl}/{image_dir(experiment)}"
        w, h = image_size(1)
        return self.fmt.figure(FigureRef(
            experiment=experiment, name=name, number=self.count, caption=caption,
            alt=alt or alt_texts[name], src=f"{folder}/{image_filename(name, 1)}",
            src2x=f"{folder}/{image_filename(name, 2)}", width=w, height=h), self.markdown)


def body_context(info, site, results: Mapping[str, Any], figures: Mapping[str, Mapping[str, bytes]],
                 fmt, markdown) -> tuple[dict[str, Any], FigureHelper]:
    """The variables of ``info``'s body rendered for output format ``fmt``, and its figure
    helper (which records the figures the body used)."""
    post = info.post
    views = {name: d.kind.view(name, results[name]) for name, d in post.experiments.items()}
    data = {name: post.experiments[name].kind.data(results[name]) for name in post.data}
    figure = FigureHelper(fmt, site, figures, post.experiments, post.path, markdown)
    ctx: dict[str, Any] = {
        "experiments": views,
        "page": {"title": info.title, "description": info.description, "slug": info.slug,
                 "meta": post.meta},
        "site": site,
        "data": data,
        "listing": listing,
        "figure": figure,
        "target": fmt.name,
        # Stand-in until the citation engine (issue 14) lands: it replaces this with the list.
        "bibliography": lambda: "",
    }
    for name, view in views.items():
        if name in ctx:
            raise ConfigError(f"experiment name '{name}' clashes with a template name",
                              path=post.path, field=f"experiments.{name}",
                              hint="rename the experiment")
        ctx[name] = view
    return ctx, figure
