"""The build worker: a process that keeps one warm build (serve/warm.py) and builds on request.

The server never builds itself. Building in a process of its own keeps the server answering
while a setting edit retrains an experiment, lets a crash end only the worker, and makes an
edit to the generator's own code honest: Python cannot take new code into modules it has
imported, so the server ends the worker and starts a fresh one (serve/__init__.py).

Protocol, over the worker's stdin and a duplicate of its stdout (its own stdout is pointed at
stderr, so nothing a library prints can break a message): the server writes
``{"build": N, "changed": [...]}`` lines (the files that changed, or null when it does not
know); the worker answers each with the pages of site/html that changed, as soon as they are
rendered (``{"pages": [[path, size], ...]}`` and the bytes; size -1 for a page that is gone),
perhaps twice (the edited posts' pages first), then the serve.warm.Outcome of the build as
one JSON line. EOF on stdin ends the worker; so does SIGTERM (the build's children are ended
on the way out).

The worker's end is serve/worker_main.py:

    python -m generator.serve.worker_main --root DIR [--baseurl P] [--frozen] [--drafts] [--debug]
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Callable, Iterable

from ..core.project import Project
from .warm import Outcome


def worker_command(project: Project, *, baseurl: str | None, frozen: bool, drafts: bool,
                   debug: bool) -> list[str]:
    cmd = [sys.executable, "-m", "generator.serve.worker_main", "--root", str(project.root)]
    if baseurl is not None:
        cmd += ["--baseurl", baseurl]
    cmd += [flag for flag, on in (("--frozen", frozen), ("--drafts", drafts),
                                  ("--debug", debug)) if on]
    return cmd


class BuildWorker:
    """The server's end: starts the worker, asks it to build, restarts it when asked."""

    def __init__(self, project: Project, *, baseurl: str | None = None, frozen: bool = False,
                 drafts: bool = False, debug: bool = False) -> None:
        self.project = project
        self.command = worker_command(project, baseurl=baseurl, frozen=frozen, drafts=drafts,
                                      debug=debug)
        self.proc: subprocess.Popen | None = None
        self.busy = False                           # a build was asked for and not answered
        self._count = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the worker now (it imports the build while the server does other things)."""
        from ..stages.workers import child_env

        if self.proc is not None and self.proc.poll() is None:
            return
        env = child_env()
        env.setdefault("PYTHONHASHSEED", "0")
        # In the project folder, as `python -m generator build` there: a project's own copy
        # of the package is the one that builds.
        self.proc = subprocess.Popen(self.command, cwd=self.project.root, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def build(self, on_pages: Callable[[dict[str, bytes | None]], None] | None = None,
              changed: Iterable[str] | None = None) -> Outcome:
        """One build in the worker (started if need be). on_pages: told the pages of site/html
        that changed as soon as they are rendered (before they are written), perhaps more
        than once (serve.warm.WarmBuilder.build). changed: the files the build is for, when
        known. A worker that ends without answering is a failed build, and the next build
        starts a new one."""
        with self._lock:
            self.start()
            proc = self.proc
            self._count += 1
            self.busy = True
            try:
                request = {"build": self._count,
                           "changed": None if changed is None else sorted(changed)}
                proc.stdin.write((json.dumps(request) + "\n").encode())
                proc.stdin.flush()
                while True:
                    line = proc.stdout.readline()
                    if not line or "pages" not in (doc := json.loads(line)):
                        break
                    pages = {}
                    for name, size in doc["pages"]:
                        pages[name] = None if size < 0 else proc.stdout.read(size)
                        if pages[name] is not None and len(pages[name]) != size:
                            raise ValueError("the worker ended mid-answer")
                    if on_pages is not None:
                        on_pages(pages)
            except (OSError, ValueError):
                line = b""
            finally:
                self.busy = False
            if not line:
                code = proc.wait()
                self.proc = None
                return Outcome(False, f"the build worker ended (exit status {code}) before "
                               "finishing; the next change starts a new one (run "
                               "`lora-site --debug serve` to see why)")
            return Outcome.from_json(json.loads(line))

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        """End the worker: EOF first (it closes its build context), SIGTERM if it is busy."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        if self.busy and proc.poll() is None:
            # A worker that is building (training, say) does not read its stdin: interrupt it;
            # its handler ends the children it started.
            proc.terminate()
        for give_up in (proc.terminate, proc.kill):
            try:
                proc.wait(timeout=15)
                break
            except subprocess.TimeoutExpired:
                give_up()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
