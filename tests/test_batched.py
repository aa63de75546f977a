"""The batched engine reproduces run_experiment run by run, and freezes finished runs exactly."""
from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from generator.science.attention import TinySelfAttention
from generator.science.batched import RunSpec, initial_tensors, train_batched
from generator.science.config import ExperimentConfig
from generator.core.errors import ConfigError
from generator.science.experiment import build_model, make_tokens, run_experiment
from generator.science.metrics import compute_metrics

TOL = 1e-5

# One shape (d, n, r) = (64, 10, 4); everything else varies, including the learning rate (a
# separate Adam group inside the batch), a run that starts above stop_prob (0 steps), one cut by
# max_steps, LoRA on K, another target pair, the Kaiming A init and plain gradient descent (its
# own group, on Q and on K).
MIXED = [
    ExperimentConfig(seed=0),
    ExperimentConfig(seed=1),
    ExperimentConfig(seed=2, a_init="kaiming"),
    ExperimentConfig(seed=3, tokens="correlated", token_corr=0.3, alpha=4.0),
    ExperimentConfig(seed=4, stop_prob=0.05),
    ExperimentConfig(seed=5, max_steps=3),
    ExperimentConfig(seed=6, site="k"),
    ExperimentConfig(seed=7, lr=0.02, query=2, key=7),
    ExperimentConfig(seed=8, stop_prob=0.99, a_std=0.05),
    ExperimentConfig(seed=9, optimizer="sgd", lr=0.1),
    ExperimentConfig(seed=10, optimizer="sgd", lr=0.3, site="k", query=4, key=4),
]


def _max_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    return float(np.abs(a - b).max()) if a.size else 0.0


def _metric_diff(x, y) -> float:
    """|x - y| in units of max(1, |y|): absolute below 1, relative above (angles in degrees
    magnify a float32 rounding of a cosine near 1 by 57 / sin(angle))."""
    if isinstance(x, list):
        assert len(x) == len(y)
        return max((_metric_diff(u, v) for u, v in zip(x, y)), default=0.0)
    if x is None or isinstance(x, (bool, int, str)):
        assert x == y
        return 0.0
    return abs(x - y) / max(1.0, abs(y))


@pytest.fixture(scope="module")
def mixed_batch():
    return train_batched(MIXED, trace_weights=True)


@pytest.mark.parametrize("cfg", [
    ExperimentConfig(seed=11),
    ExperimentConfig(seed=12, d_model=16, rank=2, a_init="kaiming"),
    ExperimentConfig(seed=13, d_model=32, rank=8, tokens="correlated"),
    ExperimentConfig(seed=14, d_model=128, seq_len=6, rank=1),
])
def test_initial_tensors_are_build_models_draws_bit_for_bit(cfg):
    X, attn, lora = build_model(cfg)
    init = initial_tensors(cfg)
    assert torch.equal(init["X"], X)
    assert torch.equal(init["A"], lora.A)
    assert torch.equal(init["W_q"], attn.q_proj.base.weight)
    assert torch.equal(init["W_k"], attn.k_proj.weight)
    assert torch.equal(init["W_v"], attn.v_proj.weight)


@pytest.mark.parametrize("i", range(len(MIXED)))
def test_each_run_of_a_batch_matches_the_run_trained_alone(mixed_batch, i):
    cfg = MIXED[i]
    alone = run_experiment(cfg)
    mine = mixed_batch.run_arrays(i)
    assert sorted(mine) == sorted(alone.arrays)
    assert int(mixed_batch.arrays["steps"][i]) == alone.provenance["steps"]
    for name in ("delta_w", "A", "B"):
        assert _max_diff(mine[name], alone.arrays[name]) <= TOL, name
    for name in sorted(alone.arrays):
        assert _max_diff(mine[name], alone.arrays[name]) <= TOL, name
    metrics = compute_metrics(cfg, mine)
    assert sorted(metrics) == sorted(alone.metrics)
    for key in sorted(alone.metrics):
        assert _metric_diff(alone.metrics[key], metrics[key]) <= TOL, key


def test_batch_covers_the_edge_cases_it_claims_to(mixed_batch):
    steps = mixed_batch.arrays["steps"]
    assert steps[4] == 0                    # started above stop_prob: no step at all
    assert steps[5] == 3                    # cut by max_steps
    assert len(set(steps.tolist())) > 2     # runs really stop at different times


def test_a_finished_run_is_frozen_exactly(mixed_batch):
    a = mixed_batch.run_arrays(4)           # zero steps: A is its init, B is still zero
    init = initial_tensors(MIXED[4])
    assert np.array_equal(a["A"], init["A"].numpy())
    assert not a["B"].any() and not a["delta_w"].any()
    assert np.array_equal(a["weights_after"], a["weights_before"])
    # Traces stop at each run's own end and are NaN after it.
    s = int(mixed_batch.arrays["steps"][5])
    assert np.isnan(mixed_batch.arrays["loss"][5, s:]).all()
    assert np.isfinite(mixed_batch.arrays["target_prob"][5, :s + 1]).all()


def test_alignment_trace_is_the_projection_of_x_query_on_rowspace_of_A(mixed_batch):
    for i in (0, 7):
        cfg, a = MIXED[i], mixed_batch.run_arrays(i)
        xq = a["X"][cfg.query].astype(np.float64)
        for A, got in ((initial_tensors(cfg)["A"].numpy(), mixed_batch.arrays["a_align"][i, 0]),
                       (a["A"], mixed_batch.arrays["a_align"][i, int(mixed_batch.arrays["steps"][i])])):
            coef, *_ = np.linalg.lstsq(A.T.astype(np.float64), xq, rcond=None)
            proj = A.T.astype(np.float64) @ coef
            assert got == pytest.approx(np.linalg.norm(proj) / np.linalg.norm(xq), rel=1e-5)


def _full_reference(cfg: ExperimentConfig):
    """Full fine-tuning of one site's weight with a plain torch loop (no batching)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    X = make_tokens(cfg, gen)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
        attn = TinySelfAttention(cfg.d_model)
    for p in attn.parameters():
        p.requires_grad_(False)
    weight = getattr(attn, f"{cfg.site}_proj").weight
    w0 = weight.detach().clone()
    weight.requires_grad_(True)
    opt = (torch.optim.SGD([weight], lr=cfg.lr) if cfg.optimizer == "sgd"
           else torch.optim.Adam([weight], lr=cfg.lr))
    steps = 0
    while True:
        out = attn(X)
        if float(out.weights[cfg.query, cfg.key].detach()) >= cfg.stop_prob or steps >= cfg.max_steps:
            break
        loss = F.cross_entropy(out.scores[cfg.query:cfg.query + 1], torch.tensor([cfg.key]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    return steps, (weight.detach() - w0).numpy(), attn(X).weights.detach().numpy()


def test_full_fine_tuning_matches_a_plain_torch_loop():
    cfgs = [ExperimentConfig(seed=s, lr=0.001) for s in range(3)] + \
           [ExperimentConfig(seed=9, lr=0.001, site="k", max_steps=4),
            ExperimentConfig(seed=10, optimizer="sgd", lr=0.03),
            ExperimentConfig(seed=11, optimizer="sgd", lr=0.03, site="k")]
    batch = train_batched([RunSpec(c, "full") for c in cfgs])
    for i, cfg in enumerate(cfgs):
        steps, dw, weights = _full_reference(cfg)
        assert int(batch.arrays["steps"][i]) == steps
        assert steps >= 2                 # Adam state really carried between steps
        assert _max_diff(batch.arrays["delta_w"][i], dw) <= TOL
        assert _max_diff(batch.arrays["weights_after"][i], weights) <= TOL
        assert np.isnan(batch.arrays["A"][i]).all()   # no LoRA factors in a full run


def test_lora_on_v_cannot_move_attention_and_runs_to_max_steps():
    cfgs = [ExperimentConfig(seed=1, site="v", max_steps=7),
            ExperimentConfig(seed=2, site="v", max_steps=4)]
    batch = train_batched(cfgs)
    assert batch.arrays["steps"].tolist() == [7, 4]
    for i, cfg in enumerate(cfgs):
        a = batch.run_arrays(i)
        assert np.array_equal(a["A"], initial_tensors(cfg)["A"].numpy())
        assert not a["B"].any()
        assert np.array_equal(a["weights_after"], a["weights_before"])
        assert a["loss"].shape == (cfg.max_steps,) and len(set(a["loss"].tolist())) == 1
        assert a["target_prob"].shape == (cfg.max_steps + 1,)
    assert np.isnan(batch.arrays["loss"][1, 4:]).all()


def test_same_batch_twice_gives_identical_bytes():
    cfgs = [ExperimentConfig(seed=s, d_model=16) for s in range(5)]
    a, b = train_batched(cfgs), train_batched(cfgs)
    assert sorted(a.arrays) == sorted(b.arrays)
    for name in a.arrays:
        assert a.arrays[name].tobytes() == b.arrays[name].tobytes(), name


def test_progress_reports_every_run_once():
    seen = []
    train_batched([ExperimentConfig(seed=s, d_model=16) for s in range(4)],
                  progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (4, 4)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_bad_batches_are_config_errors():
    with pytest.raises(ConfigError, match="share"):
        train_batched([ExperimentConfig(d_model=16), ExperimentConfig(d_model=32)])
    with pytest.raises(ConfigError, match="update"):
        RunSpec(ExperimentConfig(), "half")
    with pytest.raises(ConfigError, match="no runs"):
        train_batched([])
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            train_batched([ExperimentConfig(d_model=16)], device="cuda")


def test_thread_count_is_restored():
    before = torch.get_num_threads()
    train_batched([ExperimentConfig(seed=0, d_model=16)], threads=1)
    assert torch.get_num_threads() == before


def test_gradient_descent_runs_really_are_plain_gradient_descent(mixed_batch):
    """A gradient-descent run with B = 0 at the start: the first step cannot move A (its
    gradient is proportional to B), so after one step A is still its init exactly, which Adam's
    normalised step would not keep either (it moves every coordinate with a non-zero moment)."""
    cfg = ExperimentConfig(seed=9, optimizer="sgd", lr=0.1, max_steps=1)
    one = train_batched([cfg]).run_arrays(0)
    assert np.array_equal(one["A"], initial_tensors(cfg)["A"].numpy())
    assert one["B"].any()
    assert int(mixed_batch.arrays["steps"][MIXED.index(ExperimentConfig(seed=9, optimizer="sgd",
                                                                        lr=0.1))]) >= 2


# ---------------------------------------------------------------------------------------------
# Held-out sequences

def test_heldout_attention_of_a_batch_is_the_trained_head_run_on_fresh_sequences():
    """The batched evaluation on fresh sequences equals, run by run, the single engine's
    trained modules applied to the same fresh sequences (LoRA on Q and on K, gradient descent,
    correlated tokens, full fine-tuning)."""
    from generator.science.heldout import HELDOUT_SEQUENCES, fresh_tokens, heldout_of_run
    from generator.science.lora import LoRALinear

    specs = [RunSpec(ExperimentConfig(seed=0)), RunSpec(ExperimentConfig(seed=1, site="k")),
             RunSpec(ExperimentConfig(seed=2, optimizer="sgd", lr=0.1)),
             RunSpec(ExperimentConfig(seed=3, tokens="correlated", token_corr=0.5)),
             RunSpec(ExperimentConfig(seed=4, lr=0.003), "full")]
    m = 3
    batch = train_batched(specs, heldout=m)
    assert batch.arrays["heldout_X"].shape == (len(specs), m, 10, 64)
    for i, spec in enumerate(specs):
        cfg = spec.config
        fresh = fresh_tokens(cfg, m)
        assert np.array_equal(batch.arrays["heldout_X"][i], fresh.numpy())
        # The trained head as modules: build_model's head, the run's update put in its layer.
        _, attn, lora = build_model(cfg)
        dw = torch.from_numpy(batch.arrays["delta_w"][i])
        with torch.no_grad():
            before = attn(fresh).weights
            if spec.update == "lora" and isinstance(lora, LoRALinear):
                lora.A.copy_(torch.from_numpy(batch.arrays["A"][i]))
                lora.B.copy_(torch.from_numpy(batch.arrays["B"][i]))
            after = attn(fresh).weights if spec.update == "lora" else None
        assert _max_diff(batch.arrays["heldout_weights_before"][i], before.numpy()) <= TOL
        single = heldout_of_run(cfg, dw, m)
        assert _max_diff(batch.arrays["heldout_weights_after"][i],
                         single["weights_after"].numpy()) <= TOL
        if after is not None:
            assert _max_diff(batch.arrays["heldout_weights_after"][i], after.numpy()) <= TOL
        assert _max_diff(batch.arrays["heldout_dproj_norm"][i],
                         single["dproj"].norm(dim=-1).numpy()) <= TOL
    # Different seeds draw different fresh sequences, none of them the training sequence.
    assert not np.array_equal(batch.arrays["heldout_X"][0], batch.arrays["heldout_X"][1])
    for i in range(len(specs)):
        assert not np.isclose(batch.arrays["heldout_X"][i], batch.arrays["X"][i][None]).all()
    assert HELDOUT_SEQUENCES >= 8


def test_fresh_sequences_follow_the_training_distribution():
    """Correlated fresh tokens share one component within a sequence, at the configured
    expected cosine, as experiment.make_tokens' tokens do (checked on many sequences)."""
    from generator.science.heldout import fresh_tokens

    cfg = ExperimentConfig(seed=5, tokens="correlated", token_corr=0.5, d_model=256)
    x = fresh_tokens(cfg, 64).double()                                   # (64, n, d)
    unit = x / x.norm(dim=-1, keepdim=True)
    cos = unit @ unit.transpose(-1, -2)                                  # (64, n, n)
    off = ~torch.eye(cfg.seq_len, dtype=torch.bool)
    assert float(cos[:, off].mean()) == pytest.approx(0.5, abs=0.05)
    plain = fresh_tokens(ExperimentConfig(seed=5, d_model=256), 64).double()
    pu = plain / plain.norm(dim=-1, keepdim=True)
    assert abs(float((pu @ pu.transpose(-1, -2))[:, off].mean())) < 0.02
