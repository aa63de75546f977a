"""Hand-made pages, good and deliberately broken, for showing that every check can fail."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

# The CDN URL our site.yml pins; the browser answers it from node_modules (browser.route_offline).
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3.2.2/es5/tex-mml-chtml.js"


def tiny_png(width: int = 4, height: int = 3, rgb: tuple[int, int, int] = (40, 90, 160)) -> bytes:
    """A valid, solid-colour PNG, built by hand so no imaging library is needed."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height))
            + chunk(b"IEND", b""))


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


# ---------------------------------------------------------------------------------------------
# A minimal Jekyll tree: one good post and one post per way kramdown and Liquid break math.

JEKYLL_BASE = {
    "_config.yml": "title: Hand-made\nmarkdown: kramdown\n",
    "_layouts/post.html": "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                          "<title>{{ page.title }}</title></head>\n<body><main>\n{{ content }}\n"
                          "</main></body></html>\n",
    "_includes/mathjax.html": f'<script async src="{MATHJAX_CDN}"></script>\n',
    "index.html": "---\n---\n<ul>{% for post in site.posts %}<li><a href=\"{{ post.url | "
                  "relative_url }}\">{{ post.title }}</a></li>{% endfor %}</ul>\n",
    "assets/images/fig.png": tiny_png(),
}

FRONT = ("---\nlayout: post\ntitle: \"{title}\"\ndate: 2026-01-11 10:00:00 +0530\n"
         "category: blog\n---\n{{%- include mathjax.html -%}}\n")

# Written the way our Jekyll writer must write: $$ inline, \vert for |, display math between
# blank lines, {% raw %} around {{ }}, images under the baseurl.
GOOD_BODY = r"""Inline $$x_1 * y_2$$ and $$\vert q \vert$$ and {% raw %}$$a = {{ b }}$${% endraw %} here.

$$
Q = X W_Q, \quad \Delta W = B A
$$

![A figure]({{ site.baseurl }}/assets/images/fig.png)
"""

BROKEN_BODIES = {
    # a single-$ math with | at the start of a paragraph: kramdown makes a table of it
    "pipe": "$|\\Delta Q|$ is the size of the update.\n",
    # single-$ math with *: kramdown makes emphasis between the two expressions
    "emphasis": "The weights $a*b$ and $c*d$ both move.\n",
    # {{ x }} in math without {% raw %}: Liquid replaces it with nothing
    "liquid": "The target is $$w = {{ x }}$$ after training.\n",
    # an image that is not in the site
    "missing-image": "$$x$$\n\n![Gone]({{ site.baseurl }}/assets/images/nope.png)\n",
    # an image path that ignores the baseurl: fine at the root, broken under /repo
    "no-baseurl": "$$x$$\n\n![Root only](/assets/images/fig.png)\n",
}


def jekyll_tree(root: Path, bodies: dict[str, str]) -> Path:
    files: dict[str, str | bytes] = dict(JEKYLL_BASE)
    for slug, body in bodies.items():
        files[f"_posts/2026-01-11-{slug}.md"] = FRONT.format(title=slug) + body
    return write(root, files)


# ---------------------------------------------------------------------------------------------
# Hand-made HTML pages for the browser, validity, link and accessibility checks.

def html_page(body: str, *, title: str = "A page", head: str = "", mathjax: bool = True) -> str:
    script = ""
    if mathjax:
        script = ("<script>window.MathJax = {tex: {inlineMath: [['\\\\(', '\\\\)']], "
                  "displayMath: [['\\\\[', '\\\\]']]}};</script>\n"
                  f'<script defer src="{MATHJAX_CDN}"></script>\n')
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{title}</title>\n{head}{script}</head>\n<body>\n<main>\n{body}\n</main>\n"
            "</body>\n</html>\n")


GOOD_ARTICLE = (r"<h1>A good page</h1>"
                "\n<p>Inline \\(x_1 + y_2\\) and \\(|q|\\).</p>\n"
                "<div>\\[Q = X W_Q\\]</div>\n"
                '<p><img src="fig.png" alt="A blue square" width="40" height="30"></p>')
