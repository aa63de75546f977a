"""Local links and images of every post, checked against the pages and files each output
format writes: a broken one is an error naming the post and its line. External URLs are
never fetched (render.links keeps only local ones)."""
from __future__ import annotations

from typing import Mapping
from urllib.parse import unquote, urljoin, urlsplit

from ..core.errors import ContentError
from ..outputs.base import OutputFormat, SiteBuild
from ..render.links import source_line

_HINT = ("links to this site's pages and files start with {{ site.baseurl }}/; external ones "
         "with https://")


def _problem(url: str, page: str, base: str, served: set[str]) -> str | None:
    """Why ``url``, on the page at ``page`` (with the baseurl), leads nowhere; None if it is
    served."""
    path = unquote(urlsplit(urljoin("https://site.invalid" + page, url)).path)
    if base and not (path == base or path.startswith(base + "/")):
        return f"it leads outside the site's baseurl {base}"
    rel = path[len(base):] or "/"
    for candidate in (rel, rel + "/", rel + ".html"):
        if candidate in served:
            return None
    return f"there is no {rel}"


def check_links(build: SiteBuild, formats: list[OutputFormat],
                files: Mapping[str, bytes]) -> None:
    """``files``: every output file as <format>/<path> -> bytes (publish.build.render_site)."""
    base = build.site.baseurl
    for fmt in formats:
        prefix = f"{fmt.name}/"
        served = fmt.served(build, {p[len(prefix):]: b for p, b in files.items()
                                    if p.startswith(prefix)})
        for info in build.posts:
            for url, label in build.rendered[info.slug].parts[fmt.name].get("links", []):
                why = _problem(url, base + fmt.page_url(info), base, served)
                if why is None:
                    continue
                post = info.post
                raise ContentError(f"broken link {url} in the {fmt.name} output: {why}",
                                   path=post.path,
                                   line=source_line(post.body, post.body_line, url, label),
                                   hint=_HINT)
