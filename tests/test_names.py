"""The reserved experiment names hold every name render/ gives a post body, and no more than
the ones it documents."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from generator.authoring.names import (BODY_NAMES, HELPER_NAMES, RESERVED, TEMPLATE_GLOBALS,
                                       name_problem, suggest)
from generator.render.context import body_context, figure_anchor
from generator.render.jinja import make_body_env


def test_every_global_of_the_body_environment_is_reserved():
    assert set(make_body_env().globals) == set(TEMPLATE_GLOBALS)
    assert set(TEMPLATE_GLOBALS) <= RESERVED


def test_every_name_the_body_context_passes_is_reserved():
    post = SimpleNamespace(experiments={}, data=(), path=Path("p.md"), meta={})
    info = SimpleNamespace(post=post, title="t", description="", slug="p")
    fmt = SimpleNamespace(name="html", post_url=lambda info, site: "/p/")
    ctx, _ = body_context(info, SimpleNamespace(baseurl=""), {}, {}, fmt, None)
    assert set(ctx) == set(BODY_NAMES)
    assert set(BODY_NAMES) <= set(HELPER_NAMES)


def test_names_and_suggestions():
    assert name_problem("main") is None and name_problem("keys_exp") is None
    assert suggest("keys-exp") == "keys_exp" and suggest("2nd") == "exp_2nd"
    assert suggest("range") == "range_exp" and suggest("Big Run") == "big_run"
    for bad in ("keys-exp", "Main", "_x", "2nd", "a.b", ""):
        assert "is not a name a post body can use" in name_problem(bad)[0], bad
    for reserved in ("range", "namespace", "argmax", "figure", "listing", "data", "site", "page",
                     "experiments", "target", "loop", "true", "for", "lambda", "match"):
        assert "would hide the body's own" in name_problem(reserved)[0], reserved


def test_figure_anchors_are_unique_per_experiment_and_showing():
    assert figure_anchor("main", "before_lora", 0) == "fig-before_lora"
    assert figure_anchor("other", "before_lora", 0) == "fig-other-before_lora"
    assert figure_anchor("main", "before_lora", 1) == "fig-before_lora-2"
