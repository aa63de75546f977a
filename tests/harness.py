"""The harness of the bad-input tests: a built project copied per case, broken one way, built
again through the real CLI (click's CliRunner on generator.cli.main, in this process), and
checked: the exit code, one error line holding the expected words, no traceback, site/
byte-identical and content/_freeze unchanged, file by file.

The built project itself is the session fixture ``built_project`` (conftest.py); a test module
takes a fresh copy per case with the ``project`` fixture defined here (import it).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from click.testing import CliRunner

from generator.cli import main

POST = "content/posts/lora-attention-geometry.md"
AUDIT_POST = "content/posts/lora-attention-claims-audit.md"
SITE_YML = "content/site.yml"
FREEZE = "content/_freeze/main"
POST_HTML = "templates/html/post.html"


def tree_hashes(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file below ``folder`` ({} when there is none)."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(root: Path) -> list[str]:
    """Temporary folders a build left beside site/ or content/_freeze (there must be none)."""
    found = [p.name for p in root.iterdir() if p.name.startswith(".site.")]
    content = root / "content"
    if content.is_dir():
        found += [f"content/{p.name}" for p in content.iterdir()
                  if p.name.startswith("._freeze.")]
    return sorted(found)


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(root: Path, rel: str, needle: str) -> int:
    lines = (root / rel).read_text(encoding="utf-8").split("\n")
    found = [i + 1 for i, line in enumerate(lines) if needle in line]
    assert len(found) == 1, (needle, found)
    return found[0]


def add_body_line(root: Path, text: str, rel: str = POST) -> int:
    """Append a paragraph to the post; returns its line in the file."""
    with open(root / rel, "a", encoding="utf-8") as fh:
        fh.write(f"\n{text}\n")
    return line_of(root, rel, text)


def set_experiment(root: Path, settings: str) -> None:
    edit(root, POST, "  main: {}", f"  main: {{{settings}}}")


def extra_post(root: Path, meta: str, body: str = "Another post.\n",
               name: str = "extra.md") -> str:
    """A second, small post; returns its file name."""
    (root / "content" / "posts" / name).write_text(
        f"---\ntitle: Extra\ndate: 2026-02-01\n{meta}---\n{body}", encoding="utf-8")
    return name


@dataclass
class Case:
    words: list[str]                          # each must appear in the error line
    args: list[str] = field(default_factory=list)
    code: int = 1
    after: Callable[[], bool] | None = None  # a further check once the build has failed
    command: str = "build"


def assert_one_line_error(result, words: list[str], code: int = 1) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    # The CLI handled it: CliRunner saw a clean exit, not an exception escaping main.
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("Error: ")
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    if not any("unexpected error" in w for w in words):
        assert "unexpected error" not in line, line      # that is for real bugs only
    # Said once: no hint in parentheses repeated (an error re-raised at a better location once
    # carried its hint twice).
    hints = re.findall(r"\([^()]*\)", line)
    assert len(hints) == len(set(hints)), line
    return line


def check_case(root: Path, make: Callable[[Path], Case]) -> str:
    """Break ``root`` with ``make``, run its command, and check the contract; returns the
    error line."""
    case = make(root)
    # After the breakage: some cases break the freeze itself, which the build must then leave
    # as it found it.
    site, freeze = tree_hashes(root / "site"), tree_hashes(root / "content" / "_freeze")
    assert site
    result = invoke(case.command, "--root", str(root), "--quiet", *case.args)
    line = assert_one_line_error(result, case.words, case.code)
    assert tree_hashes(root / "site") == site
    assert tree_hashes(root / "content" / "_freeze") == freeze
    assert leftovers(root) == []
    assert case.after is None or case.after()
    return line
