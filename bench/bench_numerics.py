"""What the numeric pins cost: the same work pinned (the default) and with the opt-out
LORA_SITE_NUMERICS=native, side by side in one run (the two modes alternate, so a noisy
neighbour slows both).

Run with `make bench` (or `python bench/bench_numerics.py --runs 3`). Each sample is a fresh
process, because the pins are read when torch and numpy load:

  cold build     `lora-site build` in a temporary copy with no freeze, caches or site
                 (trains the main experiment and the claims audit, draws, renders; the
                 trained-transformer article is left out, see main())
  main compute   run_experiment(default settings), timed after the imports
  audit compute  run_audit(200 seeds, every sweep), timed after the imports
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_build  # noqa: E402  (the copy of the project and the process timer)

MODES = ("pinned", "native")
COMPUTE = """
import json, time
from generator.core import numerics
numerics.pin()
import numpy, torch
from generator.science.audit import run_audit
from generator.science.config import ExperimentConfig
from generator.science.experiment import run_experiment
run_experiment(ExperimentConfig(seed=1))                    # warm-up (lazy init in torch)
t = time.perf_counter(); run_experiment(ExperimentConfig()); main = time.perf_counter() - t
t = time.perf_counter(); run_audit(200, sweeps="all"); audit = time.perf_counter() - t
print(json.dumps({"main compute": main, "audit compute": audit,
                  "numerics": numerics.current().describe(),
                  "aten": torch.backends.cpu.get_cpu_capability()}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--runs", type=int, default=3, help="samples per mode (default 3)")
    args = ap.parse_args(argv)
    base = bench_build.child_env()
    envs = {mode: {**base, "LORA_SITE_NUMERICS": mode} for mode in MODES}
    rows: dict[str, dict[str, list[float]]] = {}
    seen: dict[str, str] = {}
    tmp = Path(tempfile.mkdtemp(prefix="lora-site-bench-numerics-"))
    try:
        p = bench_build.Project(tmp / "project")
        # The cold build is the LoRA article and its audit. The trained-transformer article is
        # left out: 1200 training steps turn last-bit differences into another model, whose
        # most diffuse head is another one, so natively its guards (expect) refuse to build it
        # against the settings the pinned model chose. That is the pins' point, not a cost.
        for post in (p.root / "content" / "posts").glob("*.md"):
            if "kind: transformer" in post.read_text(encoding="utf-8"):
                post.unlink()
        p.build("warm-up", envs["pinned"])          # bytecode cache, as any earlier run had
        for i in range(args.runs):
            for mode in (MODES if i % 2 == 0 else MODES[::-1]):
                p.remove("content/_freeze", ".cache", "site")
                wall, _, _ = p.build("cold", envs[mode])
                rows.setdefault("cold build", {}).setdefault(mode, []).append(wall)
                out = subprocess.run([sys.executable, "-c", COMPUTE], cwd=p.root,
                                     env={**envs[mode], "PYTHONPATH": str(p.root)},
                                     capture_output=True, text=True, check=True)
                found = json.loads(out.stdout)
                seen[mode] = f"{found['numerics']}; ATen {found['aten']}"
                for name in ("main compute", "audit compute"):
                    rows.setdefault(name, {}).setdefault(mode, []).append(found[name])
                print(f"  {mode}: cold {wall:.2f} s, audit {found['audit compute']:.2f} s",
                      file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    for mode in MODES:
        print(f"{mode}: {seen.get(mode, '?')}")
    print(f"{'work':<15} {'pinned s':>9} {'native s':>9} {'pinned / native':>16}   "
          f"(medians of {args.runs}; {os.cpu_count()} CPUs)")
    print("-" * 60)
    for name, by_mode in rows.items():
        a, b = statistics.median(by_mode["pinned"]), statistics.median(by_mode["native"])
        print(f"{name:<15} {a:>9.3f} {b:>9.3f} {a / b:>15.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
