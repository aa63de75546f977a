"""Benchmark the batched engine against a loop of single runs, and time the audit.

Run with `make bench` (or `python bench/bench_audit.py`). Everything is measured in this one
process, on one torch thread for both engines (the single engine pins cfg.threads = 1):

  loop      generator.science.experiment.run_experiment(cfg) for seeds 0..S-1, one after another
            (each call trains and computes its metrics)
  batched   generator.science.batched.train_batched(cfgs), the same S runs as one tensor program,
            plus generator.science.runstats.run_statistics (the batched counterpart of the metrics)

for S = 1, 10, 100 and 1000 default runs (d_model 64, n 10, r 4), every run trained in full
(nothing is extrapolated). Small S are repeated and the median is kept. Then the audit itself:
`run_audit(200)` for the default setting only and for every sweep.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generator.core import numerics  # noqa: E402

numerics.pin()      # measured as the build runs it: under the numeric pins (numerics.py)


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100,1000",
                        help="comma-separated numbers of runs (default: 1,10,100,1000)")
    parser.add_argument("--no-audit", action="store_true", help="skip timing the audit")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    import torch

    from generator.science.audit import run_audit
    from generator.science.batched import train_batched
    from generator.science.runstats import run_statistics
    from generator.science.config import ExperimentConfig
    from generator.science.experiment import run_experiment

    torch.set_num_threads(1)
    # Warm up both paths (first calls pay for lazy initialisation inside torch).
    run_experiment(ExperimentConfig(seed=0))
    run_statistics(train_batched([ExperimentConfig(seed=s) for s in range(8)]))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, device cpu, "
          f"numerics {numerics.current().describe()}")
    header = (f"{'runs':>6}  {'loop s':>8}  {'loop runs/s':>11}  {'batched s':>9}  "
              f"{'batched runs/s':>14}  {'train only runs/s':>17}  {'speedup':>7}")
    print(header)
    print("-" * len(header))
    for S in sizes:
        cfgs = [ExperimentConfig(seed=s) for s in range(S)]
        repeats = 5 if S <= 10 else 3
        loop_repeats = repeats if S <= 100 else 1   # 1000 single runs take a while

        def loop():
            for cfg in cfgs:
                run_experiment(cfg)

        def batched():
            run_statistics(train_batched(cfgs))

        t_loop = timed(loop, loop_repeats)
        t_batch = timed(batched, repeats)
        t_train = timed(lambda: train_batched(cfgs), repeats)
        print(f"{S:>6}  {t_loop:>8.3f}  {S / t_loop:>11.1f}  {t_batch:>9.3f}  "
              f"{S / t_batch:>14.1f}  {S / t_train:>17.1f}  {t_loop / t_batch:>6.1f}x",
              flush=True)

    if not args.no_audit:
        print()
        for which in ("default", "all"):
            t0 = time.perf_counter()
            result = run_audit(200, sweeps=which)
            dt = time.perf_counter() - t0
            runs = sum(1 for name in result.arrays if name.endswith("__seed"))
            print(f"audit, 200 seeds, sweeps={which}: {dt:.1f} s "
                  f"({len(result.summary['settings'])} settings, {runs} run sets kept)",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
