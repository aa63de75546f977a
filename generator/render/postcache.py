"""Rendered post bodies, kept between builds: a post whose inputs did not change is not
rendered again, so an edit to one post renders only that post.

A post's key hashes everything its rendering reads: its file, what templates see of it, the
site settings, the kind, settings and result-file hashes of each experiment it declares, the
figure files, every post's URL (for post_url), the generator's source (listings are read from
it and its behaviour is theirs), the library versions, the output formats and what render.post
adds (the bibliography, and the git commit and work tree the listings link to: with the source
hashes, these decide which listed files differ from the commit). Entries live in
.cache/lora-site/posts/<key>.json;
those a build did not use are removed at its end.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from ..core.context import BuildContext
from ..core.fsio import sha256_bytes, write_bytes_atomic
from ..core.keys import installed_distributions, package_dir

POSTS_DIR = "posts"
KEY_FORMAT = 3


def _json_default(value: Any) -> Any:
    """JSON for the values json cannot write itself; anything without a faithful JSON form
    raises TypeError (and that post is then simply rendered, not cached)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"no JSON form for {type(value).__name__}")


class PostCache:
    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx
        self.folder = ctx.project.cache / POSTS_DIR
        self.used: set[str] = set()
        self.pending: dict[str, str] = {}

    def _code(self) -> dict[str, str]:
        """sha256 of every source file of the running generator package."""
        return self.ctx.hashes.tree(package_dir(), suffix=".py")

    def key(self, info: Any, site: Any, results_files: dict[str, Any],
            figures: dict[str, list[str]], formats: list[str],
            extra: dict[str, Any] | None = None,
            links: dict[str, Any] | None = None) -> str | None:
        """The hash of everything a post's rendering reads, or None when some input has no
        faithful JSON form (then the post is rendered every time)."""
        try:
            parts = {
                "format": KEY_FORMAT,
                "post": self.ctx.hashes.sha256(info.post.path),
                "info": {f: getattr(info, f) for f in sorted(vars(info)) if f != "post"},
                "site": site,
                "experiments": results_files,
                "figures": figures,
                "formats": formats,
                "extra": extra or {},
                "links": links,
                "code": self._code(),
                "libraries": installed_distributions(),
                "python": sys.version,
            }
            text = json.dumps(parts, sort_keys=True, separators=(",", ":"),
                              default=_json_default)
        except (TypeError, ValueError, AttributeError):
            return None
        return sha256_bytes(text.encode("utf-8"))

    def get(self, key: str | None) -> dict[str, Any] | None:
        if key is None:
            return None
        try:
            doc = json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        self.used.add(key)
        return doc if isinstance(doc, dict) else None

    def put(self, key: str | None, parts: dict[str, Any]) -> None:
        """Keep a rendering; it is written by flush() (after the pages are out, in a build)."""
        if key is None:
            return
        self.pending[key] = json.dumps(parts, sort_keys=True, ensure_ascii=False)
        self.used.add(key)

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        for key, text in sorted(pending.items()):
            write_bytes_atomic(self.folder / f"{key}.json", text.encode("utf-8"))

    def prune(self) -> None:
        """Write what put() kept, remove the entries this build did not use (a post's old
        renderings are never needed again), and start the next build's count."""
        self.flush()
        if self.folder.is_dir():
            for path in sorted(self.folder.glob("*.json")):
                if path.stem not in self.used:
                    path.unlink(missing_ok=True)
        self.used = set()


def post_cache(ctx: BuildContext) -> PostCache:
    # Its used-set counts one build's entries (a failed build never reaches prune()).
    return ctx.state("post-cache", PostCache, renew=True)
