"""The audit: settings and sweeps, held fractions with Wilson intervals, files and the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import generator.audit as audit_mod
from generator.audit import (DEFAULT, SWEEPS, audit_json_bytes, format_table, min_seeds_to_hold,
                             run_audit, run_sets, save_audit, settings_for, verdict, wilson)
from generator.claims import CLAIMS, Claim, claim_holds
from generator.cli import main
from generator.errors import ConfigError
from generator.fsio import load_npz

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
        assert [p["value"] for p in info["points"]] == list(SWEEPS[sweep][1])
        for point in info["points"]:
            setting = s["settings"][point["setting"]]
            assert set(setting["claims"]) == {c.name for c in CLAIMS}
            assert {"leakage", "spectrum", "alignment", "queries", "amplification"} <= set(
                setting["geometry"])
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


def test_save_writes_sorted_json_and_an_npz_without_pickles(tmp_path, small_audit):
    path = tmp_path / "audit" / "audit.json"
    npz = save_audit(path, small_audit)
    assert npz == tmp_path / "audit" / "audit.npz"
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert "NaN" not in text and "Infinity" not in text
    arrays = load_npz(npz)
    assert sorted(arrays) == sorted(small_audit.arrays)
    before = path.read_bytes(), npz.read_bytes()
    save_audit(path, small_audit)
    assert (path.read_bytes(), npz.read_bytes()) == before


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
