"""The worker processes' side of stages.workers: `python -m generator.stages.worker_main draw N`
draws figures until its stdin closes; `... compute` computes one result. The protocol is in
stages/workers.py."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import BinaryIO

from .workers import read_files, send_files, send_line, split


def _kind(module: str):
    import importlib

    kind = getattr(importlib.import_module(module), "KIND", None)
    if kind is None:
        raise ValueError(f"not a kind module: {module!r}")
    return kind


def _serve_draw_jobs(inp: BinaryIO, out: BinaryIO,
                     helpers: list[tuple[BinaryIO, BinaryIO]]) -> None:
    """Answer drawing jobs from ``inp`` until EOF, one share here and one in each helper."""
    import traceback

    for line in inp:
        try:
            job = json.loads(line)
            names = tuple(job["names"])
            shares = split(names, max(1, min(1 + len(helpers), job.get("processes") or 99)))
            busy = helpers[:len(shares) - 1]
            for (h_in, _), share in zip(busy, shares[1:]):
                send_line(h_in, {"kind_module": job["kind_module"], "folder": job["folder"],
                                 "names": list(share)})
            kind = _kind(job["kind_module"])
            images = kind.draw(Path(job["folder"]), shares[0] if shares else ())
            errors = []
            for _, h_out in busy:
                answer = read_files(h_out)
                if isinstance(answer, str):
                    errors.append(answer)
                else:
                    images.update(answer)
            if errors:
                send_line(out, {"error": "; ".join(errors)})
            else:
                send_files(out, images)
        except Exception:
            send_line(out, {"error": traceback.format_exc()})


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
                _serve_draw_jobs(inp, out, [])
        except BaseException:               # noqa: BLE001 (nothing may escape a fork)
            code = 1
        os._exit(code)
    os.close(job_r)
    os.close(ans_w)
    return os.fdopen(job_w, "wb"), os.fdopen(ans_r, "rb")


def draw_main(processes: int) -> int:
    """Import matplotlib now, fork the helpers, then draw whatever is asked until stdin closes."""
    from ..plots.common import pyplot

    pyplot()
    import numpy  # noqa: F401  (loaded now, while the build is busy)

    helpers: list[tuple[BinaryIO, BinaryIO]] = []
    for _ in range(processes - 1):
        helper = _fork_helper(helpers)
        if helper is not None:
            helpers.append(helper)
    try:
        _serve_draw_jobs(sys.stdin.buffer, sys.stdout.buffer, helpers)
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


def _progress_lines(out: BinaryIO):
    """progress(done, total, note) that reports to the build as JSON lines: one per percent
    (and the last), so at most 101 lines wait in the pipe while the build does other work,
    far less than a pipe holds: the child never blocks on them."""
    last = [-1]

    def progress(done: int, total: int, note: str = "") -> None:
        percent = 100 * done // total if total else 100
        if percent == last[0] and done < total:
            return
        last[0] = percent
        send_line(out, {"progress": [done, total, note]})
    return progress


def compute_main() -> int:
    """Compute the one result the job on stdin names and answer its files on stdout (its
    progress reported first, as it goes)."""
    import traceback

    out = sys.stdout.buffer
    try:
        job = json.loads(sys.stdin.buffer.readline())
        kind = _kind(job["kind_module"])
        extra = {}
        if job.get("upstream"):
            extra["upstream"] = {n: _kind(u["kind_module"]).load(Path(u["folder"]), n)
                                 for n, u in sorted(job["upstream"].items())}
        files = kind.compute(job["name"], kind.parse(job["settings"]), _progress_lines(out),
                             **extra)
    except BaseException:               # noqa: BLE001 (answered, then the build computes here)
        send_line(out, {"error": traceback.format_exc()})
        return 1
    send_files(out, files)
    return 0


if __name__ == "__main__":
    from ..core.numerics import pin

    pin()                   # inherited from the build already; checked again before numpy loads
    try:
        if sys.argv[1:2] == ["compute"]:
            code = compute_main()
        else:
            code = draw_main(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    except KeyboardInterrupt:
        code = 130
    # Every answer is written and flushed: skip tearing down torch or matplotlib's modules (a
    # fraction of a second the build would wait for when it closes us).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
