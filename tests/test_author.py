"""The author's commands through the CLI: `new` scaffolds a post that builds at once, `list`
shows what a post body can use, `clean` removes what builds make and never the freeze; `--help`
shows each command's whole first sentence; shell completion works as the README says."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import REPO, write_post
from generator.cli import first_sentence, main


def cli(*args, **kwargs):
    res = CliRunner().invoke(main, [str(a) for a in args], **kwargs)
    return res.exit_code, res.output


@pytest.fixture
def repo_project(tmp_path):
    """The repository's project: both posts and the committed freeze (nothing trains)."""
    root = tmp_path / "project"
    for name in ("content", "templates"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    return root


# ---------------------------------------------------------------------------------------------
# new

@pytest.mark.slow
def test_new_scaffolds_a_post_that_builds_at_once(repo_project, monkeypatch):
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")
    code, out = cli("new", "first-steps", "--root", repo_project, "--title", "First steps",
                    "--date", "2026-02-01 09:00:00 +0000")
    assert code == 0, out
    post = repo_project / "content" / "posts" / "first-steps.md"
    assert out.strip() == ("created content/posts/first-steps.md (experiment main, figure "
                           "before_lora, listing lora.LoRALinear, citation @hu2022lora); "
                           "`lora-site serve` previews it")
    text = post.read_text()
    assert text.startswith('---\ntitle: "First steps"\ndate: 2026-02-01 09:00:00 +0000\n')
    assert "  main: {}\n" in text and "[@hu2022lora]" in text    # a key references.bib has
    # It builds at once, from the freeze alone (the experiment is the article's `main`).
    code, out = cli("build", "--root", repo_project, "--frozen", "--explain")
    assert code == 0, out
    assert "run main: reused frozen results" in out
    html = (repo_project / "site" / "html" / "first-steps" / "index.html").read_text()
    assert '<figure id="fig-before_lora">' in html
    assert '<span class="nc">LoRALinear</span>' in html         # the listing, highlighted
    frozen = json.loads((repo_project / "content" / "_freeze" / "main" / "results.json")
                        .read_text())
    assert f"it trained for {frozen['metrics']['steps']} steps at rank " \
           f"{frozen['config']['rank']} [<a class=\"citation\" href=\"#ref-hu2022lora\"" in html
    jekyll = (repo_project / "site" / "jekyll" / "_posts" / "2026-02-01-first-steps.md")
    assert "![Attention map before LoRA training]" in jekyll.read_text()


def test_new_cites_the_first_reference_when_the_project_has_references(repo_project):
    (repo_project / "content" / "references.bib").write_text(
        "@string{ acl = {ACL} }\n% a comment\n@article{hu2021lora,\n  title = {LoRA},\n}\n"
        "@inproceedings{vaswani2017,\n  title = {Attention},\n}\n")
    code, out = cli("new", "with-sources", "--root", repo_project)
    assert code == 0, out
    assert out.strip().endswith("citation @hu2021lora); `lora-site serve` previews it")
    text = (repo_project / "content" / "posts" / "with-sources.md").read_text()
    assert "[@hu2021lora]" in text and "vaswani2017" not in text


def test_new_reuses_the_settings_the_posts_give_the_experiment(tmp_path):
    write_post(tmp_path, experiments="  wide: {rank: 8, seed: 3}\n")
    (tmp_path / "content" / "site.yml").write_text(
        'title: "T"\ndescription: "d"\nauthor: "A"\nurl: "https://example.org"\n')
    code, out = cli("new", "second", "--root", tmp_path)
    assert code == 0, out
    text = (tmp_path / "content" / "posts" / "second.md").read_text()
    assert "  wide: {rank: 8, seed: 3}\n" in text and "{{ wide.metrics.steps }}" in text
    # Read back, the two posts declare one experiment: the build would reuse one result.
    from generator.authoring.posts import collect_experiments, read_posts
    from helpers import context
    assert list(collect_experiments(read_posts(context(tmp_path)))) == ["wide"]


@pytest.mark.parametrize("slug", ["Bad Slug", "a/b", "under_score", "ÜBER"])
def test_new_refuses_a_slug_that_makes_no_url(tmp_path, slug):
    code, out = cli("new", slug, "--root", tmp_path)
    assert code == 1
    assert out.strip() == (f"Error: SLUG: slug {slug!r} cannot be a post's URL (use lower-case "
                           "letters, digits and -, e.g. my-first-post)")


def test_new_never_overwrites_a_post(repo_project):
    post = repo_project / "content" / "posts" / "lora-attention-geometry.md"
    before = post.read_bytes()
    code, out = cli("new", "lora-attention-geometry", "--root", repo_project)
    assert code == 1 and out.strip() == (f"Error: {post}: a post with this slug already exists "
                                         "(pick another slug, or edit that file)")
    assert post.read_bytes() == before


def test_new_needs_a_project(tmp_path):
    code, out = cli("new", "hello", "--root", tmp_path)
    assert code == 1 and "site.yml: missing site settings" in out
    assert not (tmp_path / "content" / "posts" / "hello.md").exists()


# ---------------------------------------------------------------------------------------------
# list

def test_list_shows_posts_experiments_metrics_figures_and_listings(repo_project):
    code, out = cli("list", "--root", repo_project)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "posts (3), newest first:"
    assert lines[1].split()[:2] == ["lora-on-a-trained-transformer", "2026-01-13"]
    assert ("content/posts/lora-on-a-trained-transformer.md; experiments: steering, tinygpt; "
            "data: audit") in lines[2]
    assert lines[3].split()[:2] == ["lora-attention-claims-audit", "2026-01-12"]
    assert lines[5].split()[:2] == ["lora-attention-geometry", "2026-01-11"]
    assert "content/posts/lora-attention-geometry.md; experiments: main; data: audit" in lines[6]
    assert "experiments (4):" in lines
    main_at = next(i for i, l in enumerate(lines) if l.startswith("  main (kind lora): "))
    # Each experiment's block runs to the next experiment's first line.
    starts = [i for i, l in enumerate(lines) if re.match(r"  \w+ \(kind \w+\): ", l)]
    blocks = [" ".join(" ".join(lines[a:b]).split())
              for a, b in zip(starts, starts[1:] + [len(lines)])]
    block = blocks[starts.index(main_at)]
    frozen = json.loads((repo_project / "content" / "_freeze" / "main" / "results.json")
                        .read_text())
    assert "result: frozen and fresh (a build reuses it)" in block
    assert "metrics: " + ", ".join(sorted(frozen["metrics"])) in block
    assert "figures: before_lora, after_lora, weight_change_lora, score_before_lora" in block
    assert "listing('science.lora', ...): LoRALinear, inject_lora" in block
    assert "listing('science.attention', ...): AttentionOutput, TinySelfAttention" in block
    audit = " ".join(" ".join(lines[:main_at]).split())
    assert "audit (kind audit): " in audit and "claims: diffuse_before," in audit
    # Every listing it offers is one a body can show.
    from generator.render.listings import listing
    for each in blocks:
        for module, names in re.findall(r"listing\('([\w.]+)', \.\.\.\): (.*?)(?= listing\(|$)",
                                        each):
            for name in names.split(", "):
                assert listing(module, name)


def test_list_says_when_a_result_is_stale_or_missing(repo_project):
    post = repo_project / "content" / "posts" / "lora-attention-geometry.md"
    post.write_text(post.read_text().replace("  main: {}\n", "  main: {rank: 2}\n", 1))
    write_post(repo_project, slug="new-one", experiments="  other: {seed: 5}\n")
    code, out = cli("list", "--root", repo_project)
    assert code == 0, out
    assert "result: stale, a build recomputes it (config rank 4 -> 2)" in out
    other = out[out.index("  other (kind lora)"):]
    assert "result: none yet (a build computes it)" in other
    assert "(metrics appear once a build has computed the result)" in other


def test_list_and_clean_never_import_torch(repo_project):
    code = ("import sys; from click.testing import CliRunner; from generator.cli import main\n"
            f"r = CliRunner().invoke(main, ['list', '--root', {str(repo_project)!r}])\n"
            "assert r.exit_code == 0, r.output\n"
            f"r = CliRunner().invoke(main, ['clean', '--root', {str(repo_project)!r}])\n"
            "assert r.exit_code == 0, r.output\n"
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------
# clean

def test_clean_removes_site_and_cache_and_keeps_the_freeze(repo_project, monkeypatch):
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")
    assert cli("build", "--root", repo_project, "--frozen", "-q")[0] == 0
    freeze = repo_project / "content" / "_freeze"
    before = {p: p.read_bytes() for p in sorted(freeze.rglob("*")) if p.is_file()}
    leftover = repo_project / ".site.build-x1y2"
    leftover.mkdir()
    assert (repo_project / "site").is_dir() and (repo_project / ".cache").is_dir()
    code, out = cli("clean", "--root", repo_project)
    assert code == 0, out
    assert out.strip() == "removed site/, .cache/, .site.build-x1y2/ (content/_freeze is kept)"
    assert not (repo_project / "site").exists() and not (repo_project / ".cache").exists()
    assert not leftover.exists()
    assert {p: p.read_bytes() for p in sorted(freeze.rglob("*")) if p.is_file()} == before
    code, out = cli("clean", "--root", repo_project)
    assert code == 0 and out.strip() == f"nothing to clean in {repo_project}"
    # The site builds again from the freeze alone.
    assert cli("build", "--root", repo_project, "--frozen", "-q")[0] == 0


def test_clean_removes_a_symlinked_site_but_not_what_it_points_to(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    project = tmp_path / "project"
    (project / "content").mkdir(parents=True)
    (project / "site").symlink_to(elsewhere)
    code, out = cli("clean", "--root", project)
    assert code == 0, out
    assert not (project / "site").is_symlink() and (elsewhere / "keep.txt").read_text() == "mine"


def test_clean_waits_for_no_build(tmp_path):
    from generator.core.project import Project
    from generator.publish.lock import build_lock

    (tmp_path / "content").mkdir()
    (tmp_path / "site").mkdir()
    with build_lock(Project(tmp_path)):
        code, out = cli("clean", "--root", tmp_path)
    assert code == 1 and "another build is running" in out and len(out.splitlines()) == 1
    assert (tmp_path / "site").is_dir()


# ---------------------------------------------------------------------------------------------
# Help and completion

def test_help_shows_each_commands_whole_first_sentence():
    code, out = cli("--help", terminal_width=80)
    assert code == 0
    listed = " ".join(out.split("Commands:", 1)[1].split())
    assert "..." not in listed
    for name, cmd in main.commands.items():
        sentence = first_sentence(cmd.help)
        assert sentence.endswith(".") and len(sentence) > 20, name
        assert f"{name} {sentence}" in listed, name


def test_shell_completion_works_as_the_readme_says():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for shell in ("bash", "zsh", "fish"):
        assert f"_LORA_SITE_COMPLETE={shell}_source lora-site" in readme, shell
    res = CliRunner().invoke(main, [], prog_name="lora-site",
                             env={"_LORA_SITE_COMPLETE": "bash_source"})
    assert res.exit_code == 0
    assert "_lora_site_completion()" in res.output and "complete -o nosort -F" in res.output
    res = CliRunner().invoke(main, [], prog_name="lora-site",
                             env={"_LORA_SITE_COMPLETE": "bash_complete", "COMP_WORDS": "lora-site cl",
                                  "COMP_CWORD": "1"})
    assert res.output.split() == ["plain,clean"]
