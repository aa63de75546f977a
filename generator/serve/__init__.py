"""Live preview: build, serve site/html on 127.0.0.1, rebuild on change, reload the open page.

Four parts, each in its own module:
- watch.py: operating-system notifications (watchfiles) on content/, templates/ and the
  generator package; editors' temporary files, caches and outputs are ignored;
- worker.py + warm.py: a build worker process that keeps one warm build context, so a prose
  edit re-renders one post without importing, parsing or compiling anything again, and its
  page is served before the rest of the build runs (publish.early); an edit to the
  generator's code restarts that process (a warm process cannot take new code in);
- web.py: an HTTP server that only ever serves files inside site/html, adds the reload script
  to the pages it serves (never to the built files) and pushes each build's outcome to the
  open pages as server-sent events;
- this module: the server that ties them together. Changes that arrive while a build runs are
  built together as soon as it ends; the server keeps answering meanwhile, with the last good
  site.
"""
from __future__ import annotations

import os
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from ..core.errors import BuildError
from ..core.project import Project
from .watch import Watcher, ignored, is_code, package_root, watched_roots
from .web import EVENTS, BuildState, PreviewHandler, events_between, inject, resolve_request
from .worker import BuildWorker

__all__ = ["EVENTS", "BuildState", "PreviewServer", "events_between", "ignored", "inject",
           "resolve_request", "serve", "watched_roots"]

SLOW_BUILD_S = 0.5          # a build still running after this is shown on the page
# Files no open page displays (the feed, the sitemap, the data offered for download): a change
# to them alone reloads no page. Not .json: the attention explorer draws from one.
UNSHOWN = (".xml", ".npz", ".csv")


def site_baseurl(project: Project) -> str:
    """The baseurl from content/site.yml ('' or '/repo'), so links work as they will online."""
    try:
        import yaml
        data = yaml.safe_load(project.site_yml.read_text(encoding="utf-8")) or {}
        base = str(data.get("baseurl") or "").strip()
    except Exception:           # a broken site.yml is the build's error to report, not ours
        return ""
    return "/" + base.strip("/") if base.strip("/") else ""


def drop_bytecode(paths) -> None:
    """Remove the cached bytecode of edited source files. Python trusts a .pyc while the
    source's mtime (in whole seconds) and size are those it recorded, so an edit within the
    same second that keeps the size (a digit changed) would run the old code in the new
    worker."""
    for path in paths:
        source = Path(path)
        for pyc in source.parent.glob(f"__pycache__/{source.stem}.*.pyc"):
            try:
                pyc.unlink()
            except OSError:
                pass                    # not ours to remove: Python checks it as usual


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            out[path] = (st.st_mtime_ns, st.st_size)
    return out


def listen(host: str, port: int, handler) -> ThreadingHTTPServer:
    """The HTTP server on host:port; a port in use, a privileged port or an address that is not
    this machine's is one line naming host:port and what to do."""
    import errno
    import socket

    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        if isinstance(exc, socket.gaierror):
            field, hint = "--host", "no such host name: use an address such as 127.0.0.1"
        elif exc.errno == errno.EADDRINUSE:
            field, hint = "--port", (f"another program is listening on port {port}: stop it, or "
                                     "pick another port with --port; --port 0 picks a free one")
        elif exc.errno == errno.EACCES:
            field, hint = "--port", "ports below 1024 need privileges: use --port 8000"
        elif exc.errno == errno.EADDRNOTAVAIL:
            field, hint = "--host", ("that address is not one of this machine's: use --host "
                                     "127.0.0.1")
        else:
            field, hint = "--host", "check --host and --port"
        raise BuildError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", field=field,
                         hint=hint) from None


class PreviewServer:
    """The HTTP server, the watcher and the build worker, started and stopped together."""

    def __init__(self, project: Project, *, host: str = "127.0.0.1", port: int = 8000,
                 baseurl: str | None = None, frozen: bool = False, drafts: bool = False,
                 quiet: bool = False, debug: bool = False,
                 log: Callable[[str], None] | None = None) -> None:
        self.project = project
        self.quiet = quiet
        self.log = log or (lambda line: print(line, flush=True))
        self.state = BuildState()
        self.package = package_root(project)
        self.fixed_baseurl = baseurl
        self.worker = BuildWorker(project, baseurl=baseurl, frozen=frozen, drafts=drafts,
                                  debug=debug)
        self.watcher = Watcher(lambda: watched_roots(project), self._changed)
        # A project's own kind modules (site.yml's kinds:) are code too; their folders are
        # known once a build has imported them, and only those files count (is_code).
        self.code_watcher = Watcher(lambda: sorted({Path(p).parent for p in self._code}),
                                    self._changed_code, recursive=False)
        self._code: set[str] = set()            # a project's own kind modules, once built
        self._pending: set[str] = set()
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._freeze_seen: dict[str, tuple[int, int]] = {}
        handler = type("Handler", (PreviewHandler,), {
            "html_root": project.site / "html", "baseurl": self._baseurl(), "state": self.state})
        self.handler = handler
        self.httpd = listen(host, port, handler)
        self.httpd.daemon_threads = True
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{self.handler.baseurl}/"

    def _baseurl(self) -> str:
        if self.fixed_baseurl is not None:
            base = self.fixed_baseurl.strip().strip("/")
            return "/" + base if base else ""
        return site_baseurl(self.project)

    def _say(self, line: str) -> None:
        if not self.quiet:
            self.log(line)

    # ---- watching

    def _changed_code(self, paths: set[str]) -> None:
        mine = {p for p in paths if p in self._code}
        if mine:
            self._changed(mine)

    def _changed(self, paths: set[str]) -> None:
        with self._wake:
            self._pending |= paths
            self._wake.notify_all()

    def _own_writes(self, paths: set[str]) -> set[str]:
        """The files of content/_freeze that are as the last build left them: what a build
        wrote there is no reason to build again (its notifications may come during the
        build, so this is asked when the changes are taken, after it)."""
        root = str(self.project.freeze)
        freeze = root + os.sep
        mine = set()
        for path in paths:
            if path == root or path.startswith(freeze):
                if os.path.isdir(path):
                    mine.add(path)          # a folder made: what it holds has its own news
                    continue
                try:
                    st = os.stat(path)
                    stamp = (st.st_mtime_ns, st.st_size)
                except OSError:
                    stamp = None
                if self._freeze_seen.get(path) == stamp:
                    mine.add(path)
        return mine

    # ---- building

    def build(self, changed: set[str] | None = None) -> None:
        """One build in the worker, its outcome logged and pushed to the open pages. changed:
        the files it is for (the worker may then serve an edited post's page first)."""
        timer = threading.Timer(SLOW_BUILD_S, self.state.building,
                                args=("lora-site: rebuilding…",))
        timer.daemon = True
        timer.start()
        told, pushed = [], []

        def pages(new: dict[str, bytes | None]) -> None:
            # Pages rendered: serve them now and reload the open pages, while the worker goes
            # on (the rest of the build, then writing site/, whose files are the same bytes).
            # An edited post's page may come first, alone, then the others that changed: a
            # second batch that no open page shows (the feed) reloads nothing again.
            timer.cancel()
            self.handler.overlay = {**self.handler.overlay, **new}
            pushed.append(True)
            if any(not name.endswith(UNSHOWN) for name in new):
                self.state.finished(None, True)
                told.append(True)
        try:
            outcome = self.worker.build(on_pages=pages, changed=changed)
        finally:
            timer.cancel()
            self.handler.overlay = {}
        self._freeze_seen = _stamps(self.project.freeze)
        if set(outcome.code) - self._code:
            self._code |= set(outcome.code)
            self.code_watcher.rewatch()
        self.handler.baseurl = self._baseurl()
        if outcome.error is not None:
            # Pages told before the build failed were served from memory only: the site
            # served now is the last good one again, which the pages reload to (reverted).
            self.state.finished(outcome.error, False, reverted=bool(told))
        elif not told:
            # Nothing the pages show changed (or nothing was pushed: the first build).
            self.state.finished(None, outcome.changed and not pushed)
        if outcome.ok:
            for line in outcome.log:
                self._say(f"  {line}")
            self._say(f"built in {outcome.seconds * 1000:.0f} ms" +
                      ("" if outcome.changed else " (the site is unchanged)"))
        else:
            self.log(f"build failed: {outcome.error}")

    def _builder(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending or self._stop.is_set())
                if self._stop.is_set():
                    return
                changed, self._pending = self._pending, set()
            changed -= self._own_writes(changed)
            if not changed:
                continue
            code = [p for p in changed if is_code(p, self.package, self._code)]
            restart = bool(code)
            rel = sorted(os.path.relpath(p, self.project.root) for p in changed)
            shown = ", ".join(rel[:3]) + (f" and {len(rel) - 3} more" if len(rel) > 3 else "")
            if restart:
                self._say(f"changed: {shown}; the generator's code changed, so the build "
                          "worker starts afresh (a warm process cannot take in new code)")
                drop_bytecode(code)
                self.worker.restart()
            else:
                self._say(f"changed: {shown}; rebuilding")
            self.build(changed)

    # ---- life

    def start(self) -> None:
        self.worker.start()
        self.watcher.start()
        self.code_watcher.start()
        self.watcher.ready.wait(timeout=10)
        thread = threading.Thread(target=self.httpd.serve_forever, name="lora-site http",
                                  daemon=True)
        thread.start()
        self._threads.append(thread)
        self._say(f"building {self.project.root}")
        self.build()
        thread = threading.Thread(target=self._builder, name="lora-site build", daemon=True)
        thread.start()
        self._threads.append(thread)
        self.log(f"serving {self.project.site / 'html'} at {self.url} (Ctrl-C stops)")

    def stop(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        self.state.close()
        self.watcher.stop()
        self.code_watcher.stop()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.worker.stop()                  # a build in progress ends with it
        for thread in self._threads:
            thread.join(timeout=5)


def serve(project: Project, *, host: str = "127.0.0.1", port: int = 8000, **options) -> None:
    """Run the preview until interrupted. options: baseurl, frozen, drafts, quiet, debug."""
    server = PreviewServer(project, host=host, port=port, **options)
    try:
        server.start()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
