"""The audit: settings and sweeps, held fractions with Wilson intervals, files and the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import generator.science.audit as audit_mod
from generator.science.audit import (DEFAULT, SWEEPS, audit_files, audit_json_bytes, format_table,
                                     min_seeds_to_hold, run_audit, run_sets, settings_for,
                                     verdict, wilson)
from generator.science.claims import CLAIMS, CONTROL_CLAIMS, Claim, claim_holds
from generator.science.sweeps import SGD_LR_SWEEP, choose_sgd_lr, setting_for
from generator.cli import main
from generator.core.errors import ConfigError
from generator.core.fsio import load_npz

SEEDS = 6


@pytest.fixture(scope="module")
def small_audit():
    return run_audit(SEEDS, sweeps="default")


def test_wilson_interval_matches_textbook_values():
    lo, hi = wilson(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_verdict_rule_and_the_seed_count_it_implies():
    assert verdict(0.95, 1.0) == "holds"
    assert verdict(0.0, 0.3) == "fails"
    assert verdict(0.4, 0.8) == "fragile"
    n = min_seeds_to_hold()
    assert wilson(n, n)[0] >= 0.9 > wilson(n - 1, n - 1)[0]
    assert n <= 200   # the default seed count can show a claim holds


def test_sweeps_cover_the_issues_settings_and_reuse_the_default():
    assert SWEEPS["rank"][1] == (1, 2, 4, 8, 16, 32)
    assert SWEEPS["d_model"][1] == (16, 32, 64, 128, 256)
    assert SWEEPS["site"][1] == ("q", "k", "v", "full")
    assert SWEEPS["a_init"][1] == ("gaussian", "kaiming")
    assert "correlated" not in [v for v in SWEEPS["tokens"][1] if isinstance(v, str)]
    names = [s.name for s in settings_for("all")]
    assert names[0] == "default" and len(names) == len(set(names))
    # The default's own values are the default setting, not copies of it.
    for bad in ("rank=4", "d_model=64", "site=q", "a_init=gaussian", "tokens=0"):
        assert bad not in names
    assert {"rank=1", "rank=32", "d_model=16", "d_model=256", "site=k", "site=v", "site=full",
            "a_init=kaiming", "tokens=0.25", "tokens=0.75"} <= set(names)
    # The controls: the optimizer, each optimizer's learning rate, the stop probability up to
    # nearly converged training, and other (query, key) targets, one of them a token itself.
    assert SWEEPS["optimizer"][1] == ("adam", "sgd")
    assert SWEEPS["lr"][1][0] < 0.01 < SWEEPS["lr"][1][-1]
    assert max(SWEEPS["stop_prob"][1]) >= 0.9999 and min(SWEEPS["stop_prob"][1]) <= 0.5
    assert (4, 4) in SWEEPS["target"][1] and len(SWEEPS["target"][1]) >= 4
    for bad in ("lr=0.01", "stop_prob=0.9", "target=0,5", "optimizer=adam"):
        assert bad not in names
    assert {"lr=0.001", "lr=0.1", "stop_prob=0.9999", "target=4,4", "optimizer=sgd,lr=0.1",
            "optimizer=sgd,lr=3"} <= set(names)
    sgd = setting_for(SGD_LR_SWEEP, 0.3)
    assert sgd.config(7) == sgd.config(7).replace(optimizer="sgd", lr=0.3, seed=7)
    assert setting_for("target", (3, 8)).config(0).query == 3
    assert setting_for("optimizer", "sgd") is None        # chosen from the measured steps
    assert [s.name for s in settings_for("default")] == ["default"]
    with pytest.raises(ConfigError, match="sweep"):
        settings_for("some")


def test_paired_runs_only_for_lora_on_q():
    roles = run_sets(DEFAULT)
    assert sorted(roles) == ["full_q", "lora_k", "main"]
    assert dict(roles["lora_k"].overrides)["site"] == "k" and roles["full_q"].update == "full"
    by_name = {s.name: s for s in settings_for("all")}
    assert sorted(run_sets(by_name["site=k"])) == ["main"]
    assert sorted(run_sets(by_name["rank=8"])) == ["full_q", "lora_k", "main"]
    assert dict(run_sets(by_name["rank=8"])["lora_k"].overrides) == {"rank": 8, "site": "k"}


def test_table_counts_are_recomputed_from_the_per_run_values(small_audit):
    s = small_audit.summary
    assert [row["claim"] for row in s["table"]] == [c.name for c in CLAIMS]
    default = s["settings"]["default"]
    for claim in CLAIMS:
        row = default["claims"][claim.name]
        values = small_audit.arrays[f"default__claim__{claim.name}"]
        assert values.shape == (SEEDS,)
        threshold_stats = {"stop_prob": np.full(SEEDS, 0.9), "rank": np.full(SEEDS, 4)}
        held = claim_holds(claim, values.astype(np.float64), threshold_stats)
        assert row["held"] == int(held.sum()) and row["n"] == SEEDS
        lo, hi = wilson(row["held"], SEEDS)
        assert row["ci95"] == [pytest.approx(lo, rel=1e-5), pytest.approx(hi, rel=1e-5)]
        assert row["verdict"] == verdict(lo, hi)
        assert row["statistic"]["count"] == SEEDS
    # Per-run statistics of the default and of its partner runs are in the arrays.
    assert small_audit.arrays["default__main__seed"].tolist() == list(range(SEEDS))
    assert small_audit.arrays["default__lora_k__steps"].shape == (SEEDS,)
    assert small_audit.arrays["default__full_q__tv_others_max"].shape == (SEEDS,)


def test_failed_default_lists_exactly_the_claims_without_holds(small_audit):
    expected = [r["claim"] for r in small_audit.table() if r["verdict"] != "holds"]
    assert small_audit.failed_default() == expected


def test_audit_is_deterministic_for_a_seed_list():
    a = run_audit([3, 5, 8], sweeps="default")
    b = run_audit([3, 5, 8], sweeps="default")
    assert audit_json_bytes(a) == audit_json_bytes(b)
    assert sorted(a.arrays) == sorted(b.arrays)
    for name in a.arrays:
        assert a.arrays[name].tobytes() == b.arrays[name].tobytes(), name
    assert a.summary["seeds"] == {"first": 3, "last": 8, "count": 3, "contiguous": False}


def test_every_sweep_point_has_a_setting_with_claims_and_geometry():
    seen = []
    result = run_audit(2, sweeps="all", progress=lambda done, total: seen.append((done, total)))
    s = result.summary
    assert seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert sorted(s["sweeps"]) == sorted(SWEEPS)
    for sweep, info in s["sweeps"].items():
        assert [p["value"] for p in info["points"]] == json.loads(json.dumps(SWEEPS[sweep][1]))
        for point in info["points"]:
            setting = s["settings"][point["setting"]]
            assert set(setting["claims"]) == {c.name for c in CLAIMS}
            assert set(setting["controls"]) == {c.name for c in CONTROL_CLAIMS}
            assert {"leakage", "spectrum", "alignment", "queries", "amplification",
                    "heldout"} <= set(setting["geometry"])
            # Every setting's main runs were evaluated on fresh sequences.
            assert setting["geometry"]["heldout"]["tv_rowmax"]["count"] == 2
    # The optimizer sweep's gradient-descent point is the grid point the rule picks.
    rec = s["sgd_lr"]
    grid = list(SWEEPS[SGD_LR_SWEEP][1])
    assert rec["grid"] == grid
    assert rec["median_steps"] == [
        s["settings"][setting_for(SGD_LR_SWEEP, v).name]["geometry"]["steps"]["quantiles"]["0.5"]
        for v in grid]
    assert rec["adam_median_steps"] == s["settings"]["default"]["geometry"]["steps"][
        "quantiles"]["0.5"]
    assert rec["chosen"] == grid[choose_sgd_lr(rec["median_steps"], rec["adam_median_steps"])]
    assert s["sweeps"]["optimizer"]["points"][1] == {"value": "sgd", "setting": rec["setting"]}
    assert s["settings"][rec["setting"]]["config"]["optimizer"] == "sgd"
    assert s["settings"]["site=v"]["controls"]["heldout_rows_unchanged"] == {"applies": False}
    assert s["settings"]["site=k"]["controls"]["leakage_follows_sign"] == {"applies": False}
    assert s["settings"]["site=k"]["controls"]["heldout_rows_unchanged"]["applies"] is True
    assert s["settings"]["d_model=256"]["config"]["d_model"] == 256
    assert s["settings"]["site=full"]["update"] == "full"
    # Query claims do not apply when the update does not touch W_Q; paired ones only to LoRA-Q.
    assert s["settings"]["site=k"]["claims"]["update_is_rotation"] == {"applies": False}
    assert s["settings"]["site=full"]["claims"]["lora_more_local_than_full"] == {"applies": False}
    assert s["settings"]["site=full"]["claims"]["update_is_rotation"]["applies"] is True
    # The prediction sqrt(2 / (pi d)) is reported per d.
    for d in (16, 256):
        name = "default" if d == 64 else f"d_model={d}"
        assert s["settings"][name]["geometry"]["leakage"]["gaussian_prediction"] == \
            pytest.approx((2 / (np.pi * d)) ** 0.5, rel=1e-5)


def test_the_gradient_descent_learning_rate_rule():
    # Closest median steps to Adam's; the smaller learning rate (earlier in the grid) on a tie.
    assert choose_sgd_lr([23.0, 8.0, 4.0, 3.0, 2.0], 7.0) == 1
    assert choose_sgd_lr([23.0, 8.0, 6.0, 3.0], 7.0) == 1
    assert choose_sgd_lr([40.0, 30.0], 7.0) == 1
    assert choose_sgd_lr([2.0, 1.0], 7.0) == 0


def test_the_files_are_sorted_json_and_an_npz_without_pickles(tmp_path, small_audit):
    files = audit_files(small_audit)
    assert sorted(files) == ["audit.json", "audit.npz"]
    text = files["audit.json"].decode("utf-8")
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert "NaN" not in text and "Infinity" not in text
    (tmp_path / "audit.npz").write_bytes(files["audit.npz"])
    arrays = load_npz(tmp_path / "audit.npz")
    assert sorted(arrays) == sorted(small_audit.arrays)
    assert audit_files(small_audit) == files


def test_format_table_has_one_row_per_claim(small_audit):
    lines = format_table(small_audit).splitlines()
    assert lines[0].split()[:2] == ["claim", "statistic"]
    assert len(lines) == 2 + len(CLAIMS)
    for line, row in zip(lines[2:], small_audit.table()):
        assert line.startswith(row["claim"]) and f"{row['held']}/{row['n']}" in line


def test_cli_audit_writes_files_and_prints_the_table(tmp_path):
    (tmp_path / "content").mkdir()
    result = CliRunner().invoke(main, ["audit", "--root", str(tmp_path), "--seeds", "4",
                                       "--sweeps", "default"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "content" / "_freeze" / "audit" / "audit.json"
    assert out.is_file() and out.with_suffix(".npz").is_file()
    for claim in CLAIMS:
        assert claim.name in result.output
    data = json.loads(out.read_text())
    assert data["seeds"]["count"] == 4 and data["sweep_set"] == "default"


def test_cli_strict_exit_code_follows_the_default_verdicts(tmp_path, monkeypatch):
    out = tmp_path / "a.json"
    args = ["audit", "--seeds", "40", "--sweeps", "default", "--out", str(out), "--strict", "-q"]
    always = Claim("always", "s", "steps taken", "steps", ">=", 0.0, "a run takes >= 0 steps")
    never = Claim("never", "s", "steps taken", "steps", "<", 0.0, "a run takes >= 0 steps")
    monkeypatch.setattr(audit_mod, "CLAIMS", (always,))
    ok = CliRunner().invoke(main, args)
    assert ok.exit_code == 0, ok.output
    monkeypatch.setattr(audit_mod, "CLAIMS", (always, never))
    bad = CliRunner().invoke(main, args)
    assert bad.exit_code == 1
    assert "never" in bad.output and "always" not in bad.output.split(":")[-1]
    assert json.loads(out.read_text())["table"][1]["verdict"] == "fails"


def test_cli_rejects_bad_options_in_one_line(tmp_path):
    bad = CliRunner().invoke(main, ["audit", "--sweeps", "some", "--out", str(tmp_path / "a.json")])
    assert bad.exit_code == 2
    import torch
    if not torch.cuda.is_available():
        r = CliRunner().invoke(main, ["audit", "-q", "--seeds", "2", "--sweeps", "default",
                                      "--device", "cuda", "--out", str(tmp_path / "a.json")])
        assert r.exit_code == 1
        assert "CUDA" in r.output and len(r.output.strip().splitlines()) == 1
        assert not (tmp_path / "a.json").exists()


def test_audit_help_does_not_import_torch():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom generator.cli import main\n"
            "r = CliRunner().invoke(main, ['audit', '--help'])\n"
            "assert r.exit_code == 0 and '--strict' in r.output\n"
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------
# The audit's figures, and the audit in the build (kinds.claims_audit)

import shutil  # noqa: E402
import struct  # noqa: E402
import zlib  # noqa: E402

from generator.core.errors import ResultsError  # noqa: E402
from generator.core.fsio import npz_bytes, sha256_bytes  # noqa: E402
from generator.core.project import Project  # noqa: E402
from generator.kinds.claims_audit import ClaimsAudit  # noqa: E402
from generator.plots.audit_figures import FIGURE_NAMES as AUDIT_FIGURES  # noqa: E402
from generator.plots.audit_figures import render_audit_figures  # noqa: E402
from generator.plots.common import (SCALES, THEMES, image_filename, image_files,  # noqa: E402
                                    image_size)
from generator.stages import run  # noqa: E402
from generator.stages.run import StageOptions  # noqa: E402
from helpers import build, context, declared  # noqa: E402

REPO_SITE_YML = __import__("pathlib").Path(__file__).resolve().parents[1] / "content" / "site.yml"


@pytest.fixture(scope="module")
def all_audit():
    return run_audit(2, sweeps="all")


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == \
            zlib.crc32(kind + body)
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def test_audit_figures_are_deterministic_pngs_of_the_article_size(all_audit):
    images = render_audit_figures(all_audit.summary, all_audit.arrays)
    assert sorted(images) == sorted(image_files(AUDIT_FIGURES))
    again = render_audit_figures(all_audit.summary, all_audit.arrays)
    assert images == again
    for name in AUDIT_FIGURES:
        for theme in THEMES:
            for scale in SCALES:
                chunks = _png_chunks(images[image_filename(name, scale, theme)])
                kinds = [k for k, _ in chunks]
                assert not {b"tEXt", b"iTXt", b"zTXt", b"tIME"} & set(kinds)
                width, height = struct.unpack(">II", chunks[0][1][:8])
                assert (width, height) == image_size(scale)
        # The two themes are two drawings, not one picture twice.
        assert images[image_filename(name, 1)] != images[image_filename(name, 1, THEMES[1])]


def test_audit_figures_need_the_sweeps(small_audit):
    with pytest.raises(ResultsError, match="sweeps"):
        render_audit_figures(small_audit.summary, small_audit.arrays)


AUDIT_POST = """---
title: Audit post
date: 2026-01-12 10:00:00 +0530
experiments:
  audit: {kind: audit, seeds: 2}
data:
  - audit
---
{{ data.audit.seeds.count }} seeds; {{ data.audit.table | length }} claims.

{{ figure('audit_leakage', 'Leakage.', experiment='audit') }}
"""


@pytest.fixture
def audit_project(tmp_path, monkeypatch):
    """A project whose post declares a 2-seed audit (the article's trains 200 per setting).
    Drawing is replaced by stand-in bytes that name the audit they came from: these tests are
    about what is reused, recomputed and written (the drawing has its own test above), so they
    draw in this process, where the stand-in applies (tests/test_drawing.py covers workers)."""
    def fake_draw(self, folder, names):
        summary = json.loads((folder / "audit.json").read_text())
        tag = json.dumps(summary["seeds"], sort_keys=True).encode()
        return {f: b"PNG " + f.encode() + tag for f in image_files(names)}

    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")
    monkeypatch.setattr(ClaimsAudit, "draw", fake_draw)
    (tmp_path / "content" / "posts").mkdir(parents=True)
    shutil.copy(REPO_SITE_YML, tmp_path / "content" / "site.yml")
    shutil.copy(REPO_SITE_YML.parents[1] / "requirements.lock", tmp_path / "requirements.lock")
    (tmp_path / "content" / "posts" / "audit-post.md").write_text(AUDIT_POST, encoding="utf-8")
    return Project(tmp_path)


def audit_stage(project: Project, **options) -> dict[str, bytes]:
    """The run and figures stages of the project's audit alone, in a context of its own."""
    with context(project) as ctx:
        d = declared(ctx)["audit"]
        opts = StageOptions(**options)
        images = run.figures_of(ctx, d, run.result_of(ctx, d, opts), opts)
        run.store_of(ctx).save()
        return dict(images)


def manifest_entry(project: Project) -> dict:
    return json.loads((project.freeze / "manifest.json").read_text())["experiments"]["audit"]


def test_stage_computes_then_reuses_and_frozen_refuses_stale(audit_project):
    project = audit_project
    with pytest.raises(ResultsError, match="frozen results of experiment 'audit' are stale"):
        audit_stage(project, frozen=True)
    said: list[str] = []
    images = audit_stage(project, explain=said.append)
    assert said[0].startswith("run audit: ran (no frozen results")
    assert said[1].startswith("figures audit: drew")
    folder = project.freeze / "audit"
    for name in ("audit.json", "audit.npz"):
        assert (folder / name).is_file()
    assert sorted(p.name for p in (folder / "figures").iterdir()) == sorted(images)
    entry = manifest_entry(project)
    assert entry["kind"] == "audit" and entry["inputs"]["config"]["seeds"] == 2
    assert "generator/science/batched.py" in entry["inputs"]["sources"]
    said.clear()
    assert audit_stage(project, frozen=True, explain=said.append) == images
    assert said[0].startswith("run audit: reused frozen results")
    assert said[1].startswith("figures audit: reused")
    # An edited audit is stale: a frozen build says so, a normal one recomputes.
    (folder / "audit.json").write_text("{}")
    with pytest.raises(ResultsError, match="edited"):
        audit_stage(project, frozen=True)
    said.clear()
    assert audit_stage(project, explain=said.append) == images
    assert said[0].startswith("run audit: ran (audit.json was edited or truncated")
    # A deleted frozen figure: a frozen build names it (as for every experiment), a normal
    # build redraws it.
    (folder / "figures" / image_filename("audit_spectrum", 1)).unlink()
    with pytest.raises(ResultsError, match=r"audit_spectrum.png: frozen figure of experiment "
                                           r"'audit' is missing"):
        audit_stage(project, frozen=True)
    said.clear()
    assert audit_stage(project, explain=said.append) == images
    assert said[1].startswith("figures audit: reused (inputs unchanged")
    assert (folder / "figures" / image_filename("audit_spectrum", 1)).is_file()


def test_cli_audit_records_the_build_audit_only_with_the_declared_settings(audit_project):
    root = str(audit_project.root)
    ok = CliRunner().invoke(main, ["audit", "--root", root, "--seeds", "2", "-q"])
    assert ok.exit_code == 0, ok.output
    said: list[str] = []
    audit_stage(audit_project, frozen=True, explain=said.append)
    assert said[0].startswith("run audit: reused frozen results")
    other = CliRunner().invoke(main, ["audit", "--root", root, "--seeds", "2", "-q",
                                      "--sweeps", "default"])
    assert other.exit_code == 0, other.output
    assert "audit" not in json.loads((audit_project.freeze / "manifest.json").read_text())[
        "experiments"]
    with pytest.raises(ResultsError, match="not recorded in content/_freeze/manifest.json"):
        audit_stage(audit_project, frozen=True)


def test_a_missing_audit_names_the_file(audit_project):
    with pytest.raises(ResultsError) as err:
        ClaimsAudit().load(audit_project.freeze / "audit", "audit")
    assert "audit.json" in err.value.message and "lora-site audit" in err.value.message


def test_a_post_reading_the_audit_builds_with_its_figures_in_both_trees(audit_project):
    out = audit_project.root / "out"
    build(audit_project, out=out)
    html = (out / "html" / "audit-post" / "index.html").read_text()
    assert f"2 seeds; {len(CLAIMS)} claims." in html
    assert 'src="/assets/images/audit/audit_leakage.png"' in html
    for name in AUDIT_FIGURES:
        for f in image_files([name]):
            assert (out / "html" / "assets" / "images" / "audit" / f).is_file()
        # The Jekyll post links the light drawing (1x, its 2x as the full-resolution view),
        # and the tree holds no dark one.
        jekyll_images = out / "jekyll" / "assets" / "images" / "audit"
        assert (jekyll_images / image_filename(name, 1)).is_file()
        assert (jekyll_images / image_filename(name, 2)).is_file()
        assert not (jekyll_images / image_filename(name, 1, THEMES[1])).exists()
        assert not (jekyll_images / image_filename(name, 2, THEMES[1])).exists()
    assert '<source media="(prefers-color-scheme: dark)" srcset="/assets/images/audit/' \
        'audit_leakage-dark.png 1x, /assets/images/audit/audit_leakage-dark@2x.png 2x">' in html
    jekyll = next((out / "jekyll" / "_posts").glob("*-audit-post.md")).read_text()
    assert "(/assets/images/audit/audit_leakage.png)" in jekyll
    # The frozen audit is enough for a frozen rebuild with the same bytes.
    build(audit_project, frozen=True, out=audit_project.root / "again")
    for path in sorted((out / "html").rglob("*")):
        if path.is_file():
            twin = audit_project.root / "again" / "html" / path.relative_to(out / "html")
            assert twin.read_bytes() == path.read_bytes(), path


def test_data_names_an_experiment_or_declares_the_kind_that_offers_it(audit_project):
    """`data: [audit]` reads the experiment called audit when the post declares one (of any
    kind), and otherwise declares the claims audit with its default settings; a name neither
    an experiment nor a kind offers is an error."""
    from generator.core.errors import ContentError
    from generator.kinds.claims_audit import AuditSettings

    (audit_project.posts / "audit-post.md").unlink()
    (audit_project.posts / "plain.md").write_text(
        "---\ntitle: t\ndate: 2026-01-12\n---\nHello.\n", encoding="utf-8")
    with context(audit_project) as ctx:
        assert declared(ctx) == {}
    (audit_project.posts / "plain.md").write_text(
        "---\ntitle: t\ndate: 2026-01-12\ndata:\n  - audit\n---\nHi.\n", encoding="utf-8")
    with context(audit_project) as ctx:
        d = declared(ctx)["audit"]
        assert isinstance(d.kind, ClaimsAudit) and d.settings == AuditSettings()
    (audit_project.posts / "plain.md").write_text(
        "---\ntitle: t\ndate: 2026-01-12\nexperiments:\n  audit: {}\ndata:\n  - audit\n---\n"
        "Hi.\n", encoding="utf-8")
    with context(audit_project) as ctx:
        assert declared(ctx)["audit"].kind.name == "lora"
    (audit_project.posts / "plain.md").write_text(
        "---\ntitle: t\ndate: 2026-01-12\ndata:\n  - nothing\n---\nHi.\n", encoding="utf-8")
    with context(audit_project) as ctx, pytest.raises(ContentError,
                                                      match="no data loader named 'nothing'"):
        declared(ctx)


def _audit_from_elsewhere(project, delta: float) -> bytes:
    """Make content/_freeze/audit a consistent freeze whose per-run statistics differ from what
    this machine computes by ``delta`` in one value; return its audit.npz bytes."""
    folder = project.freeze / "audit"
    arrays = load_npz(folder / "audit.npz")
    name = "default__main__target_weight_after"
    arrays[name] = arrays[name].copy()
    arrays[name][0] += np.float32(delta)
    data = npz_bytes(arrays)
    (folder / "audit.npz").write_bytes(data)
    manifest = json.loads((project.freeze / "manifest.json").read_text())
    manifest["experiments"]["audit"]["files"]["audit.npz"] = sha256_bytes(data)
    (project.freeze / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True)
                                                  + "\n")
    return data


def test_a_recomputed_audit_within_tolerance_keeps_the_committed_bytes(audit_project):
    audit_stage(audit_project)
    planted = _audit_from_elsewhere(audit_project, 2e-7)
    folder = audit_project.freeze / "audit"
    entry = manifest_entry(audit_project)
    said: list[str] = []
    audit_stage(audit_project, force=True, explain=said.append,
                warn=lambda line: pytest.fail(f"warned: {line}"))
    assert (folder / "audit.npz").read_bytes() == planted
    assert said[0].startswith("run audit: ran (--force; key ")
    assert "; matches the frozen results within atol=1e-06, rtol=1e-06 (max |diff| " in said[0]
    assert said[0].endswith("): kept the committed bytes")
    assert manifest_entry(audit_project)["files"] == entry["files"]


def test_a_recomputed_audit_beyond_tolerance_is_rewritten_and_reported(audit_project):
    audit_stage(audit_project)
    planted = _audit_from_elsewhere(audit_project, 1e-2)
    warned: list[str] = []
    audit_stage(audit_project, force=True, warn=warned.append)
    folder = audit_project.freeze / "audit"
    assert (folder / "audit.npz").read_bytes() != planted
    assert len(warned) == 1 and warned[0].startswith(
        "run audit: differs from the frozen results beyond atol=1e-06, rtol=1e-06 (1 "
        "difference(s): arrays.default__main__target_weight_after: 1 of ")
    # Consistent again: a frozen build reuses it.
    said: list[str] = []
    audit_stage(audit_project, frozen=True, explain=said.append)
    assert said[0].startswith("run audit: reused frozen results")


def test_audit_json_numbers_are_compared_to_their_rounding(audit_project):
    """audit.json keeps six significant digits, so a last-bit change upstream can move the
    sixth digit by one: that is within tolerance; a change in the fifth digit is not."""
    audit_stage(audit_project)
    folder = audit_project.freeze / "audit"
    files = {n: (folder / n).read_bytes() for n in ("audit.json", "audit.npz")}
    doc = json.loads(files["audit.json"])
    target = doc["settings"]["default"]["geometry"]["leakage"]
    base = target["sign_gaussian_prediction"]                     # 0.125 = 1/sqrt(64)
    for bump, ok in ((1e-6, True), (1e-4, False)):
        target["sign_gaussian_prediction"] = base + bump
        fresh = dict(files, **{"audit.json": json.dumps(doc).encode()})
        diffs, worst = ClaimsAudit().compare(fresh, folder, 1e-6, 1e-6)
        assert (diffs == []) is ok, diffs
        assert worst == pytest.approx(bump)


def test_verify_covers_the_audit_and_says_how_it_matched(audit_project):
    from generator.core import numerics

    audit_stage(audit_project)
    root = str(audit_project.root)
    ok = CliRunner().invoke(main, ["verify", "--root", root, "-q"])
    assert ok.exit_code == 0, ok.output
    line = next(x for x in ok.output.splitlines() if x.startswith("audit: "))
    assert line.startswith("audit: bit-exact match with the frozen results (numerics: "
                           f"{numerics.current().describe()}")
    _audit_from_elsewhere(audit_project, 2e-7)
    near = CliRunner().invoke(main, ["verify", "--root", root, "-q"])
    assert near.exit_code == 0, near.output
    assert "audit: matches the frozen results within atol=1e-06, rtol=1e-06, max |diff| " \
        in near.output
    _audit_from_elsewhere(audit_project, 1e-2)
    bad = CliRunner().invoke(main, ["verify", "--root", root, "-q"])
    assert bad.exit_code == 1
    assert "audit: arrays.default__main__target_weight_after: 1 of 2 values differ" in bad.output
    assert "difference(s) between re-run and frozen results in: audit" in bad.output
