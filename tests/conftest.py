"""Shared fixtures. Every test that trains uses small, fast configs unless it tests the defaults."""
from __future__ import annotations

import os
from pathlib import Path

# The numeric pins, before anything imports torch or numpy (generator/numerics.py): the tests
# compare committed results bit for bit, which only holds under the pins.
from generator.core import numerics  # noqa: E402  (stdlib only)

_NUMERICS = numerics.pin()

import shutil  # noqa: E402

import pytest  # noqa: E402

os.environ.setdefault("MPLBACKEND", "Agg")
# Projects the tests copy elsewhere pre-render their math with the repository's mathjax-full.
os.environ.setdefault("LORA_SITE_NODE_MODULES", str(Path(__file__).resolve().parents[1] /
                                                    "node_modules"))

REPO = Path(__file__).resolve().parents[1]


def write_post(root: Path, slug: str = "post", experiments: str = "  main: {}\n",
               body: str = "Hello.\n", extra_meta: str = "") -> Path:
    path = root / "content" / "posts" / f"{slug}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\ntitle: A post\ndate: 2026-01-11 10:00:00 +0530\n{extra_meta}"
                    f"experiments:\n{experiments}---\n{body}", encoding="utf-8")
    return path


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    """A project folder with one post declaring one default experiment."""
    write_post(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def built_project(tmp_path_factory) -> Path:
    """The repository's content/ and templates/ copied and built once (from the freeze) for
    the whole session; the bad-input cases copy it (tests/harness.py)."""
    from click.testing import CliRunner

    from generator.cli import main

    root = tmp_path_factory.mktemp("built") / "project"
    root.mkdir()
    shutil.copytree(REPO / "content", root / "content")
    shutil.copytree(REPO / "templates", root / "templates")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LORA_SITE_DRAW_WORKERS", "0")     # draw in this process: no stray workers
        result = CliRunner().invoke(main, ["build", "--root", str(root), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (root / "site" / "html" / "index.html").is_file()
    return root


@pytest.fixture
def project(built_project, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the built project (figures drawn in this process: no stray workers)."""
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")
    root = tmp_path / "project"
    shutil.copytree(built_project, root, symlinks=True)
    return root
