"""A small project whose posts are filed by Jekyll in every way post_url must follow, and one
post that links to each of them with post_url (shared by tests/test_post_url.py and the real
Jekyll check in tests/clients/test_post_url.py). Not a test module."""
from __future__ import annotations

from pathlib import Path

SITE_YML = ('title: "Links"\ndescription: "d"\nauthor: "A"\nurl: "https://example.org"\n'
            'baseurl: "{base}"\n')

# slug -> front matter lines (besides title): each a way Jekyll files a post.
POSTS = {
    "in-blog": "date: 2026-01-11 10:00:00 +0530\ncategory: blog\n",
    "own-permalink": "date: 2026-01-12 10:00:00 +0530\ncategory: blog\n"
                     "permalink: /own-permalink/\n",
    "placeholders": "date: 2026-03-04 08:09:10 +0000\npermalink: /notes/:year/:title/\n",
    "no-category": "date: 2026-02-01 12:00:00 +0000\n",
    # 00:30 in India is the day before in UTC, where GitHub Pages (and this test) builds.
    "after-midnight": "date: 2026-01-11 00:30:00 +0530\ncategories: [Deep, Learning, deep]\n",
    "spaced-categories": "date: 2026-05-06 07:00:00 +0000\ncategories: Machine Learning\n",
}

# What Jekyll makes of each (without the baseurl).
EXPECTED_JEKYLL = {
    "in-blog": "/blog/2026/01/11/in-blog.html",
    "own-permalink": "/own-permalink/",
    "placeholders": "/notes/2026/placeholders/",
    "no-category": "/2026/02/01/no-category.html",
    "after-midnight": "/deep/learning/2026/01/10/after-midnight.html",
    "spaced-categories": "/machine/learning/2026/05/06/spaced-categories.html",
}

LINKER = ("---\ntitle: Links\ndate: 2026-06-01 10:00:00 +0000\n---\n"
          + "".join(f"- [{slug}]({{{{ post_url('{slug}') }}}})\n" for slug in POSTS)
          + "- [self]({{ post_url('linker') }})\n")


def make_links_project(root: Path, base: str = "") -> Path:
    posts = root / "content" / "posts"
    posts.mkdir(parents=True, exist_ok=True)
    (root / "content" / "site.yml").write_text(SITE_YML.format(base=base), encoding="utf-8")
    for slug, meta in POSTS.items():
        (posts / f"{slug}.md").write_text(f"---\ntitle: {slug}\n{meta}---\nPost {slug}.\n",
                                          encoding="utf-8")
    (posts / "linker.md").write_text(LINKER, encoding="utf-8")
    return root
