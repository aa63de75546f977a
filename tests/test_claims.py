"""The claims registry and the per-run statistics the claims read."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from generator.science.batched import RunSpec, train_batched
from generator.science.claims import (CLAIMS, CLAIMS_BY_NAME, CONTROL_CLAIMS, Claim, applies,
                                     claim_holds, claim_values)
from generator.science.runstats import run_statistics
from generator.science.config import ExperimentConfig
from generator.science.metrics import compute_metrics

CFGS = [ExperimentConfig(seed=s) for s in range(3)] + [ExperimentConfig(seed=3, query=4, key=1)]


@pytest.fixture(scope="module")
def batch():
    return train_batched(CFGS)


@pytest.fixture(scope="module")
def stats(batch):
    return run_statistics(batch)


def test_registry_has_the_issues_claims_each_with_a_reasoned_threshold():
    names = [c.name for c in CLAIMS]
    assert len(names) == len(set(names)) >= 10
    for required in ("diffuse_before", "reaches_target", "only_target_row",
                     "score_change_localized", "target_cosine_drops", "other_cosines_near_one",
                     "target_update_dominates", "update_is_rotation", "score_change_low_rank",
                     "queries_disturb_less_than_keys", "lora_more_local_than_full"):
        assert required in CLAIMS_BY_NAME
    for c in CLAIMS:
        assert c.sentence and c.statistic and c.why
        assert c.op in ("<=", "<", ">=", "between")
        assert c.partner in (None, "lora_k", "full_q")


def test_statistics_agree_with_compute_metrics(batch, stats):
    for i, cfg in enumerate(CFGS):
        m = compute_metrics(cfg, batch.run_arrays(i))
        pairs = {"target_weight_before": "target_weight_before",
                 "target_weight_after": "target_weight_after",
                 "tv_target": "tv_target", "tv_others_max": "tv_others_max",
                 "dq_ratio": "dq_ratio", "cos_q_target": "cos_target",
                 "cos_q_others_min": "cos_others_min",
                 "q_norm_ratio_target": "q_norm_ratio_target",
                 "dscore_target": "dscore_target",
                 "dscore_offtarget_absmax": "dscore_offtarget_absmax",
                 "dscore_rank": "dscore_rank", "steps": "steps", "delta_w_fro": "delta_w_fro",
                 "max_weight_before": "max_weight_before"}
        for mk, sk in pairs.items():
            assert stats[sk][i] == pytest.approx(m[mk], rel=1e-6, abs=1e-9), mk
        assert stats["tv_rows"][i] == pytest.approx(m["tv_rows"], abs=1e-9)
        assert stats["cos_q"][i] == pytest.approx(m["cos_q"], abs=1e-9)
        sv = m["delta_w_singular_values"]
        # The low-rank route and a dense float32 SVD agree to float32 rounding of delta W.
        assert stats["delta_w_singular_values"][i, :len(sv)] == pytest.approx(sv, abs=1e-6 * sv[0])
        assert np.isnan(stats["delta_w_singular_values"][i, len(sv):]).all()


def test_derived_statistics_follow_their_definitions(batch, stats):
    for i, cfg in enumerate(CFGS):
        a = batch.run_arrays(i)
        q, k, n = cfg.query, cfg.key, cfg.seq_len
        assert stats["target_weight_over_uniform"][i] == pytest.approx(
            a["weights_before"][q, k] * n, rel=1e-6)
        assert stats["tv_other_over_target"][i] == pytest.approx(
            stats["tv_others_max"][i] / stats["tv_target"][i])
        dq = (a["Q_after"].astype(np.float64) - a["Q_before"])
        norms = np.linalg.norm(dq, axis=1)
        assert stats["leakage"][i] == pytest.approx(norms / norms[q], rel=1e-9)
        x = a["X"].astype(np.float64)
        assert stats["leakage_dot_pred"][i] == pytest.approx(
            np.abs(x @ x[q]) / (x[q] @ x[q]), rel=1e-9)
        assert stats["leakage_sign_pred"][i] == pytest.approx(
            np.abs(x @ np.sign(x[q])) / np.abs(x[q]).sum(), rel=1e-9)
        others = [j for j in range(n) if j != q]
        cos = stats["cos_q"][i]
        assert stats["cos_others_median"][i] == pytest.approx(np.median(cos[others]))


def _amplification_dense(dw: np.ndarray, w: np.ndarray, r: int) -> float:
    u, s, vt = np.linalg.svd(dw)
    return np.linalg.norm(dw) / np.linalg.norm(u[:, :r].T @ w @ vt[:r].T)


def test_spectrum_and_amplification_match_a_dense_svd_for_lora_and_full(batch, stats):
    for i in range(len(CFGS)):
        a = batch.run_arrays(i)
        dw = (2.0 * a["B"].astype(np.float64)) @ a["A"].astype(np.float64)   # alpha / r = 2
        s = np.linalg.svd(dw, compute_uv=False)
        assert stats["sigma2_over_sigma1"][i] == pytest.approx(s[1] / s[0], rel=1e-6)
        for k, key in ((4, "amplification"), (1, "amplification_top1")):
            assert stats[key][i] == pytest.approx(
                _amplification_dense(dw, a["W_base"].astype(np.float64), k), rel=1e-6)
    full = train_batched([RunSpec(c, "full") for c in CFGS[:2]])
    st = run_statistics(full)
    for i in range(2):
        dw = full.arrays["delta_w"][i].astype(np.float64)
        s = np.linalg.svd(dw, compute_uv=False)
        assert st["delta_w_singular_values"][i] == pytest.approx(s[:8], abs=1e-7 * s[0])
        # Past the first, full fine-tuning's singular vectors are noise: only top-1 is defined.
        assert st["amplification_top1"][i] == pytest.approx(
            _amplification_dense(dw, full.arrays["W_base"][i].astype(np.float64), 1), rel=1e-6)
        assert np.isnan(st["amplification"][i])
        assert np.isnan(st["a_align_final"][i])


def test_amplification_on_a_hand_made_update(batch):
    """delta W = 3 e1 e1^T on W = 2 I: U^T W V = 2, so the factor is 3 / 2 exactly."""
    fake = copy.deepcopy(batch)
    d = CFGS[0].d_model
    fake.specs = tuple(RunSpec(c.replace(rank=1), "full") for c in CFGS)
    dw = np.zeros((len(CFGS), d, d), dtype=np.float32)
    dw[:, 0, 0] = 3.0
    fake.arrays["delta_w"] = dw
    fake.arrays["W_base"] = np.broadcast_to(2 * np.eye(d, dtype=np.float32), dw.shape).copy()
    st = run_statistics(fake)
    assert st["amplification"] == pytest.approx([1.5] * len(CFGS))
    assert st["amplification_top1"] == pytest.approx([1.5] * len(CFGS))
    assert st["delta_w_fro"] == pytest.approx([3.0] * len(CFGS))
    assert st["sigma2_over_sigma1"] == pytest.approx([0.0] * len(CFGS), abs=1e-7)


def test_alignment_statistics_read_the_trace(batch, stats):
    for i in range(len(CFGS)):
        trace = batch.arrays["a_align"][i]
        steps = int(batch.arrays["steps"][i])
        assert stats["a_align_init"][i] == pytest.approx(trace[0])
        assert stats["a_align_final"][i] == pytest.approx(trace[steps])
        assert 0.0 <= stats["a_align_sign_final"][i] <= 1.0 + 1e-12


def test_claim_holds_reads_op_threshold_and_never_holds_on_nan():
    st = {"x": np.array([0.4, 0.5, 2.0, 2.5, np.nan]), "limit": np.array([1, 1, 3, 2, 1.0])}
    def c(op, threshold):
        return Claim("t", "s", "x", "x", op, threshold, "why")
    v = st["x"]
    assert claim_holds(c("between", (0.5, 2.0)), v, st).tolist() == [False, True, True, False, False]
    assert claim_holds(c("<=", 0.5), v, st).tolist() == [True, True, False, False, False]
    assert claim_holds(c("<", 0.5), v, st).tolist() == [True, False, False, False, False]
    assert claim_holds(c(">=", 2.0), v, st).tolist() == [False, False, True, True, False]
    # A threshold named by a statistic is read per run.
    assert claim_holds(c(">=", "limit"), v, st).tolist() == [False, False, False, True, False]


def test_paired_claims_are_ratios_to_the_partner_run():
    claim = CLAIMS_BY_NAME["queries_disturb_less_than_keys"]
    main = {"tv_others_max": np.array([0.1, 0.3, 0.2])}
    partner = {"tv_others_max": np.array([0.2, 0.1, 0.0])}
    values = claim_values(claim, main, partner)
    assert values[:2] == pytest.approx([0.5, 3.0])
    assert np.isinf(values[2])                  # a partner that did not move: no ratio
    assert claim_holds(claim, values, main).tolist() == [True, False, False]
    with pytest.raises(ValueError):
        claim_values(claim, main, None)


def test_which_claims_apply_to_which_update():
    query_only = {c.name for c in CLAIMS if c.query_only}
    paired = {c.name for c in CLAIMS if c.partner}
    for c in CLAIMS:
        assert applies(c, "q", "lora")
        assert applies(c, "q", "full") == (c.name not in paired)
        assert applies(c, "k", "lora") == (c.name not in query_only | paired)
        assert applies(c, "v", "lora") == (c.name not in query_only | paired)


def test_control_claims_apply_where_their_statistic_means_something():
    heldout = CLAIMS_BY_NAME["heldout_rows_unchanged"]
    sign = CLAIMS_BY_NAME["leakage_follows_sign"]
    assert {c.name for c in CONTROL_CLAIMS} == {heldout.name, sign.name}
    assert not {c.name for c in CONTROL_CLAIMS} & {c.name for c in CLAIMS}
    # LoRA on V cannot move attention at all: "unchanged on fresh sequences" would be empty.
    assert [applies(heldout, s, "lora") for s in ("q", "k", "v")] == [True, True, False]
    assert applies(heldout, "q", "full")
    # Leakage is measured on the query side only.
    assert [applies(sign, s, u) for s, u in (("q", "lora"), ("q", "full"), ("k", "lora"))] == [
        True, True, False]


def test_leakage_error_ratio_follows_its_definition(batch, stats):
    for i, cfg in enumerate(CFGS):
        others = [j for j in range(cfg.seq_len) if j != cfg.query]
        leak = stats["leakage"][i, others]
        err_sign = np.abs(leak - stats["leakage_sign_pred"][i, others]).mean()
        err_dot = np.abs(leak - stats["leakage_dot_pred"][i, others]).mean()
        assert stats["leakage_sign_error_over_dot"][i] == pytest.approx(err_sign / err_dot)


def test_heldout_statistics_follow_their_definitions():
    assert "heldout_tv_rowmax" not in run_statistics(train_batched(CFGS[:1]))
    for specs in ([RunSpec(c) for c in CFGS[:2]], [RunSpec(CFGS[2], "full")]):
        _check_heldout(specs)


def _check_heldout(specs):
    hb = train_batched(specs, heldout=4)
    st = run_statistics(hb)
    for i, spec in enumerate(specs):
        a = hb.arrays
        tv = 0.5 * np.abs(a["heldout_weights_after"][i].astype(np.float64)
                          - a["heldout_weights_before"][i]).sum(-1)          # (m, n)
        assert st["heldout_tv_rowmax"][i] == pytest.approx(tv.max(-1).mean())
        assert st["heldout_tv_over_target"][i] == pytest.approx(
            tv.max(-1).mean() / st["tv_target"][i])
        assert st["heldout_tv_over_others"][i] == pytest.approx(
            tv.max(-1).mean() / st["tv_others_max"][i])
        x0 = a["X"][i, spec.config.query].astype(np.float64)
        fresh = a["heldout_X"][i].astype(np.float64)                           # (m, n, d)
        dq = fresh @ a["delta_w"][i].astype(np.float64).T
        assert st["heldout_leakage_mean"][i] == pytest.approx(
            (np.linalg.norm(dq, axis=-1) / st["dq_norm_target"][i]).mean(), rel=1e-5)
        assert st["heldout_sign_pred_mean"][i] == pytest.approx(
            (np.abs(fresh @ np.sign(x0)) / np.abs(x0).sum()).mean())


def test_the_leakage_follows_the_sign_under_adam_and_the_dot_product_under_sgd():
    """The mechanism's causal test, in miniature: the same seeds trained with Adam and with
    plain gradient descent; the sign prediction wins every Adam run and loses every SGD run."""
    seeds = range(12)
    adam = run_statistics(train_batched([ExperimentConfig(seed=s) for s in seeds]))
    sgd = run_statistics(train_batched([ExperimentConfig(seed=s, optimizer="sgd", lr=0.1)
                                        for s in seeds]))
    claim = CLAIMS_BY_NAME["leakage_follows_sign"]
    assert claim_holds(claim, claim_values(claim, adam), adam).all()
    assert not claim_holds(claim, claim_values(claim, sgd), sgd).any()


def test_claim_values_on_real_runs_match_their_statistic(stats):
    for c in CLAIMS:
        if c.partner is None:
            assert np.array_equal(claim_values(c, stats), stats[c.key].astype(np.float64),
                                  equal_nan=True)
    # The rank claim compares with each run's own rank.
    rank_claim = CLAIMS_BY_NAME["score_change_low_rank"]
    held = claim_holds(rank_claim, claim_values(rank_claim, stats), stats)
    assert held.tolist() == (stats["dscore_rank"] <= 4).tolist()


def test_claim_texts_are_safe_in_a_markdown_table_cell():
    # The companion article prints them in a table: a pipe would split the cell, and _ * `
    # would start emphasis or code in one of the two Markdown dialects.
    for c in CLAIMS + CONTROL_CLAIMS:
        assert c.label and len(c.label) <= 30, c.name
        for text in (c.sentence, c.statistic, c.why, c.threshold_text(), c.label):
            assert not set("|_*`") & set(text), (c.name, text)
