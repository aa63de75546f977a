"""Drafts and dates, the same in both outputs.

A post with ``published: false`` reaches no output (its page, the index, the feed, the
sitemap, the Jekyll tree, its experiments' figures) unless the build has ``--drafts``, which
shows it marked as a draft (never in the feed or the sitemap). A post dated in the future is
published like any other in both outputs: the Jekyll tree's _config.yml says ``future: true``.
"""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from harness import POST, Case, check_case, edit, extra_post, invoke, tree_hashes

ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
DRAFT = ("published: false\nexperiments:\n"
         "  sketch: {d_model: 8, seq_len: 4, key: 2, max_steps: 15}\n")
DRAFT_BODY = "Work in progress.\n\n{{ figure('before_lora', 'Not yet.', experiment='sketch') }}\n"


def read(root: Path, rel: str) -> str:
    return (root / rel).read_text(encoding="utf-8")


def test_a_draft_reaches_no_output(project):
    before = tree_hashes(project / "site")
    freeze = tree_hashes(project / "content" / "_freeze")
    extra_post(project, DRAFT, DRAFT_BODY, name="draft.md")
    result = invoke("build", "--root", project, "--quiet", "--explain")
    assert result.exit_code == 0, result.output
    # Nothing at all changed: no page, no index entry, no feed entry, no sitemap URL, no Jekyll
    # post, no figure; its experiment was not even run.
    assert tree_hashes(project / "site") == before
    assert tree_hashes(project / "content" / "_freeze") == freeze
    assert "sketch" not in result.stderr


def test_drafts_shows_it_marked_and_keeps_it_out_of_feed_and_sitemap(project):
    extra_post(project, DRAFT, DRAFT_BODY, name="draft.md")
    result = invoke("build", "--root", project, "--quiet", "--drafts")
    assert result.exit_code == 0, result.output
    page = read(project, "site/html/draft/index.html")
    assert '<p class="draft-banner" role="note">Draft: this post has <code>published: false' in page
    assert '<meta name="robots" content="noindex">' in page
    assert 'src="/assets/images/sketch/before_lora.png"' in page
    assert (project / "site/html/assets/images/sketch/before_lora.png").is_file()
    index = read(project, "site/html/index.html")
    assert '<a href="/draft/">Extra</a> <span class="draft-mark">(draft)</span></h3>' in index
    # A published post is not marked.
    assert index.count('class="draft-mark"') == 1
    feed = ET.fromstring(read(project, "site/html/feed.xml"))
    assert [e.findtext(f"{ATOM}id") for e in feed.findall(f"{ATOM}entry")] == [
        "https://lora-site.github.io/lora-on-a-trained-transformer/",
        "https://lora-site.github.io/lora-attention-claims-audit/",
        "https://lora-site.github.io/lora-attention-geometry/"]
    locs = [u.findtext(f"{SITEMAP}loc") for u in ET.fromstring(read(project,
                                                                    "site/html/sitemap.xml"))]
    assert not any("draft" in loc for loc in locs) and len(locs) == 4
    # The Jekyll tree has it with published: false kept (Jekyll itself then leaves it out
    # unless run with --unpublished) and the banner on top.
    post = read(project, "site/jekyll/_posts/2026-02-01-draft.md")
    meta = yaml.safe_load(post.split("---\n")[1])
    assert meta["published"] is False
    assert "> **Draft**: this post has `published: false`" in post
    # Built without --drafts again: gone from every output.
    result = invoke("build", "--root", project, "--quiet")
    assert result.exit_code == 0, result.output
    assert not (project / "site/html/draft").exists()
    assert not (project / "site/jekyll/_posts/2026-02-01-draft.md").exists()
    assert not (project / "site/html/assets/images/sketch").exists()
    assert "draft" not in read(project, "site/html/index.html")


def test_a_future_post_is_published_in_both_outputs(project):
    extra_post(project, "", "From the future.\n", name="later.md")
    edit(project, "content/posts/later.md", "date: 2026-02-01", "date: 2999-01-01")
    result = invoke("build", "--root", project, "--quiet")
    assert result.exit_code == 0, result.output
    assert "From the future." in read(project, "site/html/later/index.html")
    assert (project / "site/jekyll/_posts/2999-01-01-later.md").is_file()
    config = yaml.safe_load(read(project, "site/jekyll/_config.yml"))
    assert config["future"] is True
    # Newest first: the future post heads the index and the feed.
    feed = ET.fromstring(read(project, "site/html/feed.xml"))
    assert feed.findall(f"{ATOM}entry")[0].findtext(f"{ATOM}id").endswith("/later/")
    assert feed.findtext(f"{ATOM}updated") == "2999-01-01T00:00:00+00:00"


def published_not_a_boolean(root):
    extra_post(root, "published: nope\n")
    return Case(["extra.md: published:", "must be true or false, got 'nope'",
                 "write published: false for a draft"])


def every_post_a_draft(root):
    for name in ("lora-attention-geometry.md", "lora-attention-claims-audit.md",
                 "lora-on-a-trained-transformer.md"):
        edit(root, f"content/posts/{name}", "category: blog\n",
             "category: blog\npublished: false\n")
    return Case(["content/posts:", "every post is a draft (published: false)",
                 "build with --drafts to see them"])


@pytest.mark.parametrize("case", [published_not_a_boolean, every_post_a_draft])
def test_bad_drafts_are_one_clear_line(project, case):
    check_case(project, case)


def test_drafts_is_part_of_the_no_op_fingerprint(project):
    extra_post(project, "published: false\n", name="draft.md")
    assert invoke("build", "--root", project).exit_code == 0
    result = invoke("build", "--root", project, "--drafts")
    assert result.exit_code == 0, result.output
    assert "up to date" not in result.output
    assert (project / "site/html/draft/index.html").is_file()
    result = invoke("build", "--root", project, "--drafts")
    assert "up to date" in result.output


@pytest.mark.slow
def test_serve_drafts_builds_with_drafts(tmp_path):
    """`lora-site serve --drafts` passes --drafts to every build it runs."""
    (tmp_path / "content" / "posts").mkdir(parents=True)
    (tmp_path / "content" / "site.yml").write_text(
        'title: "T"\ndescription: "D"\nauthor: "A"\nurl: "https://example.org"\n')
    (tmp_path / "content" / "posts" / "first.md").write_text(
        "---\ntitle: First\ndate: 2026-01-11\n---\nPublished.\n")
    (tmp_path / "content" / "posts" / "wip.md").write_text(
        "---\ntitle: Wip\ndate: 2026-01-12\npublished: false\n---\nNot yet.\n")
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, "-m", "generator", "serve", "--root", str(tmp_path),
                             "--port", "0", "--drafts"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        deadline, url = time.monotonic() + 60, None
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                assert proc.poll() is None, "serve ended"
                continue
            if line.startswith("serving "):
                url = line.split(" at ", 1)[1].split()[0]
        assert url, "serve never said where it serves"
        with urllib.request.urlopen(url + "wip/", timeout=10) as res:
            page = res.read().decode("utf-8")
        assert "Not yet." in page and 'class="draft-banner"' in page
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_verify_leaves_out_what_only_drafts_declare(tmp_path):
    """A build without --drafts never freezes a draft's experiment, so verify does not ask
    for it."""
    from conftest import write_post

    tiny = "  main: {d_model: 8, seq_len: 4, key: 2, max_steps: 15}\n"
    write_post(tmp_path, experiments=tiny)
    (tmp_path / "content" / "site.yml").write_text(
        'title: "T"\ndescription: "D"\nauthor: "A"\nurl: "https://example.org"\n')
    write_post(tmp_path, slug="wip", extra_meta="published: false\n",
               experiments="  sketch: {d_model: 8, seq_len: 4, key: 3, max_steps: 15}\n")
    assert invoke("build", "--root", tmp_path, "--quiet").exit_code == 0
    assert not (tmp_path / "content/_freeze/sketch").exists()
    result = invoke("verify", "--root", tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("main: bit-exact match") and "sketch" not in result.output


def test_a_link_to_a_draft_is_broken_until_it_is_published(project):
    """A published post that links to a draft would send readers to a page that is not there:
    refused without --drafts, fine with it."""
    # Its permalink is its HTML URL, so one link serves both outputs.
    extra_post(project, "published: false\npermalink: /draft/\n", name="draft.md")
    with open(project / POST, "a", encoding="utf-8") as fh:
        fh.write("\nSee [the next post]({{ site.baseurl }}/draft/).\n")
    result = invoke("build", "--root", project, "--quiet")
    assert result.exit_code == 1
    assert "broken link /draft/ in the html output: there is no /draft/" in result.stderr
    assert invoke("build", "--root", project, "--quiet", "--drafts").exit_code == 0
