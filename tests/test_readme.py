"""Every example in README.md and content/README.md works, checked by running it: the body
snippets render in a real post, the error lines are what the build prints for those inputs,
every `lora-site ...` command line is one the CLI accepts, and the Jekyll drop-in commands copy
everything the posts link to."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import click

from generator.cli import main
from harness import POST, invoke

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "content" / "README.md"]


def blocks(text: str) -> tuple[list[tuple[str, str]], str]:
    """([(info string, content) of each fenced block], the text outside them)."""
    found, outside, current = [], [], None
    for line in text.split("\n"):
        if current is None and line.startswith("```"):
            current = (line[3:].strip(), [])
        elif current is not None and line.strip() == "```":
            found.append((current[0], "\n".join(current[1]) + "\n"))
            current = None
        elif current is not None:
            current[1].append(line)
        else:
            outside.append(line)
    return found, "\n".join(outside)


def code_spans(text: str) -> list[str]:
    """The `inline code` of Markdown text (fenced blocks left out)."""
    return [m.group(2) for m in re.finditer(r"(`+)(.+?)\1", blocks(text)[1])]


def fenced(text: str, lang: str) -> list[str]:
    return [content for info, content in blocks(text)[0] if info == lang]


# Jekyll's Liquid, which the README shows for a blog's layouts (an include, Jekyll's URL
# filters): not something a body holds.
LIQUID = re.compile(r"\{%-?\s*include\s|\|\s*(absolute_url|relative_url)\b")


def body_examples() -> list[str]:
    """The code spans that are Jinja a body can hold: complete {{ }} or {% %} constructs."""
    out = []
    for doc in DOCS:
        for span in code_spans(doc.read_text(encoding="utf-8")):
            span = span.strip()
            if re.search(r"\{\{.*\}\}|\{%.*%\}", span) and "<" not in span \
                    and not LIQUID.search(span):
                out.append(span)
    return out


def test_every_body_example_renders(project):
    examples = body_examples()
    assert len(examples) >= 12, examples
    with open(project / POST, "a", encoding="utf-8") as fh:
        for i, example in enumerate(examples):
            fh.write(f"\nExample {i}: {example}\n")
    result = invoke("build", "--root", project, "--quiet")
    assert result.exit_code == 0, result.output
    page = (project / "site/html/lora-attention-geometry/index.html").read_text(encoding="utf-8")
    assert "Example 0: " in page and f"Example {len(examples) - 1}: " in page
    # A few by what they print.
    for example, shown in (("{{ main.config.alpha | num }}", "8"),
                           ("{{ listing(\"lora\", \"LoRALinear\") }}",
                            '</p>\n<figure class="listing">\n<details class="listing-fold">\n'
                            "<summary><code>LoRALinear</code> from")):
        i = examples.index(example)
        assert page.split(f"Example {i}: ", 1)[1].startswith(shown), example


def readme_errors() -> list[str]:
    block = next(b for b in fenced((REPO / "README.md").read_text(encoding="utf-8"), "")
                 if b.startswith("Error: "))
    return block.strip().splitlines()


def test_the_error_examples_are_what_the_build_prints(project):
    """Each README error line, for the input it describes (the post is content/posts/post.md);
    a path in the README is the project's relative path, the real line names it in full."""
    lines = readme_errors()
    assert len(lines) == 5
    post = project / "content" / "posts" / "post.md"
    head = "---\ntitle: A post\ndate: 2026-02-01\nexperiments:\n  main: {}\n"

    def expect(readme_line: str, result) -> None:
        want = readme_line.replace("Error: content/", f"Error: {project}/content/", 1)
        assert result.exit_code == 1, result.output
        assert result.stderr.strip() == want

    def body_at(line: int, text: str) -> str:
        lines = (head + "---\n").count("\n")
        return head + "---\n" + "Prose.\n" * (line - lines - 1) + text + "\n"

    # Line 14 of the front matter: a misspelt key.
    post.write_text(head + "\n" * 8 + "categroy: blog\n---\nProse.\n", encoding="utf-8")
    assert post.read_text().split("\n").index("categroy: blog") == 13
    expect(lines[0], invoke("build", "--root", project, "--quiet"))
    post.write_text(head.replace("main: {}", "main: {rank: 0}") + "---\nProse.\n",
                    encoding="utf-8")
    expect(lines[1], invoke("build", "--root", project, "--quiet"))
    post.write_text(body_at(212, "Steps: {{ main.metrics.stepz }}."), encoding="utf-8")
    expect(lines[2], invoke("build", "--root", project, "--quiet"))
    post.write_text(body_at(40, "See [the audit]({{ site.baseurl }}/lora-attention-audit/)."),
                    encoding="utf-8")
    expect(lines[3], invoke("build", "--root", project, "--quiet"))
    post.unlink()
    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 8000))
            taken.listen()
        except OSError:
            pass                        # already in use by another program: as good
        result = invoke("serve", "--root", project, "--port", "8000")
    assert result.exit_code == 1 and result.stderr.strip() == lines[4]


def command_lines() -> list[str]:
    """Every `lora-site ...` command line the READMEs show (in code spans and sh blocks)."""
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        out += [s for s in code_spans(text) if s.startswith("lora-site ")]
        for block in fenced(text, "sh"):
            for line in block.splitlines():
                line = line.split("# or: ", 1)[-1] if "# or: lora-site" in line else line
                line = line.split("#", 1)[0].strip()
                if line.startswith("lora-site "):
                    out.append(line)
    return out


def test_every_command_line_is_accepted():
    commands = command_lines()
    assert len(commands) >= 15, commands
    for line in commands:
        args = shlex.split(line.replace("<command>", "build"))[1:]
        try:
            ctx = main.make_context("lora-site", list(args))
            # click keeps the command and its arguments aside until it invokes it.
            rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
            name, cmd, sub = main.resolve_command(ctx, rest)
            cmd.make_context(name, sub, parent=ctx)      # raises on an unknown option
        except click.exceptions.Exit as done:            # --help: shown, and exit status 0
            assert done.exit_code == 0 and "--help" in args, line


def test_the_jekyll_drop_in_commands_copy_everything_the_posts_use(project, tmp_path):
    """The README's commands, run as written (lora-site is this package), into an empty blog."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = next(b for b in fenced(text, "sh") if "$BLOG/_posts" in b)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "lora-site").write_text(f"#!/bin/sh\nexec {sys.executable} -m generator \"$@\"\n")
    (bin_dir / "lora-site").chmod(0o755)
    blog = tmp_path / "my-blog"
    script = block.replace("BLOG=../my-blog", f"BLOG={shlex.quote(str(blog))}")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(REPO), LORA_SITE_DRAW_WORKERS="0")
    proc = subprocess.run(["sh", "-e", "-c", script], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    posts = sorted(p.name for p in (blog / "_posts").iterdir())
    assert posts == sorted(p.name for p in (project / "site/jekyll/_posts").iterdir())
    assert len(posts) == 3 and (blog / "_includes" / "mathjax.html").is_file()
    linked = set()
    for name in posts:
        linked |= set(re.findall(r"\]\(/your-baseurl/(assets/images/[^)]+)\)",
                                 (blog / "_posts" / name).read_text(encoding="utf-8")))
    # The article's figures and the audit's (in their own folder) are all there.
    assert any(p.startswith("assets/images/audit/") for p in linked), linked
    assert any(p.count("/") == 2 for p in linked), linked
    missing = sorted(p for p in linked if not (blog / p).is_file())
    assert missing == [], missing
    shutil.rmtree(blog)
