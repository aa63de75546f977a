"""The warm build of the preview (serve/warm.py): one build context across rebuilds writes the
bytes a cold `lora-site build` writes, recomputes only what an edit touched, renews what one
build reads once (the freeze manifest, the kinds site.yml names), and keeps the last good site
when an edit breaks the build."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO, write_post
from generator.cli import main
from generator.core.context import BuildContext
from generator.core.project import Project

ARTICLE = "content/posts/lora-attention-geometry.md"
PROSE = "This article looks at LoRA"


def tree_bytes(folder: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            out[path.relative_to(folder).as_posix()] = path.read_bytes()
    return out


def repo_copy(root: Path) -> Path:
    """The repository's project (both posts, the committed freeze, the lock), so nothing
    trains."""
    for name in ("content", "templates"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    return root


def cold_build(source: Path, into: Path) -> dict[str, bytes]:
    """`lora-site build` in a fresh copy of ``source``'s content (no site/, no .cache/)."""
    for name in ("content", "templates"):
        if (source / name).is_dir():
            shutil.copytree(source / name, into / name)
    if (source / "requirements.lock").is_file():
        shutil.copy(source / "requirements.lock", into / "requirements.lock")
    res = CliRunner().invoke(main, ["build", "--root", str(into), "-q"])
    assert res.exit_code == 0, res.output
    return tree_bytes(into / "site")


# ---------------------------------------------------------------------------------------------
# The context's renewal between builds

def test_a_context_renews_per_build_state_from_the_second_build_on(tmp_path):
    ctx = BuildContext(Project(tmp_path), remember_hashes=False)
    made = []
    trimmed = []

    def factory(ctx):
        made.append(1)
        return object()
    first = ctx.state("always", factory, renew=True)
    kept = ctx.state("kept", lambda ctx: object())
    stale = {"now": False}
    checked = ctx.state("checked", lambda ctx: object(), renew=lambda value: stale["now"])
    broken = ctx.state("broken", lambda ctx: object(), renew=lambda value: 1 / 0)
    ctx.on_new_build(lambda: trimmed.append(1))
    ctx.new_build()                             # the first build: nothing is renewed
    assert ctx.state("always", factory, renew=True) is first and made == [1]
    assert trimmed == []
    ctx.new_build()
    assert ctx.state("always", factory, renew=True) is not first and len(made) == 2
    assert ctx.state("kept", lambda ctx: object()) is kept
    assert ctx.state("checked", lambda ctx: object()) is checked
    assert ctx.state("broken", lambda ctx: object()) is not broken    # a failing check renews
    assert trimmed == [1]
    stale["now"] = True
    ctx.new_build()
    assert ctx.state("checked", lambda ctx: object()) is not checked
