"""Draw figures in worker processes, on every core, started before they are needed.

Drawing twelve PNGs costs about as much as training, and importing matplotlib about a second.
A cold build therefore starts the workers *before* it imports torch: they import matplotlib on
the other core while the build trains, then each draws a share of the figures from the saved
results. Each worker is a fresh interpreter (`python -m generator.drawpool`), not a fork, so no
lock or thread of the parent can leak into it.

Protocol, over the worker's stdin/stdout: the parent writes one JSON line per job
``{"folder": <saved result folder>, "names": [<figure names>]}``; the worker answers one JSON line
``{"files": [[filename, size], ...]}`` followed by the PNG bytes in that order, or
``{"error": <traceback>}``. EOF on stdin ends the worker. Nothing is pickled.

A figure's bytes depend only on its own inputs, so the split never changes the output.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Two groups of similar cost: two heatmaps and one bar chart each.
ENV_WORKERS = "LORA_SITE_DRAW_WORKERS"


def worker_count() -> int:
    """How many workers to use: one per core (at most one per figure pair), 0 for in-process.

    LORA_SITE_DRAW_WORKERS=0 draws in the build process itself."""
    raw = os.environ.get(ENV_WORKERS)
    if raw is not None:
        try:
            return max(0, int(raw))
        except ValueError:
            return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(cores or 1, 3) if (cores or 1) > 1 else 0


def split(names: tuple[str, ...], parts: int) -> list[tuple[str, ...]]:
    """Round-robin shares: figure i goes to worker i mod parts (before/after pairs separate)."""
    shares = [tuple(names[i::parts]) for i in range(parts)]
    return [s for s in shares if s]


class DrawPool:
    def __init__(self, workers: int) -> None:
        env = dict(os.environ)
        # Import the same generator package as this process, whatever the working directory.
        package_parent = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH"))
                                            if p)
        env.setdefault("MPLBACKEND", "Agg")
        self.procs = [subprocess.Popen([sys.executable, "-m", "generator.drawpool"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       env=env)
                      for _ in range(workers)]

    def draw(self, folder: Path, names: tuple[str, ...]) -> dict[str, bytes] | None:
        """All figures ``names`` of the saved result in ``folder``; None if a worker failed
        (the caller then draws in-process, where a real error shows its traceback)."""
        shares = split(names, len(self.procs))
        live = self.procs[:len(shares)]
        try:
            for proc, share in zip(live, shares):
                proc.stdin.write((json.dumps({"folder": str(folder), "names": list(share)})
                                  + "\n").encode())
                proc.stdin.flush()
            out: dict[str, bytes] = {}
            for proc in live:
                header = json.loads(proc.stdout.readline() or b"{}")
                if "files" not in header:
                    return None
                for filename, size in header["files"]:
                    data = proc.stdout.read(size)
                    if len(data) != size:
                        return None
                    out[filename] = data
            return out
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        for proc in self.procs:
            try:
                proc.stdin.close()
            except OSError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()
        self.procs = []


def worker_main() -> int:
    """The worker: import matplotlib now, then draw whatever is asked until stdin closes."""
    import traceback

    from .figures import _pyplot, render_figures
    from .results import load_result

    _pyplot()
    import numpy  # noqa: F401  (loaded now, while the parent is busy)

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    for line in stdin:
        try:
            job = json.loads(line)
            saved = load_result(Path(job["folder"]))
            images = render_figures(saved.config, saved.arrays(), tuple(job["names"]))
            names = sorted(images)
            stdout.write((json.dumps({"files": [[n, len(images[n])] for n in names]})
                          + "\n").encode())
            for n in names:
                stdout.write(images[n])
        except Exception:
            stdout.write((json.dumps({"error": traceback.format_exc()}) + "\n").encode())
        stdout.flush()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(worker_main())
    except KeyboardInterrupt:
        sys.exit(130)
