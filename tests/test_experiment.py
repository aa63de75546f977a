import numpy as np
import pytest

from generator.science.config import ExperimentConfig, experiment_from_mapping
from generator.core.errors import ConfigError, ExperimentError
from generator.science.experiment import run_experiment


@pytest.fixture(scope="module")
def default_run():
    return run_experiment(ExperimentConfig())


def test_defaults_reach_stop_prob_from_a_diffuse_start(default_run):
    cfg, m = default_run.config, default_run.metrics
    assert (cfg.d_model, cfg.seq_len, cfg.rank, cfg.alpha, cfg.query, cfg.key) == (64, 10, 4, 8.0, 0, 5)
    assert m["reached_stop_prob"] is True
    assert m["target_weight_after"] >= cfg.stop_prob
    # Before training the target weight is near uniform 1/n: within a factor 2 of 0.1.
    assert 0.5 / cfg.seq_len < m["target_weight_before"] < 2.0 / cfg.seq_len
    assert 1 <= m["steps"] < cfg.max_steps
    assert m["steps"] == len(default_run.arrays["loss"])
    # Target prob is recorded before each step and once after the last one.
    assert len(default_run.arrays["target_prob"]) == m["steps"] + 1
    assert default_run.arrays["target_prob"][-1] >= cfg.stop_prob


def test_only_the_query_projection_changed(default_run):
    a = default_run.arrays
    assert np.array_equal(a["K_before"], a["K_after"])
    assert np.array_equal(a["V_before"], a["V_after"])
    assert not np.array_equal(a["Q_before"], a["Q_after"])
    # delta Q = X delta_W^T, exactly what the LoRA branch adds.
    dq = a["Q_after"] - a["Q_before"]
    assert np.allclose(dq, a["X"] @ a["delta_w"].T, atol=1e-5)


def test_metrics_are_consistent_with_arrays(default_run):
    a, m, cfg = default_run.arrays, default_run.metrics, default_run.config
    assert m["target_weight_before"] == pytest.approx(float(a["weights_before"][0, 5]))
    assert m["delta_w_rank"] <= cfg.rank
    assert len(m["cos_q"]) == cfg.seq_len and all(-1 <= c <= 1 + 1e-9 for c in m["cos_q"])
    assert m["dq_norm"][0] == pytest.approx(float(np.linalg.norm(a["Q_after"][0] - a["Q_before"][0])), rel=1e-5)
    tv = 0.5 * np.abs(a["weights_after"] - a["weights_before"]).sum(-1)
    assert m["tv_rows"] == pytest.approx(tv.tolist(), abs=1e-6)
    assert m["trainable_params"] == 4 * (64 + 64)


def test_same_config_bit_identical_and_seed_matters(default_run):
    again = run_experiment(ExperimentConfig())
    assert again.arrays.keys() == default_run.arrays.keys()
    for name in default_run.arrays:
        assert np.array_equal(again.arrays[name], default_run.arrays[name]), name
    other = run_experiment(ExperimentConfig(seed=1))
    assert not np.array_equal(other.arrays["X"], default_run.arrays["X"])
    assert not np.array_equal(other.arrays["W_base"], default_run.arrays["W_base"])


def test_target_pair_is_a_setting():
    r = run_experiment(ExperimentConfig(key=7, query=2, d_model=16, max_steps=300))
    assert r.metrics["reached_stop_prob"]
    assert r.arrays["weights_after"][2, 7] >= 0.9


def test_max_steps_caps_training():
    r = run_experiment(ExperimentConfig(max_steps=2, lr=1e-4))
    assert r.metrics["steps"] == 2 and not r.metrics["reached_stop_prob"]


def test_non_finite_loss_is_a_clear_error():
    with pytest.raises(ExperimentError, match="non-finite loss.*step") as exc:
        run_experiment(ExperimentConfig(lr=1e30, alpha=1e30, max_steps=50, stop_prob=0.999999))
    assert "lower lr" in exc.value.message


@pytest.mark.parametrize("field,value,words", [
    ("rank", 0, "rank"), ("rank", 65, "rank"), ("key", 10, "key"), ("seq_len", 1, "seq_len"),
    ("lr", 0.0, "lr"), ("lr", float("nan"), "lr"), ("max_steps", 0, "max_steps"),
    ("stop_prob", 1.0, "stop_prob"), ("site", "o", "site"),
])
def test_invalid_values_are_rejected(field, value, words):
    with pytest.raises(ConfigError, match=words):
        experiment_from_mapping({field: value}, source="post.md", prefix="experiments.main.")


def test_unknown_key_suggests_a_fix():
    with pytest.raises(ConfigError) as exc:
        experiment_from_mapping({"rnak": 4}, source="post.md")
    assert "did you mean 'rank'" in exc.value.message and "post.md" in exc.value.message


def test_lora_on_values_cannot_move_attention():
    """Scores do not depend on W_V: training runs to max_steps, changes nothing, reaches nothing."""
    r = run_experiment(ExperimentConfig(site="v", max_steps=5, d_model=16))
    assert r.metrics["steps"] == 5 and r.metrics["reached_stop_prob"] is False
    assert np.array_equal(r.arrays["weights_before"], r.arrays["weights_after"])
    assert np.count_nonzero(r.arrays["B"]) == 0


def test_lora_on_keys_reaches_the_target_and_leaves_queries_alone():
    r = run_experiment(ExperimentConfig(site="k", d_model=32))
    assert r.metrics["reached_stop_prob"] is True
    assert np.array_equal(r.arrays["Q_before"], r.arrays["Q_after"])
    assert not np.array_equal(r.arrays["K_before"], r.arrays["K_after"])
