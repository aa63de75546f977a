"""Draw figures in a worker, on every core, started before the figures are needed.

Drawing the PNGs costs about as much as training, and importing matplotlib about a second. A
build that trains therefore starts the worker *before* it imports torch: the worker imports
matplotlib on the other core while the build trains. The worker is a fresh interpreter
(`python -m generator.drawpool`), not a fork of the build, so no lock or thread of the build can
leak into it; once matplotlib is loaded it forks helpers (one per extra core), which share that
import instead of repeating it, and each job's figures are split among them.

Protocol between the build and the worker, over the worker's stdin/stdout (and the same between
the worker and its helpers, over pipes): one JSON line per job
``{"draw": "generator.<module>:<function>", "folder": <path>, "names": [<figure names>]}``; the
function is called as ``function(Path(folder), names)`` and returns {file name: PNG bytes}; the
answer is one JSON line ``{"files": [[filename, size], ...]}`` followed by the bytes in that
order, or ``{"error": <traceback>}``. EOF ends a worker. Nothing is pickled, and only functions
of the generator package can be named.

A figure's bytes depend only on its own inputs, so the split never changes the output.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

ENV_WORKERS = "LORA_SITE_DRAW_WORKERS"


def worker_count() -> int:
    """How many processes draw: one per core, 0 (draw in the build itself) on one core.

    LORA_SITE_DRAW_WORKERS=N sets it; 0 draws in the build process."""
    raw = os.environ.get(ENV_WORKERS)
    if raw is not None:
        try:
            return max(0, int(raw))
        except ValueError:
            return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(cores or 1, 4) if (cores or 1) > 1 else 0


def split(names: tuple[str, ...], parts: int) -> list[tuple[str, ...]]:
    """Round-robin shares: figure i goes to process i mod parts (before/after pairs separate)."""
    shares = [tuple(names[i::parts]) for i in range(parts)]
    return [s for s in shares if s]


# ---------------------------------------------------------------------------------------------
# Framing, shared by every end of every pipe

def send_job(out: BinaryIO, drawer: str, folder: Path | str, names: tuple[str, ...],
             processes: int | None = None) -> None:
    job = {"draw": drawer, "folder": str(folder), "names": list(names)}
    if processes is not None:
        job["processes"] = processes
    out.write((json.dumps(job) + "\n").encode())
    out.flush()


def send_images(out: BinaryIO, images: dict[str, bytes]) -> None:
    names = sorted(images)
    out.write((json.dumps({"files": [[n, len(images[n])] for n in names]}) + "\n").encode())
    for n in names:
        out.write(images[n])
    out.flush()


def send_error(out: BinaryIO, text: str) -> None:
    out.write((json.dumps({"error": text}) + "\n").encode())
    out.flush()


def read_images(inp: BinaryIO) -> dict[str, bytes] | str:
    """The images of one answer, or the error text (a short read is an error too)."""
    line = inp.readline()
    if not line:
        return "the worker ended"
    header = json.loads(line)
    if "files" not in header:
        return str(header.get("error", "no answer"))
    out = {}
    for filename, size in header["files"]:
        data = inp.read(size)
        if len(data) != size:
            return "the worker ended mid-answer"
        out[filename] = data
    return out


# ---------------------------------------------------------------------------------------------
# The build's side

class DrawPool:
    """One worker process that draws with ``processes`` processes."""

    def __init__(self, processes: int) -> None:
        env = dict(os.environ)
        # Import the same generator package as this process, whatever the working directory.
        package_parent = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH"))
                                            if p)
        env.setdefault("MPLBACKEND", "Agg")
        self.processes = max(1, processes)
        self.proc: subprocess.Popen | None = subprocess.Popen(
            [sys.executable, "-m", "generator.drawpool", str(max(1, processes))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.last_error: str | None = None
        self._next = 0
        self._waiting: list[int] = []                   # tickets sent, answers not yet read
        self._answers: dict[int, dict[str, bytes] | str] = {}

    def submit(self, folder: Path, names: tuple[str, ...],
               drawer: str = "generator.drawpool:draw_saved_result",
               processes: int | None = None) -> int:
        """Send a job and return at once with its ticket: figures ``names`` drawn by ``drawer``
        (a 'generator.module:function' taking the folder and a tuple of names) from
        ``folder``, by at most ``processes`` processes (default: all; fewer leave a core to the
        build while it works on). The worker answers jobs in the order they were sent."""
        ticket, self._next = self._next, self._next + 1
        try:
            if self.proc is None:
                raise OSError("the worker is closed")
            send_job(self.proc.stdin, drawer, folder, names, processes)
            self._waiting.append(ticket)
        except (OSError, ValueError) as exc:
            self._answers[ticket] = f"{type(exc).__name__}: {exc}"
        return ticket

    def result(self, ticket: int) -> dict[str, bytes] | None:
        """The images of a submitted job (waiting for them if need be); None if the worker
        failed (the caller then draws in-process, where a real error shows its traceback)."""
        while ticket not in self._answers and self._waiting:
            oldest = self._waiting.pop(0)
            try:
                self._answers[oldest] = read_images(self.proc.stdout)
            except (OSError, ValueError, AttributeError) as exc:
                self._answers[oldest] = f"{type(exc).__name__}: {exc}"
        answer = self._answers.pop(ticket, "no such job")
        if isinstance(answer, str):
            self.last_error = answer
            return None
        return answer

    def draw(self, folder: Path, names: tuple[str, ...],
             drawer: str = "generator.drawpool:draw_saved_result") -> dict[str, bytes] | None:
        """submit, then wait for the result."""
        return self.result(self.submit(folder, names, drawer))

    def close(self) -> None:
        """End the worker. Answers not yet read are discarded (read them first to keep them)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
            # A worker blocked writing an unread answer must be able to finish and see EOF.
            while proc.stdout.read(1 << 16):
                pass
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


# ---------------------------------------------------------------------------------------------
# The worker's side

def draw_saved_result(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """The experiment figures ``names`` of the result saved in ``folder``."""
    from .figures import render_figures
    from .results import load_result

    saved = load_result(folder)
    return render_figures(saved.config, saved.arrays(), names)


def _drawer(spec: str):
    import importlib

    module, _, function = spec.partition(":")
    if not module.startswith("generator.") or not function.isidentifier():
        raise ValueError(f"not a generator drawing function: {spec!r}")
    return getattr(importlib.import_module(module), function)


def _serve_jobs(inp: BinaryIO, out: BinaryIO, helpers: list[tuple[BinaryIO, BinaryIO]]) -> None:
    """Answer jobs from ``inp`` until EOF, drawing one share here and one in each helper."""
    import traceback

    for line in inp:
        try:
            job = json.loads(line)
            names = tuple(job["names"])
            shares = split(names, max(1, min(1 + len(helpers), job.get("processes") or 99)))
            busy = helpers[:len(shares) - 1]
            for (h_in, _), share in zip(busy, shares[1:]):
                send_job(h_in, job["draw"], job["folder"], share)
            images = _drawer(job["draw"])(Path(job["folder"]), shares[0] if shares else ())
            errors = []
            for _, h_out in busy:
                answer = read_images(h_out)
                if isinstance(answer, str):
                    errors.append(answer)
                else:
                    images.update(answer)
            if errors:
                send_error(out, "; ".join(errors))
            else:
                send_images(out, images)
        except Exception:
            send_error(out, traceback.format_exc())


def _fork_helper(siblings: list[tuple[BinaryIO, BinaryIO]]) -> tuple[BinaryIO, BinaryIO] | None:
    """A helper process forked from this (single-threaded, matplotlib already loaded) worker."""
    if not hasattr(os, "fork"):
        return None
    job_r, job_w = os.pipe()
    ans_r, ans_w = os.pipe()
    pid = os.fork()
    if pid == 0:                            # the helper
        os.close(job_w)
        os.close(ans_r)
        # Hold no other pipe open: each end must see EOF when its owner closes it.
        for h_in, h_out in siblings:
            os.close(h_in.fileno())
            os.close(h_out.fileno())
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        code = 0
        try:
            with os.fdopen(job_r, "rb") as inp, os.fdopen(ans_w, "wb") as out:
                _serve_jobs(inp, out, [])
        except BaseException:               # noqa: BLE001 (nothing may escape a fork)
            code = 1
        os._exit(code)
    os.close(job_r)
    os.close(ans_w)
    return os.fdopen(job_w, "wb"), os.fdopen(ans_r, "rb")


def worker_main(processes: int) -> int:
    """Import matplotlib now, fork the helpers, then draw whatever is asked until stdin closes."""
    from .figures import _pyplot

    _pyplot()
    import numpy  # noqa: F401  (loaded now, while the build is busy)

    helpers: list[tuple[BinaryIO, BinaryIO]] = []
    for _ in range(processes - 1):
        helper = _fork_helper(helpers)
        if helper is not None:
            helpers.append(helper)
    try:
        _serve_jobs(sys.stdin.buffer, sys.stdout.buffer, helpers)
    finally:
        for h_in, h_out in helpers:
            h_in.close()                    # EOF: the helper ends
            h_out.close()
        for _ in helpers:
            try:
                os.wait()
            except ChildProcessError:
                break
    return 0


if __name__ == "__main__":
    from .numerics import pin

    pin()                   # inherited from the build already; checked again before numpy loads
    try:
        code = worker_main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    except KeyboardInterrupt:
        code = 130
    # Every answer is written and flushed, the helpers have ended: skip tearing down
    # matplotlib's modules (a fifth of a second the build would wait for when it closes us).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
