"""Local links and images of every post, checked against the pages and files each output
format writes: a broken one is an error naming the post and its line. External URLs are
never fetched (render.links keeps only local ones)."""
from __future__ import annotations

from typing import Mapping
from urllib.parse import unquote, urljoin, urlsplit

from ..core.errors import ContentError
from ..outputs.base import OutputFormat, SiteBuild, formats
from ..render.links import source_line

_HINT = ("links to this site's pages and files start with {{ site.baseurl }}/; external ones "
         "with https://")


def _path(url: str, page: str) -> str:
    """The URL path ``url`` leads to from the page at ``page``."""
    return unquote(urlsplit(urljoin("https://site.invalid" + page, url)).path)


def _post_at(path: str, build: SiteBuild) -> str | None:
    """The slug of the post that some output serves at ``path`` (with the baseurl), if any."""
    for info in build.posts:
        for fmt in formats():
            url = fmt.post_url(info, build.site)
            if path in (url, url + "index.html"):
                return info.slug
    return None


def _problem(url: str, page: str, base: str, served: set[str]) -> str | None:
    """Why ``url``, on the page at ``page`` (with the baseurl), leads nowhere; None if it is
    served."""
    path = _path(url, page)
    if base and not (path == base or path.startswith(base + "/")):
        return f"it leads outside the site's baseurl {base}"
    rel = path[len(base):] or "/"
    for candidate in (rel, rel + "/", rel + ".html"):
        if candidate in served:
            return None
    return f"there is no {rel}"


def served_by(build: SiteBuild, fmt: OutputFormat, files: Mapping[str, bytes]) -> set[str]:
    """Every URL path ``fmt`` serves, from ``files`` (<format>/<path> -> bytes)."""
    prefix = f"{fmt.name}/"
    return fmt.served(build, {p[len(prefix):]: b for p, b in files.items()
                              if p.startswith(prefix)})


def broken_link(build: SiteBuild, fmt: OutputFormat, info, served: set[str]) -> ContentError | None:
    """The first local link of the post ``info`` in ``fmt``'s output that leads nowhere in
    ``served``, as the error naming its line; None when every one is served."""
    base = build.site.baseurl
    for url, label in build.rendered[info.slug].parts[fmt.name].get("links", []):
        why = _problem(url, base + fmt.page_url(info), base, served)
        if why is None:
            continue
        post = info.post
        # A post's address in another output: each output has its posts at its own.
        slug = _post_at(_path(url, base + fmt.page_url(info)), build)
        hint = (f"link to a post with {{{{ post_url('{slug}') }}}}, which gives each output "
                "its own address" if slug is not None else _HINT)
        return ContentError(f"broken link {url} in the {fmt.name} output: {why}",
                            path=post.path,
                            line=source_line(post.body, post.body_line, url, label),
                            hint=hint)
    return None


def check_links(build: SiteBuild, formats: list[OutputFormat],
                files: Mapping[str, bytes]) -> None:
    """``files``: every output file as <format>/<path> -> bytes (publish.build.render_site)."""
    for fmt in formats:
        served = served_by(build, fmt, files)
        for info in build.posts:
            error = broken_link(build, fmt, info, served)
            if error is not None:
                raise error
