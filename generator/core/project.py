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
        # Sorted: the build must not depend on the order the file system lists a folder in.
        return sorted(self.posts.glob("*.md"))

    @classmethod
    def find(cls, start: Path | None = None) -> "Project":
        """The nearest folder at or above ``start`` that has content/, else ``start`` itself."""
        here = Path(start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / "content").is_dir():
                return cls(folder)
        return cls(here)
