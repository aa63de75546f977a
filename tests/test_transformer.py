"""The trained transformer and the steering experiment on one of its heads.

A tiny configuration (2 layers x 2 heads, d = 32, context 32, 300 steps: a few seconds) stands
in for the article's model. Covered: the corpus as extracted from CPython's help texts; the
model trained bit for bit the same in two fresh processes, and the steering result too; the
steering measurements' invariants (other heads exactly unchanged, merged and unmerged updates
agree, the rank-one leak of gradient descent exactly as predicted); both kinds through the
cache, the freeze, --frozen and verify, with the model reused when only the steering settings
change; the dependency between experiments; settings errors as one line naming the post.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import REPO, write_post
from generator.cli import main

TINY_LM = dict(n_layer=2, n_head=2, d_model=32, ctx=32, steps=300, batch=32, lr=0.02,
               warmup=20, eval_every=100)
TINY_STEER = dict(model="lm", layer=1, head=1, sgd_lr=1.0, heldout=8)
HELD_TOPICS = ["attribute-references", "break", "debugger", "formatstrings", "lambda", "raise",
               "truth", "while"]


def flow(mapping: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}"


@pytest.fixture(scope="module")
def lm_files():
    from generator.kinds.transformer_lm import KIND
    from generator.science.lm_config import LMSettings
    from generator.science.settings_io import from_mapping

    return KIND.compute("lm", from_mapping(LMSettings, TINY_LM))


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory, lm_files):
    folder = tmp_path_factory.mktemp("lm")
    for name, data in lm_files.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def steered(lm_folder):
    """(metrics, arrays) of the tiny steering run."""
    from generator.kinds.transformer_lm import KIND
    from generator.science.steering import steering_result
    from generator.science.settings_io import from_mapping
    from generator.science.steering_config import SteeringSettings

    saved = KIND.load(lm_folder, "lm")
    doc, arrays = steering_result("steer", from_mapping(SteeringSettings, TINY_STEER),
                                  saved.doc, saved.arrays())
    return doc["metrics"], arrays


# ---------------------------------------------------------------------------------------------
# The corpus

def test_the_corpus_is_cpythons_help_split_by_topic():
    from generator.science.corpus import VOCAB, decode, load_corpus, parse_topics, topics_path
    from generator.science.lm_config import TOPICS_SHA256_3_11_7

    if hashlib.sha256(open(topics_path(), "rb").read()).hexdigest() != TOPICS_SHA256_3_11_7:
        pytest.skip("another Python release: its help texts are another corpus")
    c = load_corpus(TOPICS_SHA256_3_11_7, 10, 6)
    assert c.stats["topics"] == 79 and list(c.held_topics) == HELD_TOPICS
    assert (c.stats["train_chars"], c.stats["held_chars"]) == (398425, 50006)
    assert round(c.stats["unigram_held_nats"] / 0.6931471805599453, 3) == 4.659
    train, held = decode(c.train), decode(c.held)
    assert set(train + held) <= set(VOCAB)
    # Split by document: a held-out page is nowhere in the training text.
    topics = parse_topics(open(topics_path(), "rb").read())
    assert held.startswith("Attribute references") and "Attribute references\n" not in train
    assert len(topics) == 79


def test_another_corpus_is_refused_by_its_hash():
    from generator.core.errors import ExperimentError
    from generator.science.corpus import load_corpus

    with pytest.raises(ExperimentError, match=r"corpus_sha256: .*topics.py has sha256 .*, not "
                                              r"the 000000000000\.\.\. the settings name"):
        load_corpus("0" * 64, 10, 6)


# ---------------------------------------------------------------------------------------------
# Determinism: two fresh processes, the same bytes

def _compute_in_children(job: dict, count: int = 2) -> list[dict[str, bytes]]:
    """The files ``count`` fresh `worker_main compute` processes answer for one job, run side
    by side (the build's own child-process path, the upstream loading included)."""
    from generator.stages.workers import child_env, read_files

    procs = [subprocess.Popen([sys.executable, "-m", "generator.stages.worker_main", "compute"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env())
             for _ in range(count)]
    for p in procs:
        p.stdin.write((json.dumps(job) + "\n").encode())
        p.stdin.close()
    out = []
    for p in procs:
        answer = read_files(p.stdout)
        p.stdout.close()
        assert p.wait() == 0 and isinstance(answer, dict), answer
        out.append(answer)
    return out


def test_model_and_steering_are_bit_identical_across_fresh_processes(lm_files, lm_folder):
    from generator.science.lm_config import LMSettings
    from generator.science.settings_io import from_mapping
    from generator.science.steering_config import SteeringSettings

    lm_job = {"kind_module": "generator.kinds.transformer_lm", "name": "lm",
              "settings": from_mapping(LMSettings, TINY_LM).to_dict()}
    first, second = _compute_in_children(lm_job)
    assert first == second == lm_files          # and the same as this process computed
    steer_job = {"kind_module": "generator.kinds.head_steering", "name": "steer",
                 "settings": from_mapping(SteeringSettings, TINY_STEER).to_dict(),
                 "upstream": {"lm": {"kind_module": "generator.kinds.transformer_lm",
                                     "folder": str(lm_folder)}}}
    first, second = _compute_in_children(steer_job)
    assert first == second
    doc = json.loads(first["steering.json"])
    assert doc["model"]["weights_sha256"] == json.loads(lm_files["training.json"])["npz_sha256"]
    assert "time" not in json.dumps(doc["provenance"])          # no clock in a result


# ---------------------------------------------------------------------------------------------
# What the steering measurements must satisfy

def test_only_the_steered_head_and_what_reads_it_change(steered):
    metrics, _ = steered
    for method in ("lora", "full", "sgd"):
        m = metrics[method]
        # The other heads of the layer and every earlier layer: bit for bit unchanged.
        assert m["tv_same_layer_max"] == 0.0 and m["tv_earlier_layers_max"] == 0.0
        # The merged update and the branch compute the same model.
        assert m["merge_max_abs_diff"] < 1e-5
        assert m["held_loss_merged"] == pytest.approx(m["held_loss_branch"], abs=1e-6)
        assert m["held_loss_delta"] == pytest.approx(
            m["held_loss_merged"] - metrics["base"]["held_loss"], abs=1e-12)
        assert m["target_before"] == pytest.approx(metrics["base"]["target_weight"], abs=1e-7)
        assert m["reached"] == (m["target_after"] >= 0.9)
        assert 0 < m["tv_target_row"] <= 1 and 0 <= m["tv_others_mean"] <= m["tv_others_max"]


def test_the_leak_is_the_rank_one_prediction(steered):
    metrics, arrays = steered
    sgd, full, lora = metrics["sgd"], metrics["full"], metrics["lora"]
    # Gradient descent: the update is g x_i^T exactly, so every query moves |x_i.x_m|/|x_i.x_i|
    # as far as the steered one.
    assert sgd["dw_rank"] == 1 and sgd["dw_v1_cos_x"] > 1 - 1e-9
    assert sgd["fit_x"]["r"] > 1 - 1e-9 and sgd["fit_x"]["slope"] == pytest.approx(1, abs=1e-6)
    assert sgd["dq_ratio"] == pytest.approx(metrics["base"]["leak_x"], rel=1e-6)
    # Adam: the right factor is sign(x_i), to within its normalisation's drift.
    assert full["dw_v1_cos_sign_x"] > 0.999 and full["fit_sign"]["r"] > 0.999
    assert lora["dw_v1_cos_sign_x"] > 0.99
    assert lora["dw_rank"] <= TINY_STEER.get("rank", 4)
    d, dh = TINY_LM["d_model"], TINY_LM["d_model"] // TINY_LM["n_head"]
    assert lora["trainable_params"] == 4 * (d + dh) and full["trainable_params"] == d * dh
    for method in ("lora", "full", "sgd"):
        curve = arrays[f"{method}_prob_curve"]
        assert len(curve) == metrics[method]["steps"] + 1
        assert curve[-1] == metrics[method]["target_after"]
        assert arrays[f"{method}_held_loss_change"].mean() == pytest.approx(
            metrics[method]["held_loss_delta"], abs=1e-12)


def test_steering_leaves_the_model_as_it_found_it(lm_folder):
    import numpy as np

    from generator.kinds.transformer_lm import KIND, model_of
    from generator.science.corpus import load_corpus
    from generator.science.steering import steer
    from generator.science.transformer import state_arrays
    from generator.science.lm_config import LMSettings
    from generator.science.settings_io import from_mapping
    from generator.science.steering_config import SteeringSettings

    saved = KIND.load(lm_folder, "lm")
    model = model_of(saved)
    lm = from_mapping(LMSettings, saved.doc["settings"])
    corpus = load_corpus(lm.corpus_sha256, lm.holdout_every, lm.holdout_at)
    steer(model, corpus, from_mapping(SteeringSettings, {**TINY_STEER, "max_steps": 5}))
    after = state_arrays(model)
    assert all(np.array_equal(after[k], v) for k, v in saved.arrays().items())
    assert all(b.attn.q_delta is None for b in model.blocks)


@pytest.mark.parametrize("change, message", [
    ({"head": 9}, "head: the model has heads 0..1, got 9"),
    ({"layer": 2}, "layer: the model has layers 0..1, got 2"),
    ({"query": 40}, "query: must lie in 1..31"),
    ({"query": 5, "key": 5}, "key: must precede the query 5"),
])
def test_settings_the_model_cannot_take_are_errors(lm_folder, change, message):
    from generator.core.errors import ExperimentError
    from generator.kinds.transformer_lm import KIND
    from generator.science.steering import steering_result
    from generator.science.settings_io import from_mapping
    from generator.science.steering_config import SteeringSettings

    saved = KIND.load(lm_folder, "lm")
    with pytest.raises(ExperimentError) as err:
        steering_result("s", from_mapping(SteeringSettings, {**TINY_STEER, **change}),
                        saved.doc, saved.arrays())
    assert message in err.value.message or message in str(err.value)


# ---------------------------------------------------------------------------------------------
# Both kinds through the stages

BODY = ("Held-out {{ lm.training.final_held_bits | fmt(3) }} bits per character; LoRA took "
        "{{ steer.metrics.lora.steps }} steps.\n\n"
        "{% call figure('lm_training', experiment='lm') %}Training.{% endcall %}\n\n"
        "{% call figure('steer_row', experiment='steer') %}The row.{% endcall %}\n")


SITE_YML = 'title: "T"\ndescription: "d"\nauthor: "A"\nurl: "https://example.org"\n'


def cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res.exit_code, res.output


def experiments_yaml(lm: dict, steer: dict) -> str:
    return (f"  lm: {flow({'kind': 'transformer', **lm})}\n"
            f"  steer: {flow({'kind': 'steering', **steer})}\n")


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "0")
    write_post(tmp_path, experiments=experiments_yaml(TINY_LM, TINY_STEER), body=BODY)
    (tmp_path / "content" / "site.yml").write_text(SITE_YML)
    return tmp_path


def site_files(root):
    return {p.relative_to(root / "site"): p.read_bytes()
            for p in sorted((root / "site").rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_steering_reads_the_frozen_model_and_reruns_alone(project):
    code, out = cli("build", "--root", project, "--explain")
    assert code == 0, out
    assert "run lm: ran (no frozen results" in out and "run steer: ran (no frozen results" in out
    assert out.index("run lm: ran") < out.index("run steer: ran")
    freeze = project / "content" / "_freeze"
    manifest = json.loads((freeze / "manifest.json").read_text())["experiments"]
    lm_hashes = manifest["lm"]["files"]
    assert manifest["steer"]["inputs"]["upstream"] == {"lm": lm_hashes}
    training = json.loads((freeze / "lm" / "training.json").read_text())
    html = (project / "site" / "html" / "post" / "index.html").read_text()
    assert f"Held-out {training['training']['final_held_bits']:.3f} bits" in html
    assert 'src="/assets/images/steer/steer_row.png"' in html

    # A steering setting changes: the model is reused, only the steering runs again.
    write_post(project, experiments=experiments_yaml(TINY_LM, {**TINY_STEER, "lr": 0.02}),
               body=BODY)
    code, out = cli("build", "--root", project, "--explain")
    assert code == 0, out
    assert "run lm: reused (inputs unchanged" in out
    assert "run steer: ran (config lr 0.01 -> 0.02;" in out
    assert json.loads((freeze / "manifest.json").read_text())["experiments"]["lm"]["files"] \
        == lm_hashes

    # From the freeze alone, the same site; verify re-computes both, bit for bit.
    before = site_files(project)
    shutil.rmtree(project / ".cache")
    shutil.rmtree(project / "site")
    code, out = cli("build", "--root", project, "--frozen", "--explain")
    assert code == 0, out
    assert "run lm: reused frozen results" in out and "run steer: reused frozen results" in out
    assert site_files(project) == before
    code, out = cli("verify", "--root", project, "-q")
    assert code == 0, out
    assert "lm: bit-exact match" in out and "steer: bit-exact match" in out

    # The model changes: a frozen build names it; a build retrains it, then the steering,
    # saying why.
    write_post(project, experiments=experiments_yaml({**TINY_LM, "data_seed": 2},
                                                     {**TINY_STEER, "lr": 0.02}), body=BODY)
    code, out = cli("build", "--root", project, "--frozen")
    assert code == 1 and "experiment 'lm' are stale: config data_seed 1 -> 2" in out
    code, out = cli("build", "--root", project, "--explain")
    assert code == 0, out
    assert "run lm: ran (config data_seed 1 -> 2;" in out
    assert "run steer: ran (the result of experiment 'lm' changed;" in out


@pytest.mark.parametrize("experiments, message", [
    ("  lm: {kind: transformer, d_model: 30, n_head: 4}\n",
     "post.md: experiments.lm.d_model: must be a multiple of n_head=4, got 30"),
    ("  lm: {kind: transformer, lr: 0}\n", "post.md: experiments.lm.lr: must be > 0, got 0.0"),
    ("  lm: {kind: transformer, stepz: 3}\n",
     "post.md: experiments.lm.stepz: unknown key 'stepz' (did you mean 'steps'?)"),
    ("  lm: {kind: transformer, corpus_sha256: abc}\n",
     "post.md: experiments.lm.corpus_sha256: must be a sha256 in lower-case hex"),
    ("  steer: {kind: steering, model: nope}\n",
     "post.md: experiments.steer.model: names experiment 'nope', which no post declares"),
    ("  main: {}\n  steer: {kind: steering, model: main}\n",
     "post.md: experiments.steer.model: names experiment 'main' of kind lora, not transformer"),
    ("  lm: {kind: transformer}\n  steer: {kind: steering, stop_prob: 1.5}\n",
     "post.md: experiments.steer.stop_prob: must lie strictly between 0 and 1, got 1.5"),
    ("  lm: {kind: transformer}\n  steer: {kind: steering, sgd_lr: fast}\n",
     "post.md: experiments.steer.sgd_lr: must be a number, got 'fast'"),
])
def test_settings_errors_are_one_line(tmp_path, experiments, message):
    write_post(tmp_path, experiments=experiments)
    (tmp_path / "content" / "site.yml").write_text(SITE_YML)
    code, out = cli("build", "--root", tmp_path, "-q")
    assert code == 1
    assert len(out.strip().splitlines()) == 1 and message in out, out


# ---------------------------------------------------------------------------------------------
# Dependencies between experiments, for any kind

def _reader_kind():
    from generator.kinds.base import Kind, Need

    class Reader(Kind):
        name = "reader"

        def parse(self, mapping, *, source=None, prefix=""):
            return dict(mapping or {})

        def needs(self, settings):
            return tuple(Need("src", s, "reader") for s in settings.get("src", ()))
    return Reader()


def test_needs_are_resolved_ordered_and_cycles_refused(tmp_path):
    from generator.authoring.posts import resolve_needs
    from generator.core.errors import ConfigError
    from generator.kinds.base import Declared
    from generator.stages.run import in_order

    kind = _reader_kind()
    post = tmp_path / "post.md"

    def graph(**srcs):
        return {n: Declared(n, kind, {"src": s}, post) for n, s in srcs.items()}
    resolved = resolve_needs(graph(a=["c"], b=[], c=["b"]))
    assert [u.name for u in resolved["a"].upstream] == ["c"]
    assert [u.name for u in resolved["a"].upstream[0].upstream] == ["b"]
    assert [d.name for d in in_order(resolved)] == ["b", "c", "a"]
    with pytest.raises(ConfigError, match=r"post.md: experiments.b.src: experiments read each "
                                          r"other's results in a cycle: a -> b -> a"):
        resolve_needs(graph(a=["b"], b=["a"]))
    with pytest.raises(ConfigError, match="cycle: a -> a"):
        resolve_needs(graph(a=["a"]))


def test_the_committed_steering_reads_the_committed_model():
    """The freeze's steering result names the frozen model's weights by hash."""
    freeze = REPO / "content" / "_freeze"
    manifest = json.loads((freeze / "manifest.json").read_text())["experiments"]
    steering = [n for n, e in manifest.items() if e["kind"] == "steering"]
    assert steering, "the article's steering experiment is frozen"
    for name in steering:
        entry = manifest[name]
        for model, files in entry["inputs"]["upstream"].items():
            assert files == manifest[model]["files"]
            doc = json.loads((freeze / name / "steering.json").read_text())
            weights = json.loads((freeze / model / "training.json").read_text())["npz_sha256"]
            assert doc["model"]["weights_sha256"] == weights
