"""Benchmark the build: whole-process wall time and peak memory, medians over several runs.

Run with `make bench` (or `python bench/bench_build.py --runs 5`). Everything happens in a
temporary copy of the project; the working tree is never touched. Scenarios:

  cold           no freeze, no caches, no site: train, draw, render, write
  clean          site/ and .cache deleted, a valid content/_freeze present (must not import torch)
  no-op          a rebuild with nothing changed
  prose edit     a rebuild after changing a sentence of the post
  plotting edit  a rebuild after changing generator/plots/lora_figures.py
  setting edit   a rebuild after changing an experiment setting in the front matter
  floor: import  `python -c "import torch, matplotlib.pyplot"`
  floor: compute the experiments' own compute time: every declared experiment, and the claims
                 audit when a post reads it, timed in one process after torch is imported

Each timed run is a fresh `python -m generator build` process; wall time is measured around it
and peak memory is that child's ru_maxrss from os.wait4 (so one run's peak never hides another's).
A build runs as a user's would: Python may cache bytecode (PYTHONDONTWRITEBYTECODE is unset for
the children), one thread, Agg backend.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPY = ("content", "templates", "generator", "requirements.lock", "pyproject.toml")
POST_GLOB = "content/posts/*.md"
PROSE = ("the head has no reason to prefer any key", "the head has no cause to prefer any key")
# Which heavy modules a run imported is recorded by a wrapper around the CLI.
WATCH_MODULES = ("torch", "matplotlib", "numpy", "jinja2", "markdown", "pygments")
WRAPPER = """
import atexit, json, sys
def _report():
    with open({out!r}, "w") as fh:
        json.dump([m for m in {mods!r} if m in sys.modules], fh)
atexit.register(_report)
sys.argv = ["lora-site"] + {args!r}
import runpy
runpy.run_module("generator", run_name="__main__", alter_sys=True)
"""
# The experiments' own compute: torch and the package are imported before the clock starts.
COMPUTE = """
import json, time
from pathlib import Path
from generator.core import numerics
numerics.pin()          # as every lora-site process does, before torch and numpy load
import numpy, torch
from generator.authoring.posts import collect_experiments, read_posts
from generator.core.context import BuildContext
from generator.core.project import Project
ctx = BuildContext(Project(Path.cwd()), remember_hashes=False)
times = {{}}
for name, d in collect_experiments(read_posts(ctx)).items():
    t = time.perf_counter()
    d.kind.compute(name, d.settings)
    times[name] = time.perf_counter() - t
with open({out!r}, "w") as fh:
    json.dump(times, fh)
"""
SCENARIOS = ("cold", "clean", "no-op", "prose", "plotting", "setting", "floor")
TARGETS = {
    "no-op": "< 0.3 s",
    "prose edit": "< 0.5 s",
    "clean (valid freeze)": "< 3 s, no torch",
}


def settle() -> None:
    """Wait until the files the last build wrote are older than the hash memo's racy window
    (core.filehash.RACY_NS): a file changed that recently is hashed again on every build, as it
    must be, so a no-op sample taken within the window of one side's last build and not the
    other's would time that (it made whichever side was built last look 1.25x slower)."""
    from generator.core.filehash import RACY_NS

    time.sleep(RACY_NS / 1e9 + 0.2)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # Thread counts and kernels are pinned by each lora-site process itself (numerics.py).
    env.update({"PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"})
    # The copies pre-render their math with the repository's mathjax-full (npm ci).
    env.setdefault("LORA_SITE_NODE_MODULES", str(REPO / "node_modules"))
    # The copy's own generator/ must be the one that runs (the venv has an editable install of
    # the working tree): put the copy first on the path.
    env.pop("PYTHONPATH", None)
    return env


def measure(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """(wall seconds, peak RSS in MiB, CPU seconds user+sys) of one process (and its children:
    the figure workers' CPU counts, and their peak if it is the highest)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env={**env, "PYTHONPATH": str(cwd)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return wall, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime


class Project:
    """A temporary copy of the project and the edits the scenarios make to it."""

    def __init__(self, root: Path, repo: Path = REPO) -> None:
        self.root = root
        for name in COPY:
            src = repo / name
            if src.is_dir():
                shutil.copytree(src, root / name,
                                ignore=shutil.ignore_patterns("__pycache__", ".*.tmp"))
            elif src.is_file():
                shutil.copy2(src, root / name)
        # The article whose prose and experiment 'main' the edits change.
        posts = [p for p in sorted(root.glob(POST_GLOB))
                 if PROSE[0] in p.read_text(encoding="utf-8")
                 and re.search(r"^  main: \{.*\}$", p.read_text(encoding="utf-8"), re.M)]
        if not posts:
            raise SystemExit(f"no post in {repo / 'content/posts'} has the sentence "
                             f"{PROSE[0]!r} and a '  main: {{...}}' experiment line")
        self.post = posts[0]
        # The article's plotting module (generator/figures.py before the package had layers).
        self.figures = next(p for p in (root / "generator" / "plots" / "lora_figures.py",
                                        root / "generator" / "figures.py") if p.is_file())
        self.toggles = {"prose": 0, "plotting": 0, "setting": 0}
        self.imports: dict[str, list[str]] = {}

    def build_cmd(self, scenario: str) -> list[str]:
        out = self.root / ".bench-imports.json"
        code = WRAPPER.format(out=str(out), mods=WATCH_MODULES, args=["build", "--quiet"])
        self._imports_file, self._scenario = out, scenario
        return [sys.executable, "-c", code]

    def build(self, scenario: str, env) -> tuple[float, float, float]:
        sample = measure(self.build_cmd(scenario), self.root, env)
        self.imports[scenario] = json.loads(self._imports_file.read_text())
        return sample

    def remove(self, *names: str) -> None:
        for name in names:
            path = self.root / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def _flip(self, which: str) -> int:
        self.toggles[which] ^= 1
        return self.toggles[which]

    def _swap(self, which: str, path: Path, a: str, b: str) -> None:
        """Replace ``a`` by ``b`` in ``path``, or back: a real edit every time (it alternates)."""
        text = path.read_text(encoding="utf-8")
        if a not in text and b not in text:
            raise SystemExit(f"{which} edit: {a!r} is gone from {path}")
        old, new = (a, b) if self._flip(which) else (b, a)
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    def edit_prose(self) -> None:
        """Change one sentence of the body."""
        self._swap("prose", self.post, *PROSE)

    def edit_plotting(self) -> None:
        """Change the colour map of the first heat map (the same line in older revisions)."""
        self._swap("plotting", self.figures, 'cmap="viridis"', 'cmap="cividis"')

    def edit_setting(self) -> None:
        """Change the learning rate of the experiment 'main' in the front matter."""
        text = self.post.read_text(encoding="utf-8")
        m = re.search(r"^  main: \{(.*)\}$", text, re.M)
        if not m:
            raise SystemExit(f"setting edit: no '  main: {{...}}' line in {self.post}")
        settings = re.sub(r",?\s*lr: [0-9.e-]+", "", m.group(1)).strip(", ")
        if self._flip("setting"):
            settings = ", ".join(s for s in (settings, "lr: 0.012") if s)
        self.post.write_text(text[:m.start(1)] + settings + text[m.end(1):], encoding="utf-8")

    def compute_seconds(self, env) -> dict[str, float]:
        """name -> seconds of compute, measured in a fresh process once the imports are done."""
        out = self.root / ".bench-compute.json"
        subprocess.run([sys.executable, "-c", COMPUTE.format(out=str(out))], cwd=self.root,
                       env={**env, "PYTHONPATH": str(self.root)}, check=True,
                       stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def median_row(samples: list[tuple[float, float, float]]) -> tuple[float, ...]:
    walls = [w for w, _, _ in samples]
    return (statistics.median(walls), min(walls), max(walls),
            statistics.median(p for _, p, _ in samples), statistics.median(c for _, _, c in samples))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per scenario (default 5)")
    ap.add_argument("--cold-runs", type=int, default=3,
                    help="runs of the cold build, which trains (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    ap.add_argument("--only", default=",".join(SCENARIOS), metavar="NAMES",
                    help="comma-separated subset of " + ", ".join(SCENARIOS)
                         + " (default: all; the cold/floor ratio needs cold and floor)")
    ap.add_argument("--against", metavar="REV", default=None,
                    help="also benchmark the project as it was at git revision REV, sample by "
                         "sample alternating with the working tree, and print both side by side")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    if only - set(SCENARIOS):
        ap.error(f"unknown scenario(s): {', '.join(sorted(only - set(SCENARIOS)))}")
    if args.against:
        return compare(args.against, args.runs, args.cold_runs, only)
    # A terminated benchmark still removes its temporary copy (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = child_env()
    tmp = Path(tempfile.mkdtemp(prefix="lora-site-bench-"))
    rows: dict[str, list[tuple[float, float, float]]] = {}
    compute: list[float] = []
    load_start = os.getloadavg()[0]
    try:
        p = Project(tmp / "project")
        print(f"benchmarking a copy of {REPO} in {p.root} "
              f"({args.runs} runs, {args.cold_runs} cold; {os.cpu_count()} CPUs)", file=sys.stderr)

        def run(name: str, prepare, count: int) -> None:
            samples = rows.setdefault(name, [])
            for _ in range(count):
                prepare()
                samples.append(p.build(name, env))
                print(f"  {name}: {samples[-1][0]:.3f} s", file=sys.stderr)

        # Warm the bytecode cache of the copy once, untimed, as any previous run would have.
        p.build("warm-up", env)
        for _ in range(args.cold_runs if "cold" in only else 0):
            run("cold", lambda: p.remove("content/_freeze", ".cache", "site"), 1)
            parts = p.compute_seconds(env)
            compute.append(sum(parts.values()))
            detail = ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
            print(f"  compute: {compute[-1]:.3f} s ({detail})", file=sys.stderr)
        if "clean" in only:
            run("clean (valid freeze)", lambda: p.remove(".cache", "site"), args.runs)
        if "no-op" in only:
            settle()
            run("no-op", lambda: None, args.runs)
        if "prose" in only:
            run("prose edit", p.edit_prose, args.runs)
        if "plotting" in only:
            run("plotting edit", p.edit_plotting, args.runs)
        if "setting" in only:
            run("setting edit", p.edit_setting, args.runs)
        if "floor" in only:
            floor = [measure([sys.executable, "-c", "import torch, matplotlib.pyplot"], p.root,
                             env) for _ in range(args.runs)]
            rows["floor: import torch, matplotlib"] = floor
        imports = dict(p.imports)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(f"{'scenario':<31} {'median s':>8} {'min s':>7} {'max s':>7} {'cpu s':>7} "
          f"{'peak MiB':>8}  {'heavy imports':<39} target")
    print("-" * 140)
    for name, samples in rows.items():
        med, lo, hi, peak, cpu = median_row(samples)
        mods = ",".join(imports.get(name, [])) if name in imports else "-"
        target = TARGETS.get(name, "")
        if name == "cold" and compute and "floor" in only:
            floor_s = statistics.median(w for w, _, _ in rows["floor: import torch, matplotlib"])
            target = (f"<= 1.3 x (floor + compute) = "
                      f"{1.3 * (floor_s + statistics.median(compute)):.2f} s")
        print(f"{name:<31} {med:>8.3f} {lo:>7.3f} {hi:>7.3f} {cpu:>7.3f} {peak:>8.1f}  "
              f"{mods or 'none':<39} {target}")
    if compute:
        print(f"{'floor: experiments compute':<31} {statistics.median(compute):>8.3f} "
              f"{min(compute):>7.3f} {max(compute):>7.3f} {'':>7} {'':>8}  "
              f"{'(timed after the imports)':<39}")
    print()
    if compute and "floor" in only:
        floor_s = statistics.median(w for w, _, _ in rows["floor: import torch, matplotlib"])
        compute_s = statistics.median(compute)
        cold = statistics.median(w for w, _, _ in rows["cold"])
        print(f"cold / (import floor + compute) = {cold:.2f} / ({floor_s:.2f} + "
              f"{compute_s:.2f}) = {cold / (floor_s + compute_s):.2f}")
    print(f"load average (1 min) at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f}; "
          f"wall times include waiting for the CPU, cpu s does not")
    return 0


EDITS = {"prose edit": "edit_prose", "plotting edit": "edit_plotting",
         "setting edit": "edit_setting"}


def compare(rev: str, runs: int, cold_runs: int, only: set[str]) -> int:
    """Every scenario on two copies, the working tree and revision ``rev``, one sample of each in
    turn (the order alternating), so both see the same machine load."""
    env = child_env()
    tmp = Path(tempfile.mkdtemp(prefix="lora-site-bench-vs-"))
    rows: dict[str, dict[str, list[float]]] = {}
    try:
        old_src = tmp / "src-before"
        old_src.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, *COPY],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
        sides = {"before": Project(tmp / "before", repo=old_src),
                 "after": Project(tmp / "after")}
        print(f"benchmarking {rev} (before) against the working tree (after), alternating; "
              f"{runs} runs, {cold_runs} cold", file=sys.stderr)
        for p in sides.values():
            p.build("warm-up", env)
        plan = []
        if "cold" in only:
            plan.append(("cold", cold_runs, lambda p: p.remove("content/_freeze", ".cache", "site")))
        if "clean" in only:
            plan.append(("clean (valid freeze)", runs, lambda p: p.remove(".cache", "site")))
        if "no-op" in only:
            plan.append(("no-op", runs, lambda p: None))
        for name, method in EDITS.items():
            if name.split()[0] in only:
                plan.append((name, runs, lambda p, m=method: getattr(p, m)()))
        for name, count, prepare in plan:
            if name == "no-op":
                settle()
            for i in range(count):
                order = ("before", "after") if i % 2 == 0 else ("after", "before")
                for side in order:
                    prepare(sides[side])
                    wall = sides[side].build(name, env)[0]
                    rows.setdefault(name, {}).setdefault(side, []).append(wall)
                    print(f"  {name} {side}: {wall:.3f} s", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{'scenario':<22} {'before s':>9} {'after s':>9} {'after/before':>13}   "
          f"(medians; before = {rev})")
    print("-" * 62)
    for name, by in rows.items():
        a, b = statistics.median(by["before"]), statistics.median(by["after"])
        print(f"{name:<22} {a:>9.3f} {b:>9.3f} {b / a:>12.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
