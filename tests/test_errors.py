"""Bad input and faults: each one exits non-zero with one line naming the file, the line or field
and the fix, and leaves the site built before it byte-for-byte as it was.

A good site is built once (the session fixture built_project) from a copy of the repository's
content/ and templates/; every case copies that built project, breaks one thing and builds again
through the real CLI (click's CliRunner on generator.cli.main, in this process): tests/harness.py.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from conftest import REPO
from generator.publish import build as build_mod
from generator.publish import lock as lock_mod
from generator.publish import tree as tree_mod
from harness import (
    FREEZE, POST, POST_HTML, SITE_YML, Case, add_body_line, assert_one_line_error, check_case,
    edit, extra_post, invoke, leftovers, line_of, set_experiment, tree_hashes)


def fm_yaml_syntax(root):
    edit(root, POST, "category: blog\n", "category: blog: extra\n")
    line = line_of(root, POST, "category: blog: extra")
    return Case([f"lora-attention-geometry.md:{line}:", "YAML syntax error", "quote values"])


def fm_yaml_unclosed_quote(root):
    # The quoted scalar runs on to the end of the front matter; the message says where it began.
    edit(root, POST, 'over hundreds of seeds."\n', "over hundreds of seeds.\n")
    line = line_of(root, POST, 'description: "A geometric')
    return Case(["lora-attention-geometry.md:", "YAML syntax error",
                 f"starts on line {line}", "fix the YAML"])


def site_yml_syntax(root):
    edit(root, SITE_YML, "lang: en", "lang: en: x")
    line = line_of(root, SITE_YML, "lang: en: x")
    return Case([f"site.yml:{line}:", "YAML syntax error", "fix the YAML"])


def fm_unknown_key(root):
    edit(root, POST, "category: blog", "categroy: blog")
    line = line_of(root, POST, "categroy: blog")
    return Case([f"lora-attention-geometry.md:{line}: categroy:", "unknown front matter key",
                 "did you mean 'category'?"])


def site_unknown_key(root):
    edit(root, SITE_YML, 'baseurl: ""', 'baseur: ""')
    return Case(["site.yml: baseur:", "unknown key", "did you mean 'baseurl'?"])


def experiment_unknown_key(root):
    set_experiment(root, "rnak: 2")
    return Case(["lora-attention-geometry.md: experiments.main.rnak:", "unknown key",
                 "did you mean 'rank'?"])


def fm_missing_title(root):
    edit(root, POST, 'title: "How Low-Rank', 'subtitle: "How Low-Rank')
    # 'subtitle' is not a known key either: the suggestion says what it should be.
    return Case(["lora-attention-geometry.md:2: subtitle:", "did you mean 'title'?"])


def drop_lines(root: Path, rel: str, prefix: str) -> None:
    """Remove every line of ``rel`` that starts with ``prefix``."""
    path = root / rel
    lines = path.read_text(encoding="utf-8").split("\n")
    path.write_text("\n".join(line for line in lines if not line.startswith(prefix)),
                    encoding="utf-8")


def fm_title_removed(root):
    drop_lines(root, POST, "title:")
    return Case(["lora-attention-geometry.md: title:", "title is required", "add a line"])


def fm_missing_date(root):
    drop_lines(root, POST, "date:")
    return Case(["lora-attention-geometry.md: date:", "missing", "write it as"])


def fm_bad_date(root):
    edit(root, POST, "date: 2026-01-11 10:00:00 +0530", "date: next tuesday")
    return Case(["lora-attention-geometry.md: date:", "is not a date", "write it as"])


def site_missing_title(root):
    drop_lines(root, SITE_YML, "title:")
    return Case(["site.yml: title:", "is required", "add a line such as 'title:"])


def site_bad_url(root):
    edit(root, SITE_YML, 'url: "https://lora-site.github.io"', 'url: "lora-site.github.io/x"')
    return Case(["site.yml: url:", "must be an origin", "put the path in baseurl"])


def bad_value(settings: str, field_name: str, *words: str):
    def case(root):
        set_experiment(root, settings)
        return Case([f"lora-attention-geometry.md: experiments.main.{field_name}:", *words])
    case.__name__ = f"experiment_{settings}"
    return case


def undefined_variable(root):
    line = add_body_line(root, "Steps: {{ main.metrics.no_such_metric }}.")
    return Case([f"lora-attention-geometry.md:{line}:", "undefined value", "no_such_metric",
                 "check the name"])


def undefined_top_level(root):
    line = add_body_line(root, "Value: {{ mian.config.rank }}.")
    return Case([f"lora-attention-geometry.md:{line}:", "undefined value", "'mian'"])


def template_syntax(root):
    line = add_body_line(root, "{% if %}broken{% endif %}")
    return Case([f"lora-attention-geometry.md:{line}:", "template syntax error", "fix the"])


def unclosed_display_math(root):
    with open(root / POST, "a", encoding="utf-8") as fh:
        fh.write("\n$$ S = QK^\\top  % never closed\n\nMore prose.\n")
    line = line_of(root, POST, "% never closed")
    return Case([f"lora-attention-geometry.md:{line}:", "display math opened with $$ is never "
                 "closed", "end it with $$ on a line of its own"])


def inline_display_math(root):
    add_body_line(root, "Running text with $$x$$ inline.")
    return Case(["lora-attention-geometry.md:", "inline $$...$$ in running text",
                 "write inline math as $...$"])


def missing_figure(root):
    line = add_body_line(root, "{{ figure('no_such_figure', 'A caption') }}")
    return Case([f"lora-attention-geometry.md:{line}:", "figure 'no_such_figure' does not exist",
                 "use one of", "before_lora"])


def missing_listing(root):
    line = add_body_line(root, "{{ listing('lora', 'NoSuchClass') }}")
    return Case([f"lora-attention-geometry.md:{line}:", "NoSuchClass", "generator/science/lora.py",
                 "check the name"])


def listing_outside_package(root):
    line = add_body_line(root, "{{ listing('../../etc/passwd', 'x') }}")
    return Case([f"lora-attention-geometry.md:{line}:", "not a module of the generator package"])


def listing_missing_module(root):
    line = add_body_line(root, "{{ listing('no_such_module', 'x') }}")
    return Case([f"lora-attention-geometry.md:{line}:", "no module generator/no_such_module.py"])


def non_finite_loss(root):
    set_experiment(root, "d_model: 8, seq_len: 4, key: 2, lr: 1.0e+30, alpha: 1.0e+30, "
                         "max_steps: 50, stop_prob: 0.999999")
    return Case(["lora-attention-geometry.md: experiments.main:", "non-finite loss",
                 "at step", "lower lr"])


def unwritable_output(root):
    # Root ignores permission bits, so "unwritable" is a path no one can create: its parent is
    # a regular file.
    (root / "a-file").write_text("not a folder")
    return Case(["a-file/site", "cannot be written", "a-file is not a folder", "--out"],
                args=["--out", str(root / "a-file" / "site")])


def output_is_a_file(root):
    (root / "out-file").write_text("precious")
    return Case(["out-file", "exists and is not a folder", "move that file away"],
                args=["--out", str(root / "out-file")])


def truncated_arrays_frozen(root):
    path = root / FREEZE / "arrays.npz"
    path.write_bytes(path.read_bytes()[:1000])
    return Case(["_freeze/main/arrays.npz", "stale", "edited or truncated", "rebuild without"],
                args=["--frozen"])


def edited_results_frozen(root):
    path = root / FREEZE / "results.json"
    doc = json.loads(path.read_text())
    doc["metrics"]["steps"] = doc["metrics"]["steps"] + 1
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return Case(["_freeze/main/results.json", "edited or truncated", "rebuild without"],
                args=["--frozen"])


class _Payload:
    """Unpickling this creates a file: proof, if the file appears, that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickled_arrays(root):
    """An archive holding a pickled object, with every hash updated to match (as an attacker
    would): it is refused, not unpickled."""
    import hashlib

    import numpy as np

    marker = root / "unpickled"
    npz = root / FREEZE / "arrays.npz"
    np.savez(npz, X=np.array([_Payload(marker)], dtype=object))
    sha = hashlib.sha256(npz.read_bytes()).hexdigest()
    results = root / FREEZE / "results.json"
    doc = json.loads(results.read_text())
    doc["arrays_sha256"] = sha
    results.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    manifest = root / "content" / "_freeze" / "manifest.json"
    man = json.loads(manifest.read_text())
    man["experiments"]["main"]["files"] = {
        "arrays.npz": sha, "results.json": hashlib.sha256(results.read_bytes()).hexdigest()}
    manifest.write_text(json.dumps(man, indent=2, sort_keys=True) + "\n")
    return Case(["_freeze/main/arrays.npz", "cannot read arrays",
                 "Object arrays cannot be loaded when allow_pickle=False", "re-run"],
                after=lambda: not marker.exists())


def edited_figure_frozen(root):
    figures = root / FREEZE / "figures"
    name = sorted(p.name for p in figures.iterdir())[0]
    (figures / name).write_bytes(b"\x89PNG not really")
    return Case([f"_freeze/main/figures/{name}", "frozen figure of experiment 'main'",
                 "was edited or truncated", "rebuild without --frozen"], args=["--frozen"])


def truncated_manifest(root):
    path = root / "content" / "_freeze" / "manifest.json"
    path.write_bytes(path.read_bytes()[:200])
    return Case(["_freeze/manifest.json", "cannot read the freeze manifest", "delete it"])


def stale_freeze_frozen(root):
    set_experiment(root, "max_steps: 499")
    return Case(["experiment 'main' are stale", "config max_steps 500 -> 499"],
                args=["--frozen"])


def page_template_undefined(root):
    edit(root, POST_HTML, "<h1>{{ post.title }}</h1>", "<h1>{{ post.no_such_field }}</h1>")
    line = line_of(root, POST_HTML, "post.no_such_field")
    return Case([f"post.html:{line}:", "undefined value", "no_such_field"])


def page_template_syntax(root):
    edit(root, POST_HTML, "<h1>{{ post.title }}</h1>", "<h1>{{ post.title }</h1>")
    line = line_of(root, POST_HTML, "{{ post.title }</h1>")
    return Case([f"post.html:{line}:", "template syntax error", "fix the"])


def not_utf8(root):
    path = root / POST
    data = path.read_bytes().replace(b"## Introduction", b"## Introduction \xff", 1)
    path.write_bytes(data)
    line = data[:data.index(b"\xff")].count(b"\n") + 1
    return Case([f"lora-attention-geometry.md:{line}:", "not UTF-8", "save the file as UTF-8"])


def control_character_in_title(root):
    edit(root, POST, 'title: "How Low-Rank', 'title: "How\\vLow-Rank')
    return Case(["lora-attention-geometry.md: title:", "control character U+000B", "remove it"])


def raw_control_character(root):
    # Typed (or pasted) as the character itself, YAML refuses it before the build sees it.
    edit(root, POST, "category: blog", "category: bl\x0bog")
    line = line_of(root, POST, "category: bl")
    return Case([f"lora-attention-geometry.md:{line}:", "YAML cannot hold the character U+000B",
                 "remove it"])


def site_yml_not_utf8(root):
    line = line_of(root, SITE_YML, "lang: en")
    path = root / SITE_YML
    path.write_bytes(path.read_bytes().replace(b"lang: en", b"lang: \xe9n"))
    return Case([f"site.yml:{line}:", "not UTF-8", "save the file as UTF-8"])


def bad_tags(root):
    edit(root, POST, "tag:\n", "tag: {a: 1}\ntags:\n")
    return Case(["lora-attention-geometry.md: tag:", "list of tags"])


def experiments_not_a_mapping(root):
    edit(root, POST, "  main: {}", "  - main")
    return Case(["lora-attention-geometry.md: experiments:", "must map experiment names"])


def experiment_conflict(root):
    text = (root / POST).read_text(encoding="utf-8")
    head = text.split("\n---\n", 1)[0].replace("  main: {}", "  main: {rank: 2}")
    (root / "content" / "posts" / "second.md").write_text(head + "\n---\nA second post.\n",
                                                          encoding="utf-8")
    return Case(["experiments.main:", "declared twice", "give one of them a new name"])


def no_front_matter(root):
    (root / "content" / "posts" / "notes.md").write_text("Just some notes.\n", encoding="utf-8")
    return Case(["notes.md:1:", "no front matter", "start the file with a '---' line"])


def bad_slug(root):
    shutil.copy(root / POST, root / "content" / "posts" / "My Post.md")
    return Case(["My Post.md", "does not make a URL slug", "lower-case letters"])


def unknown_data_loader(root):
    name = extra_post(root, "data: [no_such_loader]\n")
    return Case([f"{name}: data:", "no data loader named 'no_such_loader'", "known:"])


def duplicate_front_matter_key(root):
    edit(root, POST, "category: blog\n", "category: blog\ndate: 2026-02-02\n")
    first = line_of(root, POST, "date: 2026-01-11")
    again = line_of(root, POST, "date: 2026-02-02")
    return Case([f"lora-attention-geometry.md:{again}:", "the key 'date' is written twice",
                 f"first on line {first}", "keep one of them"])


def duplicate_site_key(root):
    with open(root / SITE_YML, "a", encoding="utf-8") as fh:
        fh.write('title: "Another title"\n')
    first = line_of(root, SITE_YML, 'title: "lora-site')
    return Case(["site.yml:", "the key 'title' is written twice", f"first on line {first}"])


def bad_cli_baseurl(root):
    return Case(["--baseurl", "is not a URL path", "use a path such as /repo"],
                args=["--baseurl", "/a b"])


REPOSITORY_LINE = 'repository: "https://github.com/lora-site/lora-site"'


def site_repository_clone_url(root):
    edit(root, SITE_YML, REPOSITORY_LINE, 'repository: "git@github.com:lora-site/lora-site.git"')
    return Case(["site.yml: repository:", "'git@github.com:lora-site/lora-site.git' is not the "
                 "web address of a repository", "https://github.com/<owner>/<repo>"])


def site_repository_without_repo(root):
    edit(root, SITE_YML, REPOSITORY_LINE, 'repository: "https://github.com/lora-site"')
    return Case(["site.yml: repository:", "is not the web address of a repository"])


def site_repository_not_a_string(root):
    edit(root, SITE_YML, REPOSITORY_LINE, "repository: [a, b]")
    return Case(["site.yml: repository:", "must be a string, got ['a', 'b']"])


def listing_inside_a_fence(root):
    # The form listing() needed before it wrote its own code block.
    with open(root / POST, "a", encoding="utf-8") as fh:
        fh.write('\n```python\n{{ listing("lora", "inject_lora") }}\n```\n')
    line = _last_line_of(root, POST, '{{ listing("lora", "inject_lora") }}')
    return Case([f"lora-attention-geometry.md:{line}:",
                 "a listing inside a ``` fence: listing() writes its own code block",
                 "remove the ``` lines around"])


def _last_line_of(root: Path, rel: str, needle: str) -> int:
    lines = (root / rel).read_text(encoding="utf-8").split("\n")
    return max(i + 1 for i, line in enumerate(lines) if needle in line)


def listing_bad_fold(root):
    line = add_body_line(root, "{{ listing('lora', 'inject_lora', fold='yes') }}")
    return Case([f"lora-attention-geometry.md:{line}:", "listing: fold must be true or false",
                 "got 'yes'"])


def site_bad_lang(root):
    edit(root, SITE_YML, "lang: en", "lang: 'en\" onload=\"alert(1)'")
    return Case(["site.yml: lang:", "is not a language tag", "pt-BR"])


def site_license_unknown_id(root):
    edit(root, SITE_YML, "  text: CC-BY-4.0", "  text: CC-BY-40")
    return Case(["site.yml: license.text:", "'CC-BY-40' is not an SPDX licence id",
                 "did you mean 'CC-BY-4.0'?"])


def site_license_not_a_mapping(root):
    edit(root, SITE_YML, "license:\n  text: CC-BY-4.0\n  code: MIT", "license: MIT")
    return Case(["site.yml: license:", "must be a mapping", "license: {text: CC-BY-4.0, code: MIT}"])


def site_license_unknown_key(root):
    edit(root, SITE_YML, "  code: MIT", "  cod: MIT")
    return Case(["site.yml: license.cod:", "unknown key", "did you mean 'code'?"])


def fm_bad_author(root):
    edit(root, POST, "category: blog\n", "category: blog\nauthor: [Ada Lovelace, 3]\n")
    return Case(["lora-attention-geometry.md: author:", "author 2 is 3, not a non-empty name"])


def missing_site_yml(root):
    (root / SITE_YML).unlink()
    return Case(["site.yml", "missing site settings", "create it"])


CASES: list[Callable[[Path], Case]] = [
    fm_yaml_syntax, fm_yaml_unclosed_quote, site_yml_syntax,
    fm_unknown_key, site_unknown_key, experiment_unknown_key,
    fm_missing_title, fm_title_removed, fm_missing_date, fm_bad_date, site_missing_title,
    site_bad_url, site_bad_lang, missing_site_yml, site_license_unknown_id,
    site_license_not_a_mapping, site_license_unknown_key, fm_bad_author,
    bad_value("rank: 0", "rank", "between 1 and d_model=64", "got 0"),
    bad_value("rank: 65", "rank", "between 1 and d_model=64", "got 65"),
    bad_value("rank: four", "rank", "must be an integer"),
    bad_value("key: 10", "key", "must index a token of the sequence (0..9)", "got 10"),
    bad_value("query: -1", "query", "must index a token of the sequence", "got -1"),
    bad_value("seq_len: 1", "seq_len", "must be >= 2"),
    bad_value("lr: 0", "lr", "must be a positive finite number"),
    bad_value("lr: -0.01", "lr", "must be a positive finite number"),
    bad_value("lr: .nan", "lr", "must be a positive finite number", "nan"),
    bad_value("lr: .inf", "lr", "must be a positive finite number", "inf"),
    bad_value("lr: fast", "lr", "must be a number", "'fast'"),
    bad_value("max_steps: 0", "max_steps", "must be >= 1"),
    bad_value("stop_prob: 1.0", "stop_prob", "strictly between 0 and 1"),
    bad_value("stop_prob: 0", "stop_prob", "strictly between 0 and 1"),
    bad_value("stop_prob: 1.5", "stop_prob", "strictly between 0 and 1"),
    undefined_variable, undefined_top_level, template_syntax, unclosed_display_math,
    inline_display_math,
    missing_figure, missing_listing, listing_outside_package, listing_missing_module,
    non_finite_loss, unwritable_output, output_is_a_file,
    truncated_arrays_frozen, edited_results_frozen, truncated_manifest, stale_freeze_frozen,
    pickled_arrays, edited_figure_frozen,
    page_template_undefined, page_template_syntax, not_utf8, site_yml_not_utf8,
    control_character_in_title, raw_control_character,
    bad_tags, experiments_not_a_mapping, experiment_conflict, no_front_matter, bad_slug,
    unknown_data_loader, duplicate_front_matter_key, duplicate_site_key, bad_cli_baseurl,
    site_repository_clone_url, site_repository_without_repo, site_repository_not_a_string,
    listing_inside_a_fence, listing_bad_fold,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_one_clear_line_and_the_site_is_untouched(project, case):
    check_case(project, case)


def test_the_table_covers_enough_bad_inputs():
    assert len(CASES) >= 15


# ---------------------------------------------------------------------------------------------
# Faults that are not bad input: recomputation, bugs, --debug


def test_truncated_results_are_recomputed_without_frozen(project):
    """Without --frozen a damaged freeze is not an error: it is re-run, and the same site
    (bit-identical training) comes out."""
    before = tree_hashes(project / "site")
    good = (project / FREEZE / "arrays.npz").read_bytes()
    (project / FREEZE / "arrays.npz").write_bytes(good[:1000])
    result = invoke("build", "--root", str(project), "--quiet", "--explain")
    assert result.exit_code == 0, result.output
    assert "run main: ran (arrays.npz was edited or truncated" in result.stderr
    assert (project / FREEZE / "arrays.npz").read_bytes() == good
    assert tree_hashes(project / "site") == before


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(project, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("something\nbroke")
    monkeypatch.setattr(build_mod, "render_with_inputs", boom)
    before = tree_hashes(project / "site")
    line = assert_one_line_error(invoke("build", "--root", str(project), "--quiet"),
                                 ["unexpected error: RuntimeError: something broke",
                                  "run with --debug for the traceback"])
    assert line
    assert tree_hashes(project / "site") == before
    result = invoke("--debug", "build", "--root", str(project), "--quiet")
    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)      # re-raised: Python prints it
    assert tree_hashes(project / "site") == before


def test_debug_prints_the_traceback_of_a_user_error_too(project):
    set_experiment(project, "rank: 0")
    result = invoke("--debug", "build", "--root", str(project), "--quiet")
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")


def test_an_os_error_is_one_line_naming_the_file(project, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(project / "content" / "x"))
    monkeypatch.setattr(build_mod, "render_with_inputs", denied)
    assert_one_line_error(invoke("build", "--root", str(project), "--quiet"),
                          ["content/x: Permission denied", "--debug"])


def test_error_lines_map_into_the_post_for_every_body_line(project):
    """The reported line is the post file's line, wherever in the body the error sits."""
    path = project / POST
    lines = path.read_text(encoding="utf-8").split("\n")
    for at in (lines.index("## Introduction"), lines.index("## References")):
        broken = lines[:at] + ["{{ nope_" + str(at) + " }}"] + lines[at:]
        path.write_text("\n".join(broken), encoding="utf-8")
        result = invoke("build", "--root", str(project), "--quiet")
        message = assert_one_line_error(result, [f"nope_{at}"])
        reported = int(re.search(r"lora-attention-geometry\.md:(\d+):", message).group(1))
        assert broken[reported - 1] == "{{ nope_" + str(at) + " }}"


# ---------------------------------------------------------------------------------------------
# Interrupted builds and concurrent builds (real processes, paused at a known point)

NEW_SENTENCE = "A sentence the interrupted build would have added."


def start_build(root: Path, pause_at: str | None, flag: Path) -> subprocess.Popen:
    """`python -m generator build` in a fresh process; with pause_at it stops at that
    failpoint, writes its pid to ``flag`` and waits until ``flag`` is removed."""
    env = dict(os.environ, LORA_SITE_DRAW_WORKERS="0", PYTHONPATH=str(REPO))
    env.pop(lock_mod.PAUSE_AT_ENV, None)
    if pause_at:
        env[lock_mod.PAUSE_AT_ENV] = pause_at
        env[lock_mod.PAUSE_FILE_ENV] = str(flag)
    # SIGINT must reach Python as Ctrl-C does even if this test runs as a background job
    # (which starts with SIGINT ignored, and Python keeps an ignored SIGINT ignored).
    return subprocess.Popen(
        [sys.executable, "-m", "generator", "build", "--root", str(root), "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_paused(proc: subprocess.Popen, flag: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not (flag.exists() and flag.read_text().strip()):
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the build ended before its pause point: {proc.returncode} {err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the build never reached its pause point")
        time.sleep(0.02)
    assert int(flag.read_text()) == proc.pid


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("pause_at,signum", [
    ("render", signal.SIGINT),      # after training and drawing, before a page is rendered
    ("write", signal.SIGINT),       # every new file written to the temporary folder
    ("write", signal.SIGTERM),
])
def test_an_interrupted_build_leaves_the_previous_site_and_no_temporary_folder(
        project, tmp_path, pause_at, signum):
    before = tree_hashes(project / "site")
    add_body_line(project, NEW_SENTENCE)
    flag = tmp_path / "paused"
    proc = start_build(project, pause_at, flag)
    wait_paused(proc, flag)
    if pause_at == "write":
        # Really mid-way: the new site is complete in its temporary folder, not yet swapped in.
        (tmp,) = [project / name for name in leftovers(project)]
        assert NEW_SENTENCE in (tmp / "html" / "lora-attention-geometry" / "index.html").read_text()
    proc.send_signal(signum)
    code, out, err = finish(proc)
    assert code == 128 + signum
    line = one_error_line(err)
    assert f"interrupted by {signal.Signals(signum).name}" in line
    assert "nothing was left half-written" in line
    assert tree_hashes(project / "site") == before
    assert leftovers(project) == []


def test_a_killed_build_is_cleaned_up_by_the_next_one(project, tmp_path):
    """SIGKILL cannot be caught: the temporary folder stays, site/ is still the old one, and the
    next build removes the leftover and writes the new site."""
    before = tree_hashes(project / "site")
    add_body_line(project, NEW_SENTENCE)
    flag = tmp_path / "paused"
    proc = start_build(project, "write", flag)
    wait_paused(proc, flag)
    proc.kill()
    proc.communicate()
    assert tree_hashes(project / "site") == before
    assert len(leftovers(project)) == 1
    result = invoke("build", "--root", str(project), "--quiet")
    assert result.exit_code == 0, result.output
    assert leftovers(project) == []
    page = project / "site" / "html" / "lora-attention-geometry" / "index.html"
    assert NEW_SENTENCE in page.read_text(encoding="utf-8")


def test_an_interruption_in_process_cleans_up_too(project, monkeypatch):
    before = tree_hashes(project / "site")
    add_body_line(project, NEW_SENTENCE)

    def ctrl_c(name):
        if name == "write":
            assert len(leftovers(project)) == 1
            raise KeyboardInterrupt
    monkeypatch.setattr(tree_mod, "failpoint", ctrl_c)
    assert_one_line_error(invoke("build", "--root", str(project), "--quiet"),
                          ["interrupted by SIGINT", "nothing was left half-written"], code=130)
    assert tree_hashes(project / "site") == before
    assert leftovers(project) == []


def test_a_build_killed_between_the_two_renames_gets_its_site_back(tmp_path):
    """The one moment site/ does not exist: moved aside, the new one not yet in place. The next
    build (under the lock) puts the previous site back before anything else."""
    out = tmp_path / "site"
    tree_mod.write_tree(out, {"html/index.html": b"previous"})
    aside = tmp_path / ".site.old-x1"
    aside.mkdir()
    os.rename(out, aside / "site")
    (tmp_path / ".site.build-x2" / "html").mkdir(parents=True)
    tree_mod.recover_output(out)
    assert (out / "html" / "index.html").read_bytes() == b"previous"
    assert leftovers(tmp_path) == []


def test_a_second_build_at_the_same_time_fails_naming_the_first(project, tmp_path):
    before = tree_hashes(project / "site")
    add_body_line(project, NEW_SENTENCE)
    flag = tmp_path / "paused"
    first = start_build(project, "results", flag)        # holds the lock, paused
    wait_paused(first, flag)
    second = start_build(project, None, tmp_path / "unused")
    code, out, err = finish(second)
    assert code == 1
    line = one_error_line(err)
    assert f"another build is running (pid {first.pid})" in line
    assert str(project / ".cache" / "lora-site" / "build.lock") in line
    assert "wait for it to finish" in line
    assert tree_hashes(project / "site") == before
    flag.unlink()                                         # let the first one finish
    code, out, err = finish(first)
    assert code == 0, err
    page = project / "site" / "html" / "lora-attention-geometry" / "index.html"
    assert NEW_SENTENCE in page.read_text(encoding="utf-8")
    assert leftovers(project) == []


def test_run_is_refused_while_a_build_holds_the_lock(project):
    """`lora-site run` writes content/_freeze, which a build reads: it takes the same lock."""
    from generator.core.project import Project

    before = tree_hashes(project / "content" / "_freeze")
    with lock_mod.build_lock(Project(project)):
        result = invoke("run", "--root", str(project), "--quiet")
    assert_one_line_error(result, [f"another build is running (pid {os.getpid()})",
                                   "build.lock"])
    assert tree_hashes(project / "content" / "_freeze") == before


def test_located_moves_an_error_without_repeating_it():
    from generator.core.errors import ConfigError, ContentError
    from generator.core.located import located, problem

    inner = ContentError("figure 'x' does not exist", hint="use one of a, b")
    assert problem(inner) == "figure 'x' does not exist"
    moved = located(inner, path="post.md", line=12)
    assert isinstance(moved, ContentError)
    assert moved.message == "post.md:12: figure 'x' does not exist (use one of a, b)"
    full = ConfigError("bad value", path="a  b.yml", line=3, field="rank", hint="fix  it")
    assert problem(full) == "bad value"
    assert located(full, path=None, line=None, field="--rank").message == \
        "--rank: bad value (fix it)"
