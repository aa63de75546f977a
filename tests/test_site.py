"""site.py: settings, escaping in every output, the atomic write, the CLI commands.

These build small posts that declare no experiment, so nothing trains and no figure is drawn.
"""
from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from generator.authoring.site_config import load_site_config, normalize_baseurl
from generator.cli import main
from generator.core.errors import BuildError, ConfigError, ContentError
from generator.core.project import Project
from generator.publish import tree as tree_mod
from generator.publish.lock import build_lock
from generator.publish.tree import write_tree
from helpers import build
from site_checks import (GENERATED_LIQUID, broken_links, liquid_markup, liquid_visible,
                         make_project, read_page, split_jekyll, strip_raw_guards)

ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"

NASTY_TITLE = 'Attention: "quoted" & \'single\' <b>bold</b> {{ liquid }} {% tag %} # 5'
NASTY_DESC = 'Less < more & "so" on'


def post(title: str = "A plain post", body: str = "Hello $x_1$ world.\n",
         date: str = "2026-01-11 10:00:00 +0530", extra: str = "") -> str:
    meta = {"title": title, "date": date, "description": NASTY_DESC, "category": "blog"}
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + extra + "---\n" + body


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# Settings


def test_baseurl_is_normalised():
    assert normalize_baseurl("") == ""
    assert normalize_baseurl("/") == ""
    assert normalize_baseurl("repo") == "/repo"
    assert normalize_baseurl("/repo/") == "/repo"
    assert normalize_baseurl("/a/b") == "/a/b"
    with pytest.raises(ConfigError):
        normalize_baseurl('/re po"')


def test_missing_site_yml_names_the_file(tmp_path):
    make_project(tmp_path, post_text=post())
    (tmp_path / "content" / "site.yml").unlink()
    with pytest.raises(ConfigError) as err:
        load_site_config(Project(tmp_path))
    assert "site.yml" in err.value.message and "create it" in err.value.message


def test_unknown_site_key_suggests_the_right_one(tmp_path):
    make_project(tmp_path, post_text=post(),
                 site_yml="title: t\ndescription: d\nauthor: a\nurl: https://x.io\nbaseur: /r\n")
    with pytest.raises(ConfigError) as err:
        load_site_config(Project(tmp_path))
    assert "baseur" in err.value.message and "did you mean 'baseurl'" in err.value.message


@pytest.mark.parametrize("yml,field", [
    ("description: d\nauthor: a\nurl: https://x.io\n", "title"),
    ("title: t\ndescription: d\nauthor: a\nurl: x.io/path\n", "url"),
    ("title: t\ndescription: d\nauthor: a\nurl: https://x.io\nmathjax_url: 'javascript:x'\n",
     "mathjax_url"),
])
def test_bad_site_settings_name_the_field(tmp_path, yml, field):
    make_project(tmp_path, post_text=post(), site_yml=yml)
    with pytest.raises(ConfigError) as err:
        load_site_config(Project(tmp_path))
    assert f"site.yml: {field}:" in err.value.message


def test_cli_baseurl_overrides_site_yml(tmp_path):
    make_project(tmp_path, post_text=post())
    assert load_site_config(Project(tmp_path), "/repo/").baseurl == "/repo"


# ---------------------------------------------------------------------------------------------
# Escaping: a title full of markup characters is inert and exact in every output


@pytest.fixture
def nasty_site(tmp_path):
    make_project(tmp_path, post_text=post(title=NASTY_TITLE), slug="nasty")
    build(Project(tmp_path), out=tmp_path / "out")
    return tmp_path / "out"


def test_title_is_exact_in_html_title_h1_meta_and_json_ld(nasty_site):
    page = read_page(nasty_site / "html" / "nasty" / "index.html")
    assert page.errors == []
    h1 = [text for tag, text in page.headings if tag == "h1"]
    assert h1 == [" ".join(NASTY_TITLE.split())]
    # The markup characters became text: no <b> element was created.
    assert "b" not in [t for t, _ in page.tags]
    og = [a["content"] for a in page.all("meta") if a.get("property") == "og:title"]
    assert og == [NASTY_TITLE]
    desc = [a["content"] for a in page.all("meta") if a.get("name") == "description"]
    assert desc == [NASTY_DESC]
    raw = (nasty_site / "html" / "nasty" / "index.html").read_text(encoding="utf-8")
    ld = raw.split('<script type="application/ld+json">', 1)[1].split("</script>", 1)[0]
    assert "<" not in ld                         # cannot close the script element early
    assert json.loads(ld)["headline"] == NASTY_TITLE


def test_title_is_exact_in_feed_and_sitemap(nasty_site):
    feed = ET.parse(nasty_site / "html" / "feed.xml").getroot()
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == [NASTY_TITLE]
    assert entries[0].findtext(f"{ATOM}summary") == NASTY_DESC
    assert entries[0].findtext(f"{ATOM}published") == "2026-01-11T10:00:00+05:30"
    assert feed.findtext(f"{ATOM}updated") == "2026-01-11T10:00:00+05:30"
    urls = ET.parse(nasty_site / "html" / "sitemap.xml").getroot()
    locs = [u.findtext(f"{SITEMAP}loc") for u in urls]
    assert locs == ["https://lora-site.github.io/", "https://lora-site.github.io/nasty/"]
    assert [u.findtext(f"{SITEMAP}lastmod") for u in urls] == ["2026-01-11", "2026-01-11"]


def test_title_is_exact_in_jekyll_front_matter_and_inert_in_body(nasty_site):
    text = (nasty_site / "jekyll" / "_posts" / "2026-01-11-nasty.md").read_text(encoding="utf-8")
    meta, body = split_jekyll(text)
    generated = meta.pop("lora_site")
    assert meta == {"layout": "post", "title": NASTY_TITLE, "date": "2026-01-11 10:00:00 +0530",
                    "category": "blog"}
    assert generated["citation"][0] == ["citation_title", NASTY_TITLE]
    heading = [line for line in body.splitlines() if line.startswith("# ")]
    assert len(heading) == 1
    # Liquid sees no tag but the include and the post's URL in its BibTeX: the title's braces
    # in the BibTeX are character references.
    assert liquid_markup(body) == GENERATED_LIQUID
    assert not re.search(r"\{[{%]", liquid_visible(body).replace(
        "{%- include mathjax.html -%}", "").replace("{{ page.url | absolute_url }}", ""))
    assert "\\textbraceleft&#123;&#125;\\textbraceleft&#123;&#125; liquid " in body
    assert "\\<b\\>" in heading[0] and "&amp;" in heading[0]
    assert strip_raw_guards(body).count("$$x_1$$") == 1


def test_index_lists_title_date_and_description(nasty_site):
    page = read_page(nasty_site / "html" / "index.html")
    assert page.errors == []
    assert "11 January 2026" in page.text and NASTY_DESC in page.text
    assert [a["href"] for a in page.all("a") if a.get("href") == "/nasty/"] == ["/nasty/"]


# ---------------------------------------------------------------------------------------------
# Layout of the output, baseurl, determinism


def test_tree_layout_and_nojekyll(nasty_site):
    files = files_of(nasty_site)
    for name in ("html/index.html", "html/404.html", "html/feed.xml", "html/sitemap.xml",
                 "html/.nojekyll", "html/assets/style.css", "html/nasty/index.html",
                 "jekyll/_config.yml", "jekyll/_includes/mathjax.html",
                 "jekyll/_layouts/default.html", "jekyll/_layouts/post.html",
                 "jekyll/index.html", "jekyll/_posts/2026-01-11-nasty.md"):
        assert name in files, name
    assert files["html/.nojekyll"] == b""
    config = yaml.safe_load(files["jekyll/_config.yml"])
    assert config["kramdown"]["input"] == "GFM"
    assert config["kramdown"]["math_engine"] == "mathjax"
    assert config["baseurl"] == ""


def test_links_resolve_with_and_without_baseurl(tmp_path):
    make_project(tmp_path, post_text=post(body="## Intro\n\nSee [intro](#intro) and $a$.\n"),
                 slug="p")
    for base in ("", "/repo"):
        out = tmp_path / f"out{base.replace('/', '-')}"
        build(Project(tmp_path), baseurl=base, out=out)
        assert broken_links(out / "html", base) == []
        page = read_page(out / "html" / "p" / "index.html")
        css = [a["href"] for a in page.all("link") if a.get("rel") == "stylesheet"]
        assert css == [f"{base}/assets/style.css"]
        assert yaml.safe_load((out / "jekyll" / "_config.yml").read_text())["baseurl"] == base
    # Every root-relative link the templates write carries the baseurl.
    page = read_page(tmp_path / "out-repo" / "html" / "404.html")
    assert all(a["href"].startswith("/repo/") for a in page.all("a") if a["href"] != "#content")


def test_two_builds_give_identical_bytes(tmp_path):
    make_project(tmp_path, post_text=post(title=NASTY_TITLE))
    build(Project(tmp_path), out=tmp_path / "a")
    build(Project(tmp_path), out=tmp_path / "b")
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")


def test_posts_are_listed_newest_first(tmp_path):
    make_project(tmp_path, post_text=post(title="Older", date="2025-05-01"), slug="older")
    (tmp_path / "content" / "posts" / "newer.md").write_text(
        post(title="Newer", date="2026-02-01 08:00:00 +0000"), encoding="utf-8")
    build(Project(tmp_path), out=tmp_path / "out")
    page = read_page(tmp_path / "out" / "html" / "index.html")
    assert [t for tag, t in page.headings if tag == "h3"] == ["Newer", "Older"]
    feed = ET.parse(tmp_path / "out" / "html" / "feed.xml").getroot()
    assert feed.findtext(f"{ATOM}updated") == "2026-02-01T08:00:00+00:00"
    assert (tmp_path / "out" / "jekyll" / "_posts" / "2025-05-01-older.md").is_file()


# ---------------------------------------------------------------------------------------------
# Errors and the atomic write


def test_failed_build_leaves_previous_site_untouched(tmp_path):
    make_project(tmp_path, post_text=post(), slug="p")
    project = Project(tmp_path)
    build(project)
    before = files_of(project.site)
    (tmp_path / "content" / "posts" / "p.md").write_text(
        post(body="Line one.\nUses {{ main.metrics.steps }}.\n"), encoding="utf-8")
    with pytest.raises(ContentError) as err:
        build(project)
    assert "p.md:" in err.value.message and "main" in err.value.message
    assert files_of(project.site) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".site")) == []


def test_error_line_points_into_the_post_file(tmp_path):
    make_project(tmp_path, post_text=post(body="one\ntwo\n{{ nope }}\n"), slug="p")
    with pytest.raises(ContentError) as err:
        build(Project(tmp_path), out=tmp_path / "out")
    text = (tmp_path / "content" / "posts" / "p.md").read_text().splitlines()
    line = int(err.value.message.split("p.md:", 1)[1].split(":", 1)[0])
    assert text[line - 1] == "{{ nope }}"


def test_write_tree_failure_at_swap_keeps_old_and_cleans_up(tmp_path, monkeypatch):
    out = tmp_path / "site"
    write_tree(out, {"a.txt": b"old"})
    real_rename = os.rename

    def failing_rename(src, dst):
        if Path(src).name.startswith(".site.build-"):
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(tree_mod.os, "rename", failing_rename)
    with pytest.raises(BuildError) as err:
        write_tree(out, {"a.txt": b"new", "b/c.txt": b"x"})
    assert "No space left" in err.value.message
    assert files_of(out) == {"a.txt": b"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


@pytest.mark.parametrize("rel", ["../evil.txt", "a/../../evil.txt", "a/../b.txt",
                                 str(Path("/tmp").resolve() / "evil.txt"), "",
                                 "a\\..\\..\\evil.txt"])
def test_write_tree_refuses_paths_outside(tmp_path, rel):
    with pytest.raises(BuildError):
        write_tree(tmp_path / "site", {"ok.txt": b"fine", rel: b"x"})
    assert not (tmp_path / "evil.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_write_tree_files_and_folders_are_public_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        write_tree(tmp_path / "site", {"a/b/c.txt": b"1", "a/d.txt": b"2", "e.txt": b"3"})
    finally:
        os.umask(old)
    site = tmp_path / "site"
    modes = {str(p.relative_to(site)): oct(p.stat().st_mode & 0o777)
             for p in [site, *sorted(site.rglob("*"))]}
    assert modes == {".": "0o755", "a": "0o755", "a/b": "0o755", "a/b/c.txt": "0o644",
                     "a/d.txt": "0o644", "e.txt": "0o644"}
    assert (site / "a/b/c.txt").read_bytes() == b"1"


def test_a_second_build_at_the_same_time_is_refused(tmp_path):
    make_project(tmp_path, post_text=post())
    project = Project(tmp_path)
    with build_lock(project):
        with pytest.raises(BuildError) as err:
            build(project, out=tmp_path / "out")
    assert "another build is running" in err.value.message
    assert not (tmp_path / "out").exists()


def test_unknown_figure_and_data_loader_are_content_errors(tmp_path):
    make_project(tmp_path, post_text=post(body="{{ figure('nope', 'c') }}\n"), slug="p")
    with pytest.raises(ContentError) as err:
        build(Project(tmp_path), out=tmp_path / "o")
    assert "experiment 'main'" in err.value.message
    make_project(tmp_path, post_text=post(extra="data: [nothing_here]\n"), slug="p")
    with pytest.raises(ContentError) as err:
        build(Project(tmp_path), out=tmp_path / "o")
    assert "data" in err.value.message and "nothing_here" in err.value.message


def test_a_project_kind_feeds_the_body_its_data(tmp_path):
    """A kind of the project's own (site.yml `kinds:`), declared by `data:` alone: its data
    feeds the body."""
    make_project(tmp_path, slug="p", post_text=post(
        extra="data: [walk_summary]\n",
        body="{% for k in ['argmax', 'name'] %}- {{ k }}: {{ data.walk_summary[k] }}\n"
             "{% endfor %}"))
    site_yml = tmp_path / "content" / "site.yml"
    site_yml.write_text(site_yml.read_text() + "kinds: [kinds.sums]\n")
    build(Project(tmp_path), out=tmp_path / "o")
    html = (tmp_path / "o" / "html" / "p" / "index.html").read_text()
    assert "<li>argmax: " in html and "</li>\n<li>name: walk_summary</li>" in html


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_build_and_render(tmp_path):
    make_project(tmp_path, post_text=post(), slug="p")
    runner = CliRunner()
    res = runner.invoke(main, ["build", "--root", str(tmp_path), "--explain",
                               "--baseurl", "/repo/"])
    assert res.exit_code == 0, res.output
    assert "render: ran" in res.output and "write:" in res.output
    page = read_page(tmp_path / "site" / "html" / "p" / "index.html")
    assert [a["href"] for a in page.all("link") if a.get("rel") == "stylesheet"] == \
        ["/repo/assets/style.css"]
    res = runner.invoke(main, ["render", "--root", str(tmp_path), "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.output == ""
    res = runner.invoke(main, ["build", "--root", str(tmp_path), "--frozen", "--force"])
    assert res.exit_code == 2 and "contradict" in res.output


def test_cli_render_without_results_fails_in_one_line(tmp_path):
    make_project(tmp_path, post_text=post(extra="experiments:\n  main: {max_steps: 2}\n"),
                 slug="p")
    res = CliRunner().invoke(main, ["render", "--root", str(tmp_path)])
    assert res.exit_code == 1
    assert "Error:" in res.output and "main" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "site").exists()
    assert not (tmp_path / "content" / "_freeze" / "main" / "results.json").exists()


def test_cli_bad_baseurl_is_a_one_line_error(tmp_path):
    make_project(tmp_path, post_text=post())
    res = CliRunner().invoke(main, ["build", "--root", str(tmp_path), "--baseurl", "/a b"])
    assert res.exit_code == 1 and "--baseurl" in res.output
    assert not (tmp_path / "site").exists()
