"""The two articles cannot disagree: the main article's sentences about each claim follow the
claims audit's verdicts, and the audit article refuses to build when a rebuilt audit stops
supporting a sentence it states.

Each test renders a post from the repository's frozen results with a copy of the audit summary
in which one verdict (with its count and interval) is flipped, and reads the sentences that
change. The verdicts themselves are never typed here: the unflipped render is checked against
the frozen audit's own verdicts.
"""
from __future__ import annotations

import copy
import re
from types import SimpleNamespace

import pytest

from generator.core.errors import ContentError
from generator.core.project import Project
from generator.kinds.claims_audit import KIND as AUDIT
from generator.kinds.claims_audit import SavedAudit
from generator.kinds.lora_results import load_result
from generator.plots.audit_figures import FIGURE_NAMES as AUDIT_FIGURE_NAMES
from generator.plots.common import image_files
from generator.plots.lora_figures import FIGURE_NAMES
from helpers import context
from site_checks import ARTICLE, COMPANION, REPO, make_project

# A verdict and counts that produce it with 200 seeds (Wilson interval at the 95% level).
FLIPS = {"holds": (200, [0.981155, 1.0]), "fails": (0, [0.0, 0.0188453]),
         "fragile": (100, [0.431313, 0.568687])}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return Project(make_project(tmp_path_factory.mktemp("verdicts")))


@pytest.fixture(scope="module")
def frozen(project):
    return AUDIT.load(project.freeze / "audit", "audit")


def flipped(audit: SavedAudit, setting: str, name: str, verdict: str) -> SavedAudit:
    """A copy of the audit whose claim (or control) ``name`` in ``setting`` has ``verdict``."""
    summary = copy.deepcopy(audit.summary)
    s = summary["settings"][setting]
    claim = s["claims"][name] if name in s["claims"] else s["controls"][name]
    held, ci = FLIPS[verdict]
    claim.update(held=held, n=200, fraction=held / 200, ci95=ci, verdict=verdict)
    for row in summary["table"]:
        if setting == "default" and row["claim"] == name:
            row.update(held=held, n=200, fraction=held / 200, ci95=ci, verdict=verdict)
    return SavedAudit(audit.name, summary, audit.path)


def render(project: Project, post_path, audit: SavedAudit) -> str:
    """The post's HTML body as plain text, rendered with this audit."""
    from generator.authoring.post_info import post_info
    from generator.authoring.posts import read_post
    from generator.authoring.site_config import load_site_config
    from generator.outputs.html import FORMAT as HTML
    from generator.render.post import render_post

    from generator.render.context import post_links

    site = load_site_config(project)
    ctx = context(project)
    infos = {p.stem: post_info(read_post(ctx, project.posts / p.name), site)
             for p in (ARTICLE, COMPANION)}
    info = infos[post_path.stem]
    saved = load_result(REPO / "content" / "_freeze" / "main")   # the run only; not rebuilt
    results = {"main": SimpleNamespace(config=saved.config, metrics=saved.metrics,
                                       provenance={}),
               "audit": audit}
    figures = {"main": {f: b"" for f in image_files(FIGURE_NAMES)},
               "audit": {f: b"" for f in image_files(AUDIT_FIGURE_NAMES)}}
    with ctx:
        # Each article links the other (post_url).
        r = render_post(ctx, info, site, results, figures, [HTML],
                        post_links({i.slug: i for i in infos.values()}, site, [HTML]))
    html = re.sub(r"</?(strong|em)>", "", r.parts["html"]["html"])     # inline: no space
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_main_article_quotes_each_claims_held_count_and_verdict(project, frozen):
    text = render(project, ARTICLE, frozen)
    word = {"holds": "robust", "fails": "refuted", "fragile": "fragile"}
    default = frozen.summary["settings"]["default"]["claims"]
    for name in ("diffuse_before", "reaches_target", "only_target_row", "score_change_localized",
                 "target_cosine_drops", "other_cosines_near_one", "target_update_dominates",
                 "update_is_rotation", "score_change_low_rank",
                 "queries_disturb_less_than_keys"):
        c = default[name]
        quoted = (f"holds in {c['held']} of {c['n']} seeds (95% interval {c['ci95'][0]:.2f} to "
                  f"{c['ci95'][1]:.2f}; {word[c['verdict']]})")
        assert quoted in text, name
    # The comparison with full fine-tuning, in the conclusion.
    c = default["lora_more_local_than_full"]
    assert f"in {c['held']} of {c['n']} seeds ({word[c['verdict']]})" in text


def test_the_rotation_sentences_follow_the_verdict(project, frozen):
    real = frozen.summary["settings"]["default"]["claims"]["update_is_rotation"]["verdict"]
    texts = {v: render(project, ARTICLE, flipped(frozen, "default", "update_is_rotation", v))
             for v in ("fails", "holds", "fragile")}
    assert "The audit settles the question" in texts["fails"]
    assert "the update is not a rotation (0 of 200" in texts["fails"]
    assert "the update is a rotation as a rule" in texts["holds"]
    assert "the update is a rotation (200 of 200" in texts["holds"]
    assert "The audit settles the question" not in texts["holds"]
    assert "sometimes a rotation, sometimes not" in texts["fragile"]
    assert "the update is not reliably a rotation (100 of 200" in texts["fragile"]
    assert render(project, ARTICLE, frozen) == texts[real]


def test_the_locality_sentences_follow_the_verdict(project, frozen):
    refuted = render(project, ARTICLE, flipped(frozen, "default", "only_target_row", "fails"))
    robust = render(project, ARTICLE, flipped(frozen, "default", "only_target_row", "holds"))
    assert "so the locality is partial" in refuted and "its locality is partial" in refuted
    assert "the locality is the rule" in robust and "its locality is the rule" in robust
    assert "so the locality is partial" not in robust


def test_the_conclusion_only_doubts_the_framing_while_the_comparisons_do(project, frozen):
    """"its fit to attention is what makes it work" is stated as unsupported while neither
    queries over keys nor LoRA over full fine-tuning is robust; make both robust and the
    conclusion concedes part of it."""
    doubt = "a reading the audit does not support: neither queries over keys nor LoRA over " \
            "full fine-tuning wins reliably"
    both = flipped(flipped(frozen, "default", "queries_disturb_less_than_keys", "holds"),
                   "default", "lora_more_local_than_full", "holds")
    text = render(project, ARTICLE, both)
    assert "a reading the audit supports only in part" in text and doubt not in text
    assert "Queries are the gentler place for this update" in text
    assert "served by queries or keys, queries somewhat better" in text
    real = frozen.summary["settings"]["default"]["claims"]
    if "holds" not in (real["queries_disturb_less_than_keys"]["verdict"],
                       real["lora_more_local_than_full"]["verdict"]):
        assert doubt in render(project, ARTICLE, frozen)
    if real["queries_disturb_less_than_keys"]["verdict"] == "fragile":
        assert "served by queries or keys alike" in render(project, ARTICLE, frozen)


def test_the_mechanism_is_credited_to_adam_only_while_gradient_descent_refutes_it(project,
                                                                                  frozen):
    sgd = frozen.summary["sgd_lr"]["setting"]
    credit = "a trace of Adam, not of LoRA"
    broken = render(project, ARTICLE, flipped(frozen, sgd, "leakage_follows_sign", "holds"))
    assert credit not in broken and "the optimizer does not settle it cleanly" in broken
    fixed = render(project, ARTICLE, flipped(frozen, sgd, "leakage_follows_sign", "fails"))
    assert credit in fixed and "The audit tests this causally" in fixed


def test_the_heldout_sentence_follows_the_verdict(project, frozen):
    moved = render(project, ARTICLE,
                   flipped(frozen, "default", "heldout_rows_unchanged", "fails"))
    kept = render(project, ARTICLE, flipped(frozen, "default", "heldout_rows_unchanged", "holds"))
    assert "the adapter still moves attention" in moved
    assert "the adapter leaves attention nearly unchanged" in kept


def test_the_audit_article_refuses_a_sentence_the_audit_stops_supporting(project, frozen):
    assert "The update is not a rotation." in render(project, COMPANION, frozen)
    with pytest.raises(ContentError, match="the audit no longer supports: the update is not a "
                                           "rotation"):
        render(project, COMPANION, flipped(frozen, "default", "update_is_rotation", "holds"))
    sgd = frozen.summary["sgd_lr"]["setting"]
    with pytest.raises(ContentError, match="gradient descent follows the dot product"):
        render(project, COMPANION, flipped(frozen, sgd, "leakage_follows_sign", "holds"))
