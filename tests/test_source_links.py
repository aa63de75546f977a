"""The commit a page shows is an input of the build: the reproduce box names it, a new commit
rebuilds (the fingerprint) and re-renders the posts whose listings link to it (the post cache),
two builds at one commit are byte-identical, and uncommitted changes are said, never hidden."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers import git
from click.testing import CliRunner

from generator.cli import main

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

REPO_URL = "https://github.com/owner/notes"
SITE_YML = ('title: "Links"\ndescription: "d"\nauthor: "A"\nurl: "https://example.org"\n'
            f'repository: "{REPO_URL}/"\n')
POST = ("---\ntitle: One\ndate: 2026-01-11 10:00:00 +0530\n---\nThe layer:\n\n"
        '{{ listing("lora", "inject_lora") }}\n\nDone.\n')


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")
    root = tmp_path / "notes"
    (root / "content" / "posts").mkdir(parents=True)
    (root / "content" / "site.yml").write_text(SITE_YML, encoding="utf-8")
    (root / "content" / "posts" / "one.md").write_text(POST, encoding="utf-8")
    (root / ".gitignore").write_text(".cache/\nsite/\nout*/\n", encoding="utf-8")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "one")
    return root


def build(root: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["build", "--root", str(root), "--explain", *args])
    assert result.exit_code == 0, result.output
    return result.stderr


def page(root: Path, out: str = "site") -> str:
    return (root / out / "html" / "one" / "index.html").read_text(encoding="utf-8")


def box(html: str) -> str:
    return html.split('<aside class="reproduce"', 1)[1].split("</aside>", 1)[0]


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def renders(monkeypatch) -> list[str]:
    from generator.render import post as post_mod

    calls: list[str] = []
    real = post_mod.render_post
    monkeypatch.setattr(post_mod, "render_post",
                        lambda ctx, info, *a, **k: calls.append(info.slug) or real(ctx, info, *a,
                                                                                   **k))
    return calls


def test_the_box_names_the_commit_and_a_new_commit_rebuilds_what_shows_it(project, monkeypatch):
    first = git(project, "rev-parse", "HEAD")
    build(project)
    html = page(project)
    text = box(html)
    assert f'<a href="{REPO_URL}/tree/{first}">github.com/owner/notes</a> at commit ' \
           f"<code>{first[:12]}</code>, the one this page was built from." in text
    # The post declares no experiment: no command recomputes anything of it.
    assert f"<code>git clone {REPO_URL}\ncd notes\ngit checkout {first}\nmake site\n" \
           "make test\n</code>" in text and "recomputes" not in text
    assert "uncommitted" not in text
    # The listing's file is the running generator's, which is not in this repository: its
    # caption names the file and lines and links nowhere (a link would point at other code).
    caption = re.search(r'<figcaption class="listing-source">(.*?)</figcaption>', html).group(1)
    assert re.fullmatch(r"<code>inject_lora</code>: <code>generator/science/lora\.py</code>, "
                        r"lines \d+\u2013\d+", caption)
    # The Jekyll post carries the same box.
    jekyll = next((project / "site" / "jekyll" / "_posts").glob("*-one.md")).read_text()
    assert box(jekyll) == text

    # Same commit, nothing changed: a no-op; another output folder gets the same bytes.
    assert "up to date" in CliRunner().invoke(main, ["build", "--root", str(project)]).output
    build(project, "--out", str(project / "out2"))
    assert tree(project / "out2") == tree(project / "site")

    # An edit not yet committed is said in the box.
    calls = renders(monkeypatch)
    post = project / "content" / "posts" / "one.md"
    post.write_text(POST.replace("Done.", "Done, edited."), encoding="utf-8")
    build(project)
    assert calls == ["one"]
    assert f"at commit <code>{first[:12]}</code>, the one this page was built from, with " \
           "uncommitted changes" in box(page(project))

    # Committing it: the same files, a new commit; the build says why it runs, and the post is
    # rendered again because its listings link to the commit.
    calls.clear()
    git(project, "commit", "-q", "-am", "two")
    second = git(project, "rev-parse", "HEAD")
    err = build(project)
    assert "build: the git commit changed" in err
    assert calls == ["one"]
    text = box(page(project))
    assert f"/tree/{second}" in text and "uncommitted" not in text and first not in text


def test_without_a_repository_setting_nothing_links_and_a_commit_renders_nothing(
        project, monkeypatch):
    site = project / "content" / "site.yml"
    site.write_text(SITE_YML.replace(f'repository: "{REPO_URL}/"\n', ""), encoding="utf-8")
    git(project, "commit", "-q", "-am", "no repository")
    build(project)
    text = box(page(project))
    assert "<a " not in text and "git clone" not in text and "commit" not in text
    assert text.count("make site") == 2             # the command and its explanation
    calls = renders(monkeypatch)
    (project / "notes.txt").write_text("x\n", encoding="utf-8")
    git(project, "add", "notes.txt")
    git(project, "commit", "-q", "-m", "unrelated")
    assert "build: the git commit changed" in build(project)
    assert calls == []                              # the posts came from the post cache


def test_outside_a_repository_the_box_names_the_repository_without_a_commit(tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")
    root = tmp_path / "plain"
    (root / "content" / "posts").mkdir(parents=True)
    (root / "content" / "site.yml").write_text(SITE_YML, encoding="utf-8")
    (root / "content" / "posts" / "one.md").write_text(POST, encoding="utf-8")
    build(root)
    text = box(page(root))
    assert f'<a href="{REPO_URL}">github.com/owner/notes</a>.</p>' in text
    assert "checkout" not in text and "commit" not in text
