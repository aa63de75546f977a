"""The body helpers that write blocks: listing() (folded when long, with its source caption) and
claims_table() (the audit's verdicts), their exact markup, and how both Markdown engines'
paths read them (Python-Markdown for the HTML site, the kramdown writer for Jekyll)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from generator.core.errors import ContentError
from generator.render.claims_table import claims_table
from generator.render.kramdown import to_kramdown
from generator.render.listings import (FOLD_LINES, ListingHelper, listing, listing_block)
from generator.render.markdown import Markdowner

REPO = Path(__file__).resolve().parents[1]
NO_REPO = SimpleNamespace(repository="")


def package_with(tmp_path: Path, lines: int) -> Path:
    """A package holding f<lines>(): a function of exactly ``lines`` lines."""
    pkg = tmp_path / "pkg"
    pkg.mkdir(parents=True, exist_ok=True)
    body = "\n".join(f"    x{i} = {i}" for i in range(lines - 2))
    (pkg / "mod.py").write_text(f"import os\n\n\ndef f{lines}():\n{body}\n    return 0\n",
                                encoding="utf-8")
    return pkg


def test_a_short_listing_is_a_figure_with_its_fence_and_caption(tmp_path):
    pkg = package_with(tmp_path, 3)
    out = ListingHelper(NO_REPO, None, package_dir=pkg)("mod", "f3")
    assert out == ('\n<figure class="listing" markdown="1">\n\n```python\ndef f3():\n'
                   '    x0 = 0\n    return 0\n```\n\n<figcaption class="listing-source">'
                   "<code>f3</code>: <code>pkg/mod.py</code>, lines 4\u20136</figcaption>\n"
                   "</figure>\n")


@pytest.mark.parametrize("lines, folded", [(FOLD_LINES, False), (FOLD_LINES + 1, True)])
def test_a_listing_folds_above_the_threshold(tmp_path, lines, folded):
    pkg = package_with(tmp_path, lines)
    out = ListingHelper(NO_REPO, None, package_dir=pkg)("mod", f"f{lines}")
    summary = (f'<details class="listing-fold" markdown="1">\n<summary><code>f{lines}</code> '
               f"from <code>pkg/mod.py</code> ({lines} lines)</summary>\n\n```python\n")
    assert (summary in out) is folded
    assert out.count("</details>") == int(folded)
    assert FOLD_LINES == 25


def test_fold_true_and_false_override_the_threshold(tmp_path):
    pkg = package_with(tmp_path, 3)
    helper = ListingHelper(NO_REPO, None, package_dir=pkg)
    assert "<details" in helper("mod", "f3", fold=True)
    pkg = package_with(tmp_path / "long", 40)
    assert "<details" not in ListingHelper(NO_REPO, None, package_dir=pkg)("mod", "f40",
                                                                          fold=False)
    with pytest.raises(ContentError, match="fold must be true or false, got 'yes'"):
        helper("mod", "f3", fold="yes")


def test_the_fence_is_longer_than_any_backtick_line_of_the_code():
    src = SimpleNamespace(text="s = '''\n```\n````\n'''", qualname="q", rel="generator/x.py",
                          lines=4)
    out = listing_block(src, fold=False, caption="c")
    assert "\n`````python\n" in out and out.count("`````") == 2


def test_both_engines_read_a_folded_listing_as_details_holding_the_highlighted_code():
    out = ListingHelper(NO_REPO, None)("lora", "LoRALinear")
    html = Markdowner(cache_file=None).to_html("Before.\n" + out + "\nAfter.").html
    assert re.search(r'<figure class="listing">\n<details class="listing-fold">\n<summary><code>'
                     r'LoRALinear</code> from <code>generator/science/lora.py</code> \(\d+ lines'
                     r'\)</summary>\n<div class="highlight"><pre tabindex="0">', html), html[:400]
    code = re.sub(r"<[^>]+>", "", html.split("<code>", 3)[3].split("</code></pre>")[0])
    assert code.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">") \
        .replace("&amp;", "&").rstrip("\n") == listing("lora", "LoRALinear")
    assert "<p>After.</p>" in html and "markdown=" not in html
    kramdown = to_kramdown(out)
    # The Jekyll writer keeps the figure, and gives the fence its focusable attribute list.
    assert kramdown.startswith('<figure class="listing" markdown="1">\n<details')
    assert '\n```\n{: tabindex="0"}\n\n</details>\n' in kramdown


def test_a_listing_of_code_that_looks_like_markup_stays_code(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "mod.py").write_text('def g():\n    """*not emphasis* <b>x</b> $x_1$\n\n    | a | b |\n'
                                '    |---|---|\n    """\n', encoding="utf-8")
    out = ListingHelper(NO_REPO, None, package_dir=pkg)("mod", "g")
    html = Markdowner(cache_file=None).to_html(out).html
    assert "*not emphasis* &lt;b&gt;x&lt;/b&gt; $x_1$" in html
    assert "| a | b |" in html
    for made in ("<em>", "<table", "arithmatex", "<b>"):
        assert made not in html, made
    kramdown = to_kramdown(out)
    assert '"""*not emphasis* <b>x</b> $x_1$\n\n    | a | b |' in kramdown     # code as written


# ---------------------------------------------------------------------------------------------
# claims_table


def audit(**row) -> dict:
    base = {"claim": "a", "verdict": "fails", "ci95": [0.0123, 0.0567], "held": 5, "n": 200,
            "median": 0.2264, "threshold": "\u2264 0.1"}
    return {"table": [{**base, **row}],
            "claims": [{"name": "a", "sentence": "Only <the> target & row", "statistic":
                        "largest change, over the target's"}]}


def test_the_claims_table_markup_is_exact():
    assert claims_table(audit()) == (
        '\n<table class="claims">\n<thead><tr><th scope="col">Verdict</th><th scope="col">Claim'
        '</th><th scope="col">Held (95% interval)</th><th scope="col">Holds when the statistic'
        " is</th></tr></thead>\n<tbody>\n"
        '<tr><td><span class="verdict verdict-fails">refuted</span></td><th scope="row">Only '
        "&lt;the&gt; target &amp; row</th><td data-label=\"held in\">5 of 200 "
        '<span class="interval">(0.01 to 0.06)</span></td><td><details><summary>'
        '<span class="card-label">statistic </span><span class="threshold">\u2264 0.1</span>'
        "</summary><p>largest change, over the target&#x27;s; median 0.226 over 200 seeds.</p>"
        "</details></td></tr>\n</tbody>\n</table>\n")


@pytest.mark.parametrize("verdict, word", [("holds", "robust"), ("fragile", "fragile"),
                                           ("fails", "refuted")])
def test_each_verdict_has_its_word_and_an_integer_median_prints_as_one(verdict, word):
    out = claims_table(audit(verdict=verdict, median=12.0))
    assert f'<span class="verdict verdict-{verdict}">{word}</span>' in out
    assert "median 12 over" in out


@pytest.mark.parametrize("bad, message", [
    ({"table": []}, "expects the claims audit's data"),
    ({"table": [], "claims": []}, "the audit has no claims"),
    ({"table": [{"claim": "zz"}], "claims": [{"name": "a"}]}, "no claim named 'zz'"),
    ({"table": [{"claim": "a"}], "claims": [{"name": "a"}]}, "claim 'a' lacks"),
])
def test_a_table_that_is_not_the_audit_is_an_error(bad, message):
    with pytest.raises(ContentError, match=re.escape(message)):
        claims_table(bad)


def test_the_real_audit_gives_one_row_per_claim_in_both_engines():
    summary = json.loads((REPO / "content/_freeze/audit/audit.json").read_text(encoding="utf-8"))
    out = claims_table(summary)
    assert out.count("<tr><td>") == len(summary["table"]) == 12
    verdicts = re.findall(r'verdict-(\w+)">', out)
    assert verdicts == [row["verdict"] for row in summary["table"]]
    for row in summary["table"]:
        assert f'{row["held"]} of {row["n"]} <span' in out
    # Raw HTML with no blank line: Python-Markdown passes it through whole, and the kramdown
    # writer leaves it as it is (no escaped "1." or ":" turned into a list or definition).
    html = Markdowner(cache_file=None).to_html(out).html
    assert html.strip() == out.strip()
    assert to_kramdown(out).strip() == out.strip()
