"""Time the trained transformer and the steering experiment on one of its heads.

Run with `make bench` (or `python bench/bench_transformer.py`). Under the numeric pins, as the
build runs them, with the article's settings (the defaults of
generator/science/lm_config.py and steering_config.py, the same as the post's front
matter):

  corpus    reading and cleaning CPython's pydoc_data/topics.py
  train     the model's training (science.lm_training.train_lm), wall and CPU seconds, and per
            step; the held-out evaluations and the final pass over the training text included
  steer     the steering experiment (science.steering.steer: LoRA, full FT, gradient descent)

Timings are wall-clock on a possibly shared machine; the CPU seconds say what the work costs.
--steps N trains a shorter budget (for a quick look: the per-step cost is the same).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generator.core import numerics  # noqa: E402

numerics.pin()


class Clock:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the "
                        "article's)")
    args = parser.parse_args()

    from generator.science.corpus import load_corpus
    from generator.science.lm_training import train_lm
    from generator.science.steering import steer
    from generator.science.transformer import ModelShape, load_state
    from generator.science.lm_config import LMSettings
    from generator.science.steering_config import SteeringSettings

    s = LMSettings()
    if args.steps:
        s = replace(s, steps=args.steps, eval_every=min(s.eval_every, args.steps))
    with Clock() as c_corpus:
        corpus = load_corpus(s.corpus_sha256, s.holdout_every, s.holdout_at)
    with Clock() as c_train:
        trained = train_lm(s, corpus)
    model = load_state(ModelShape(**vars(trained.shape)), trained.weights)
    steering = SteeringSettings()
    with Clock() as c_steer:
        steer(model, corpus, steering)
    print(f"numerics: {numerics.current().describe()}; torch threads {s.threads}")
    print(f"{'part':<10} {'wall s':>8} {'cpu s':>8}")
    print(f"{'corpus':<10} {c_corpus.wall:8.2f} {c_corpus.cpu:8.2f}")
    print(f"{'train':<10} {c_train.wall:8.1f} {c_train.cpu:8.1f}   {s.steps} steps x {s.batch} "
          f"windows: {1000 * c_train.wall / s.steps:.0f} ms/step wall, "
          f"held-out {trained.record['final_held_bits']:.3f} bits/char")
    print(f"{'steer':<10} {c_steer.wall:8.1f} {c_steer.cpu:8.1f}   layer {steering.layer} head "
          f"{steering.head}, three methods")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
