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
from generator.serve.warm import WarmBuilder

ARTICLE = "content/posts/lora-attention-geometry.md"
PROSE = "We place a low-rank update on the query projection"
EDITED = "We put a low-rank update on the query projection"


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


# ---------------------------------------------------------------------------------------------
# The article, warm

@pytest.fixture
def warm(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")
    root = repo_copy(tmp_path / "project")
    builder = WarmBuilder(Project(root))
    yield root, builder
    builder.close()


def test_a_warm_prose_edit_renders_one_post_and_writes_the_cold_bytes(warm, tmp_path,
                                                                       monkeypatch):
    root, builder = warm
    first = builder.build()
    assert first.ok and first.changed, first.error
    builder.record()
    post = root / ARTICLE
    text = post.read_text(encoding="utf-8")
    assert PROSE in text
    post.write_text(text.replace(PROSE, EDITED, 1), encoding="utf-8")

    import generator.render.jinja as jinja_module
    import generator.render.post as render_post_module
    rendered, lexed = [], []
    real, real_split = render_post_module.render_post, jinja_module.split_text

    def counting(ctx, info, *args, **kwargs):
        rendered.append(info.slug)
        return real(ctx, info, *args, **kwargs)
    monkeypatch.setattr(render_post_module, "render_post", counting)
    monkeypatch.setattr(jinja_module, "split_text", lambda *a: lexed.append(1) or real_split(*a))
    second = builder.build()
    assert second.ok and second.changed, second.error
    assert rendered == ["lora-attention-geometry"]          # the other post came from its cache
    assert lexed == []                  # the edit was patched into the body's last skeleton
    for line in ("run main: reused", "figures main: reused", "run audit: reused",
                 "figures audit: reused"):
        assert any(l.startswith(line) for l in second.log), second.log
    page = (root / "site" / "html" / "lora-attention-geometry" / "index.html").read_text()
    assert EDITED in page
    assert tree_bytes(root / "site") == cold_build(root, tmp_path / "cold")

    # The preview records its build as `lora-site build` does: a build now has nothing to do.
    builder.record()
    res = CliRunner().invoke(main, ["build", "--root", str(root)])
    assert res.exit_code == 0 and res.output.startswith("up to date: "), res.output

    # Nothing changed: the same bytes again, and the build says the site is unchanged.
    third = builder.build()
    assert third.ok and not third.changed


def test_a_broken_edit_keeps_the_last_good_site(warm):
    root, builder = warm
    assert builder.build().ok
    before = tree_bytes(root / "site")
    post = root / ARTICLE
    good = post.read_text(encoding="utf-8")
    lines = good.split("\n")
    at = next(i for i, line in enumerate(lines) if PROSE in line)
    lines[at] = lines[at] + " {{ main.metrics.no_such_metric }}"
    post.write_text("\n".join(lines), encoding="utf-8")
    failed = builder.build()
    assert not failed.ok and not failed.changed
    assert failed.error.startswith(f"{post}:{at + 1}: undefined value"), failed.error
    assert "\n" not in failed.error
    assert tree_bytes(root / "site") == before
    post.write_text(good, encoding="utf-8")
    fixed = builder.build()
    assert fixed.ok and not fixed.changed       # back to exactly the last good site


# ---------------------------------------------------------------------------------------------
# The edited post's page first (publish.early)

PAGE = "lora-attention-geometry/index.html"


def told_pages(builder, root, edit, changed=None):
    """Build after ``edit(text) -> text`` of the article; (the batches on_pages was told, in
    order, as sorted lists of paths, and their bytes, and the outcome)."""
    post = root / ARTICLE
    post.write_text(edit(post.read_text(encoding="utf-8")), encoding="utf-8")
    batches = []
    outcome = builder.build(on_pages=lambda pages: batches.append(dict(pages)),
                            changed=[str(post)] if changed is None else changed)
    return batches, outcome


def test_an_edited_body_is_told_first_alone_with_the_bytes_the_build_writes(warm):
    root, builder = warm
    assert builder.build().ok
    batches, out = told_pages(builder, root, lambda t: t.replace(PROSE, EDITED, 1))
    assert out.ok, out.error
    assert sorted(batches[0]) == [PAGE]                     # the page alone, first
    assert any(line.startswith(f"early: {PAGE} told after ") for line in out.log), out.log
    written = (root / "site" / "html" / PAGE).read_bytes()
    assert EDITED.encode() in written
    assert batches[0][PAGE] == written                      # what the build then wrote
    # The build's own batch holds what else changed (the feed), not the page again.
    assert all(PAGE not in batch for batch in batches[1:]), [sorted(b) for b in batches]
    assert [sorted(b) for b in batches[1:]] == [["feed.xml"]]


def test_no_early_page_when_the_edit_reaches_beyond_the_post_body(warm):
    root, builder = warm
    assert builder.build().ok
    # The front matter: the title is on the index, the feed and every page's metadata.
    batches, out = told_pages(builder, root,
                              lambda t: t.replace('title: "How', 'title: "Retitled: How', 1))
    assert out.ok, out.error
    assert not any(line.startswith("early:") for line in out.log), out.log
    assert len(batches) == 1 and {"index.html", PAGE} <= set(batches[0]), batches
    # A change the server cannot attribute (changed=None), or to something else than posts.
    for changed in (None, [str(root / "content" / "site.yml")]):
        batches = []
        out = builder.build(on_pages=lambda pages: batches.append(dict(pages)),
                            changed=changed)
        assert out.ok and not any(line.startswith("early:") for line in out.log), out.log


def test_a_broken_link_is_never_told_early(warm):
    """An edit whose link leads nowhere in the last build's site: no page is told, and the
    build reports the link."""
    root, builder = warm
    assert builder.build().ok
    link = " See [this]({{ site.baseurl }}/no-such-page/)."
    batches, out = told_pages(builder, root, lambda t: t.replace(PROSE, PROSE + link, 1))
    assert not out.ok and "broken link" in out.error and "/no-such-page/" in out.error
    assert batches == []
    # After a failed build, what the last good one rendered with may be out of date (the
    # failed build's other changes): the next edit waits for its whole build.
    batches, out = told_pages(builder, root, lambda t: t.replace(link, "", 1))
    assert out.ok and not any(line.startswith("early:") for line in out.log), out.log
    batches, out = told_pages(builder, root, lambda t: t.replace(PROSE, EDITED, 1))
    assert out.ok and any(line.startswith("early:") for line in out.log), out.log


def test_an_early_page_of_a_build_that_then_fails_is_not_written(warm):
    """A link to the post's own HTML address is served in the HTML output, so the page is
    told early; the Jekyll tree has the post elsewhere, so the build fails: site/ stays the
    last good one (the server then takes the early page back, tests/test_serve.py)."""
    root, builder = warm
    assert builder.build().ok
    before = tree_bytes(root / "site")
    link = " See [here]({{ site.baseurl }}/lora-attention-geometry/)."
    batches, out = told_pages(builder, root, lambda t: t.replace(PROSE, PROSE + link, 1))
    assert sorted(batches[0]) == [PAGE] and b"See <a" in batches[0][PAGE]
    assert not out.ok and "in the jekyll output" in out.error, out.error
    assert tree_bytes(root / "site") == before


def test_the_first_edit_after_a_commit_is_told_with_the_work_tree_changed(tmp_path,
                                                                          monkeypatch):
    """The reproduce box says whether the work tree differs from the commit: the early page
    says so from the first edit on, as the build's page does, so it is not told twice."""
    from helpers import git

    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")
    root = tmp_path / "repo"
    post = write_post(root, experiments="  {}\n", body="Committed prose.\n")
    (root / "content" / "site.yml").write_text(
        'title: "T"\ndescription: "d"\nauthor: "A"\nurl: "https://example.org"\n'
        'repository: "https://github.com/example/repo"\n')

    git(root, "init", "-q")
    git(root, "add", "content")
    git(root, "commit", "-qm", "posts")
    builder = WarmBuilder(Project(root))
    try:
        assert builder.build().ok
        page = "post/index.html"
        assert b"uncommitted changes" not in (root / "site" / "html" / page).read_bytes()
        post.write_text(post.read_text().replace("Committed prose.", "Edited prose."))
        batches = []
        out = builder.build(on_pages=lambda pages: batches.append(dict(pages)),
                            changed=[str(post)])
        assert out.ok, out.error
        written = (root / "site" / "html" / page).read_bytes()
        assert b"Edited prose." in written and b"uncommitted changes" in written
        assert sorted(batches[0]) == [page] and batches[0][page] == written
        assert all(page not in batch for batch in batches[1:])
    finally:
        builder.close()


# ---------------------------------------------------------------------------------------------
# Settings, the freeze and the kinds, warm

SITE_YML = ('title: "Warm"\ndescription: "d"\nauthor: "A"\nurl: "https://example.org"\n'
            'kinds: [kinds.sums]\n')
TWO_WALKS = ("  a: {kind: sums, steps: 20, seed: 1}\n"
             "  b: {kind: sums, steps: %d, seed: 2}\n")
BODY = ("A ends at {{ a.final | fmt(3) }}, B at {{ b.final | fmt(3) }}.\n\n"
        "{% call figure('walk', experiment='b') %}Walk B.{% endcall %}\n")


@pytest.fixture
def walks(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")
    root = tmp_path / "walks"
    write_post(root, experiments=TWO_WALKS % 20, body=BODY)
    (root / "content" / "site.yml").write_text(SITE_YML)
    builder = WarmBuilder(Project(root))
    yield root, builder
    builder.close()


def test_a_warm_setting_edit_retrains_that_experiment_only(walks, tmp_path):
    root, builder = walks
    assert builder.build().ok
    write_post(root, experiments=TWO_WALKS % 30, body=BODY)
    out = builder.build()
    assert out.ok and out.changed, out.error
    assert any(l.startswith("run a: reused") for l in out.log), out.log
    assert any(l.startswith("run b: ran (config steps 20 -> 30;") for l in out.log), out.log
    assert any(l.startswith("figures b: drew") for l in out.log), out.log
    assert tree_bytes(root / "site") == cold_build(root, tmp_path / "cold")
    summary = json.loads((root / "content" / "_freeze" / "b" / "summary.json").read_text())
    assert summary["settings"]["steps"] == 30


def test_each_warm_build_reads_the_freeze_manifest_afresh(walks):
    """Another command may change content/_freeze between two builds (`lora-site audit` in a
    second terminal, a checkout): a warm build must not write back what it read before."""
    root, builder = walks
    assert builder.build().ok
    manifest = root / "content" / "_freeze" / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["experiments"]["other"] = {"kind": "sums", "key": "k", "inputs": {}, "files": {}}
    manifest.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    write_post(root, experiments=TWO_WALKS % 25, body=BODY)   # b retrains: the manifest is saved
    assert builder.build().ok
    saved = json.loads(manifest.read_text())["experiments"]
    assert "other" in saved and saved["b"]["inputs"]["config"]["steps"] == 25


def test_a_warm_build_sees_the_kinds_site_yml_names_change(walks):
    root, builder = walks
    assert builder.build().ok
    (root / "content" / "site.yml").write_text(SITE_YML.replace("kinds: [kinds.sums]\n", ""))
    out = builder.build()
    assert not out.ok
    assert "no experiment kind named 'sums'" in out.error and "post.md" in out.error
    (root / "content" / "site.yml").write_text(SITE_YML)
    assert builder.build().ok


def test_an_edit_made_while_a_warm_build_ran_is_not_recorded_as_built(walks):
    """The preview records its build for `lora-site build` only when no input changed since
    the build began; otherwise that build would wrongly find the site up to date."""
    root, builder = walks
    assert builder.build().ok
    write_post(root, experiments=TWO_WALKS % 20, body=BODY + "\nAn edit the build missed.\n")
    builder.record()
    res = CliRunner().invoke(main, ["build", "--root", str(root)])
    assert res.exit_code == 0 and not res.output.startswith("up to date"), res.output
    assert "An edit the build missed." in (root / "site" / "html" / "post" / "index.html").read_text()
