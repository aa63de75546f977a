"""The processes a build starts: the figure worker, and children that compute heavy results.

Drawing the PNGs costs about as much as training, and importing matplotlib about a second. A
build that trains therefore starts the figure worker *before* it imports torch: the worker
imports matplotlib on the other core while the build trains. The worker is a fresh interpreter
(`python -m generator.stages.worker_main draw N`), not a fork of the build, so no lock or thread of
the build can leak into it; once matplotlib is loaded it forks helpers (one per extra core),
which share that import instead of repeating it, and each job's figures are split among them.
A result whose kind is heavy (the claims audit) is computed, on more than one core, by a child
started at the beginning of the build (`python -m generator.stages.worker_main compute`), while
the build does everything else.

Protocol, over the processes' stdin/stdout, nothing pickled: a job is one JSON line; an answer
is one JSON line ``{"files": [[name, size], ...]}`` followed by the bytes in that order, or
``{"error": <traceback>}``; a computing child sends ``{"progress": [done, total, note]}`` lines
before it (at most one per percent, so they never fill the pipe while nobody reads it). Drawing: ``{"kind_module": ..., "folder": ..., "names": [...]}`` ->
the figures' PNGs; EOF ends a worker. Computing: ``{"kind_module": ..., "name": ...,
"settings": {...}}`` (and ``"upstream": {name: {"kind_module": ..., "folder": ...}}`` for the
results it reads) -> the result files. Only kind modules are imported by name.

``Workers`` is the build context's owner of all of it (ctx.state("workers", Workers)).
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, Callable

ENV_WORKERS = "LORA_SITE_DRAW_WORKERS"
MAX_DRAW_WORKERS = 64
# On more than one core heavy results compute in a child; =0 computes them in the build, =1
# always in a child. (LORA_SITE_AUDIT_PROCESS is the older name, still read.)
ENV_PROCESS = "LORA_SITE_COMPUTE_PROCESS"
ENV_PROCESS_OLD = "LORA_SITE_AUDIT_PROCESS"


def usable_cores() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores or 1


def worker_count() -> int:
    """How many processes draw: one per core (at most 4), 0 (draw in the build) on one core.
    LORA_SITE_DRAW_WORKERS=N sets it; 0 draws in the build process."""
    raw = os.environ.get(ENV_WORKERS)
    if raw is not None:
        try:
            count = int(raw)
        except ValueError:
            count = -1
        if not 0 <= count <= MAX_DRAW_WORKERS:
            from ..core.errors import ConfigError

            raise ConfigError(f"{raw!r} is not a number of processes", field=ENV_WORKERS,
                              hint=f"set it to 0 to draw in the build, or up to "
                                   f"{MAX_DRAW_WORKERS} processes, or unset it")
        return count
    cores = usable_cores()
    return min(cores, 4) if cores > 1 else 0


def use_second_process() -> bool:
    raw = os.environ.get(ENV_PROCESS, os.environ.get(ENV_PROCESS_OLD))
    if raw is not None:
        return raw.strip() not in ("", "0")
    return usable_cores() > 1


def child_env() -> dict[str, str]:
    """The environment of a child interpreter: this one's (the numeric pins included), with
    the generator package this process runs first on the path, whatever the working folder."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env.setdefault("MPLBACKEND", "Agg")
    return env


def split(names: tuple[str, ...], parts: int) -> list[tuple[str, ...]]:
    """Round-robin shares: figure i goes to process i mod parts (before/after pairs separate)."""
    shares = [tuple(names[i::parts]) for i in range(parts)]
    return [s for s in shares if s]


# ---------------------------------------------------------------------------------------------
# Framing, shared by every end of every pipe

def send_line(out: BinaryIO, obj: dict[str, Any]) -> None:
    out.write((json.dumps(obj) + "\n").encode())
    out.flush()


def send_files(out: BinaryIO, files: dict[str, bytes]) -> None:
    names = sorted(files)
    out.write((json.dumps({"files": [[n, len(files[n])] for n in names]}) + "\n").encode())
    for n in names:
        out.write(files[n])
    out.flush()


def read_files(inp: BinaryIO, progress: Callable | None = None) -> dict[str, bytes] | str:
    """The files of one answer, or the error text (a short read is an error too). A computing
    child may send ``{"progress": [done, total, note]}`` lines first: each goes to
    ``progress``."""
    while True:
        line = inp.readline()
        if not line:
            return "the worker ended"
        header = json.loads(line)
        if "progress" not in header:
            break
        if progress is not None:
            progress(*header["progress"])
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
        import subprocess

        self.processes = max(1, processes)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "generator.stages.worker_main", "draw", str(self.processes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env())
        self.last_error: str | None = None
        self._next = 0
        self._waiting: list[int] = []                   # tickets sent, answers not yet read
        self._answers: dict[int, dict[str, bytes] | str] = {}

    def submit(self, kind_module: str, folder: Path, names: tuple[str, ...],
               processes: int | None = None) -> int:
        """Send a job and return at once with its ticket: figures ``names`` of the result in
        ``folder``, drawn by the kind of ``kind_module`` with at most ``processes`` processes
        (fewer leave a core to the build while it works on). Answers come in order."""
        ticket, self._next = self._next, self._next + 1
        job: dict[str, Any] = {"kind_module": kind_module, "folder": str(folder),
                               "names": list(names)}
        if processes is not None:
            job["processes"] = processes
        try:
            if self.proc is None:
                raise OSError("the worker is closed")
            send_line(self.proc.stdin, job)
            self._waiting.append(ticket)
        except (OSError, ValueError) as exc:
            self._answers[ticket] = f"{type(exc).__name__}: {exc}"
        return ticket

    def result(self, ticket: int) -> dict[str, bytes] | None:
        """The images of a submitted job (waiting for them); None if the worker failed (the
        caller then draws in-process, where a real error shows its traceback)."""
        while ticket not in self._answers and self._waiting:
            oldest = self._waiting.pop(0)
            try:
                self._answers[oldest] = read_files(self.proc.stdout)
            except (OSError, ValueError, AttributeError) as exc:
                self._answers[oldest] = f"{type(exc).__name__}: {exc}"
        answer = self._answers.pop(ticket, "no such job")
        if isinstance(answer, str):
            self.last_error = answer
            return None
        return answer

    def draw(self, kind_module: str, folder: Path, names: tuple[str, ...]):
        """submit, then wait for the result."""
        return self.result(self.submit(kind_module, folder, names))

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
        import subprocess

        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


class PendingFigures(Mapping):
    """file name -> PNG bytes of figures a worker is still drawing. The names are known at once
    (enough to render pages), the bytes arrive on first use, so the build goes on meanwhile."""

    def __init__(self, owner: "Workers", names: tuple[str, ...],
                 resolve: Callable[[], dict[str, bytes]]) -> None:
        self._owner, self._names, self._resolve = owner, tuple(names), resolve
        self._images: dict[str, bytes] | None = None

    def images(self) -> dict[str, bytes]:
        if self._images is None:
            self._images = self._resolve()
            self._owner._resolved(self)
        return self._images

    def __getitem__(self, name: str) -> bytes:
        return self.images()[name]

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class Workers:
    """The figure worker, the figures it is drawing, and the compute children of a context."""

    def __init__(self, ctx) -> None:
        self.pool: DrawPool | None = None
        self.pending: list[PendingFigures] = []
        self.children: dict[str, dict[str, Any]] = {}     # name -> {"key", "proc"}
        ctx.on_close(self.close)

    # ---- drawing

    def start_pool(self) -> DrawPool | None:
        """Start the figure worker now (idempotent): it imports matplotlib while the build
        does other work. None when drawing happens in this process."""
        if self.pool is None:
            n = worker_count()
            if n:
                self.pool = DrawPool(n)
        return self.pool

    def draw_later(self, kind, folder: Path, names: tuple[str, ...], files: tuple[str, ...], *,
                   fallback: Callable[[], dict[str, bytes]],
                   keep: Callable[[dict[str, bytes]], None]) -> Mapping[str, bytes]:
        """Figures ``names`` of ``folder``, drawn by the worker while the build goes on (a
        PendingFigures whose ``files`` are known at once), then passed to ``keep``. Without a
        worker, or if it fails, ``fallback`` draws them here."""
        pool = self.start_pool()
        if pool is None:
            images = fallback()
            keep(images)
            return images
        # Keep one core for the build, which trains or renders meanwhile.
        ticket = pool.submit(kind.module, folder, names, processes=max(1, pool.processes - 1))

        def resolve() -> dict[str, bytes]:
            images = pool.result(ticket)
            if images is None:
                images = fallback()
            keep(images)
            return images
        pending = PendingFigures(self, files, resolve)
        self.pending.append(pending)
        return pending

    def _resolved(self, pending: PendingFigures) -> None:
        # By identity: list.remove would compare with ==, which resolves the other pending
        # mappings it meets (Mapping equality reads their bytes).
        self.pending = [p for p in self.pending if p is not pending]
        if not self.pending:
            self.close_pool()               # nothing is being drawn any more

    def finish_drawing(self) -> None:
        """Collect every figure still being drawn (each is stored as it arrives)."""
        for pending in list(self.pending):
            pending.images()

    def close_pool(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    # ---- computing

    def start_compute(self, name: str, kind, settings: Any, key: str,
                      upstream: Mapping[str, tuple[str, Path]] | None = None) -> bool:
        """Compute ``name`` in a child process (when the machine has cores to spare), to be
        collected by ``collect``; ``upstream``: name -> (kind module, folder) of each result
        it reads, which the child loads. True if a child now computes it."""
        if not use_second_process():
            return False
        running = self.children.get(name)
        if running is not None:
            if running["key"] == key and running["proc"].poll() is None:
                return True
            self.stop(name)
        if any(c["proc"].poll() is None for c in self.children.values()) and usable_cores() < 3:
            return False                    # one child at a time on two cores
        import subprocess

        proc = subprocess.Popen([sys.executable, "-m", "generator.stages.worker_main", "compute"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=child_env())
        try:
            job = {"kind_module": kind.module, "name": name,
                   "settings": kind.settings_dict(settings)}
            if upstream:
                job["upstream"] = {n: {"kind_module": m, "folder": str(f)}
                                   for n, (m, f) in sorted(upstream.items())}
            send_line(proc.stdin, job)
            proc.stdin.close()
        except OSError:
            proc.kill()
            proc.wait()
            return False
        self.children[name] = {"key": key, "proc": proc}
        return True

    def computing(self, name: str) -> bool:
        return name in self.children

    def collect(self, name: str, key: str,
                progress: Callable | None = None) -> dict[str, bytes] | None:
        """The files the child computing ``name`` answers, waiting for them (its progress
        reports go to ``progress``); None when there is none, it computed other inputs, or it
        failed (the caller computes here, where a real error shows its traceback)."""
        child = self.children.pop(name, None)
        if child is None:
            return None
        proc = child["proc"]
        if child["key"] != key:
            self._end(proc)
            return None
        try:
            answer = read_files(proc.stdout, progress)
        except (OSError, ValueError, TypeError):
            answer = "unreadable answer"
        finally:
            proc.stdout.close()
            proc.wait()
        return answer if isinstance(answer, dict) and proc.returncode == 0 else None

    def stop(self, name: str) -> None:
        child = self.children.pop(name, None)
        if child is not None:
            self._end(child["proc"])

    @staticmethod
    def _end(proc) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()

    def close(self) -> None:
        """End every child nobody collected, collect the figures still being drawn, end the
        worker."""
        for name in list(self.children):
            self.stop(name)
        try:
            self.finish_drawing()
        finally:
            self.close_pool()
