"""Where things live in a project folder. One frozen object, handed to every stage."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def content(self) -> Path:
        return self.root / "content"

    @property
    def posts(self) -> Path:
        return self.content / "posts"

    @property
    def site_yml(self) -> Path:
        return self.content / "site.yml"

    @property
    def freeze(self) -> Path:
        """Committed results: content/_freeze/<experiment>/{results.json, arrays.npz}."""
        return self.content / "_freeze"

    @property
    def templates(self) -> Path:
        return self.root / "templates"

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def cache(self) -> Path:
        return self.root / ".cache" / "lora-site"

    def post_files(self) -> list[Path]:
        """The posts: the *.md files directly in content/posts that are not hidden (an editor's
        lock or swap file). Sorted: the build must not depend on the order the file system
        lists a folder in."""
        return sorted(p for p in self.posts.glob("*.md")
                      if not p.name.startswith(".") and not p.is_dir())

    def ignored_files(self) -> list[tuple[str, str]]:
        """(path below content/posts, why) of every file there that is not a post, sorted."""
        root = self.posts
        if not root.is_dir():
            return []
        posts = set(self.post_files())
        out = []
        for path in sorted(root.rglob("*")):
            if path.is_dir() or path in posts:
                continue
            rel = path.relative_to(root).as_posix()
            if len(path.relative_to(root).parts) > 1:
                why = "in a subfolder: posts are the .md files directly in content/posts"
            elif path.name.startswith(".") or path.name.endswith(("~", "#", ".swp", ".swo",
                                                                   ".tmp", ".bak")):
                why = "a hidden or editor's file"
            elif path.suffix.lower() in (".markdown", ".mdown", ".mkd", ".mkdn", ".mdwn") or \
                    path.suffix == ".MD":
                why = "Markdown, but only files named *.md are posts: rename it"
            else:
                why = "not a post: posts are the .md files in content/posts"
            out.append((rel, why))
        return out

    @classmethod
    def find(cls, start: Path | None = None) -> "Project":
        """The nearest folder at or above ``start`` that has content/, else ``start`` itself."""
        here = Path(start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / "content").is_dir():
                return cls(folder)
        return cls(here)
