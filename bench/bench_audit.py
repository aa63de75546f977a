"""Benchmark the batched engine against a loop of single runs, and time the audit.

Run with `make bench` (or `python bench/bench_audit.py`). Everything is measured in this one
process, on one torch thread for both engines (the single engine pins cfg.threads = 1):

  loop      generator.science.experiment.run_experiment(cfg) for seeds 0..S-1, one after another
            (each call trains and computes its metrics)
  batched   generator.science.batched.train_batched(cfgs), the same S runs as one tensor program,
            plus generator.science.runstats.run_statistics (the batched counterpart of the
            metrics)

for S = 1, 10, 100 and 1000 default runs (d_model 64, n 10, r 4), every run trained in full
(nothing is extrapolated). Each is timed twice: wall-clock time, and this process's CPU time,
which other processes on a shared machine disturb far less (they stretch the wall clock of
whichever engine happens to run beside them). The repeats of the two engines alternate, and the
median of each is kept. Then the audit itself, `run_audit(200)` for the default setting only and
for every sweep, controls included (what the build computes).
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


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def alternate(fns, repeats: list[int]) -> list[tuple[float, float]]:
    """Median (wall, CPU) of each function, its repeats interleaved with the others'."""
    got: list[list[tuple[float, float]]] = [[] for _ in fns]
    for round_ in range(max(repeats)):
        for i, fn in enumerate(fns):
            if round_ < repeats[i]:
                got[i].append(timed(fn))
    return [(statistics.median(w for w, _ in g), statistics.median(c for _, c in g))
            for g in got]


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
    from generator.science.config import ExperimentConfig
    from generator.science.experiment import run_experiment
    from generator.science.runstats import run_statistics

    torch.set_num_threads(1)
    # Warm up both paths (first calls pay for lazy initialisation inside torch).
    run_experiment(ExperimentConfig(seed=0))
    run_statistics(train_batched([ExperimentConfig(seed=s) for s in range(8)]))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, device cpu, "
          f"numerics {numerics.current().describe()}")
    header = (f"{'runs':>6}  {'loop s':>8}  {'batched s':>9}  {'batched runs/s':>14}  "
              f"{'speedup':>7}  {'loop cpu s':>10}  {'batched cpu s':>13}  {'cpu speedup':>11}")
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

        (lw, lc), (bw, bc) = alternate([loop, batched], [loop_repeats, repeats])
        print(f"{S:>6}  {lw:>8.3f}  {bw:>9.3f}  {S / bw:>14.1f}  {lw / bw:>6.1f}x  "
              f"{lc:>10.3f}  {bc:>13.3f}  {lc / bc:>10.1f}x", flush=True)

    if not args.no_audit:
        print()
        for which in ("default", "all"):
            result = None

            def audit():
                nonlocal result
                result = run_audit(200, sweeps=which)

            wall, cpu = timed(audit)
            runs = sum(1 for name in result.arrays if name.endswith("__seed"))
            print(f"audit, 200 seeds, sweeps={which}: {wall:.1f} s wall, {cpu:.1f} s CPU "
                  f"({len(result.summary['settings'])} settings, "
                  f"{result.summary['runs_trained']} runs trained, {runs} run sets kept)",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
