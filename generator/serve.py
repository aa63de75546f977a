"""Live preview: build, serve site/html on 127.0.0.1, rebuild on change, reload the open page.

Three small parts:
- a watcher that polls the mtimes and sizes of content/, templates/ and generator/ (no extra
  dependency; a few hundred stat calls every half second are nothing);
- a builder that runs `python -m generator build` in a *fresh process* for each change, so an
  edit to generator/*.py takes effect and a crash cannot take the server down; the build's own
  caches make an unchanged stage free;
- an HTTP server that only ever serves files inside site/html, injects a tiny script into the
  HTML it serves (never into the built files) and answers that script's long-poll with the build
  version, so the page reloads as soon as a rebuild finishes.
"""
from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

from .core.project import Project

ENDPOINT = "/__lora-site/wait"      # outside any baseurl, so it never shadows a page
WAIT_LIMIT_S = 20.0                 # a long-poll answers at least this often
WATCHED = ("content", "templates")
IGNORED_SUFFIXES = (".swp", ".swx", ".tmp", "~")
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".xml": "application/xml; charset=utf-8",
         ".json": "application/json", ".png": "image/png", ".svg": "image/svg+xml",
         ".txt": "text/plain; charset=utf-8", ".ico": "image/x-icon", ".woff2": "font/woff2"}

# Reload when the build version moves past the one this page was served at; show a failed
# build's message on the page (the previous site stays up).
CLIENT_SCRIPT = """<script>/* lora-site serve: live reload (never in the built files) */
(function () {
  var version = %(version)d, error = %(error)s;
  if (error) {
    var bar = document.createElement("pre");
    bar.textContent = "lora-site build failed: " + error;
    bar.style.cssText = "position:fixed;left:0;right:0;bottom:0;margin:0;padding:.6em 1em;" +
      "background:#8b0000;color:#fff;font:13px/1.4 monospace;white-space:pre-wrap;z-index:99999";
    document.body.appendChild(bar);
  }
  function poll() {
    fetch("%(endpoint)s?since=" + version, {cache: "no-store"})
      .then(function (r) { return r.json(); })
      .then(function (s) { if (s.version !== version) { location.reload(); } else { poll(); } })
      .catch(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
</script>"""


# ---------------------------------------------------------------------------------------------
# Watching

def watched_roots(project: Project) -> list[Path]:
    """content/, templates/ and the generator package that builds (the project's own copy when it
    has one, else the installed package)."""
    own = project.root / "generator"
    package = own if (own / "__init__.py").is_file() else Path(__file__).resolve().parent
    return [project.root / name for name in WATCHED] + [package]


def snapshot(roots: list[Path]) -> dict[str, tuple[int, int]]:
    """path -> (mtime_ns, size) of every watched file, in sorted order."""
    state: dict[str, tuple[int, int]] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames
                                 if not d.startswith(".") and d != "__pycache__")
            for name in sorted(filenames):
                if name.startswith(".") or name.endswith(IGNORED_SUFFIXES):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue            # deleted between listing and stat
                state[path] = (st.st_mtime_ns, st.st_size)
    return state


def changed_paths(old: dict[str, tuple[int, int]], new: dict[str, tuple[int, int]]) -> list[str]:
    return sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))


# ---------------------------------------------------------------------------------------------
# Building

def build_command(project: Project, drafts: bool = False) -> list[str]:
    """The build, as a fresh interpreter running the package this server was started from."""
    return [sys.executable, "-m", "generator", "build", "--root", str(project.root), "--explain",
            *(["--drafts"] if drafts else [])]


def _child_env() -> dict[str, str]:
    from .stages.workers import child_env

    env = child_env()           # the package this server runs, first on the path
    env.setdefault("PYTHONHASHSEED", "0")
    return env


@dataclass
class BuildState:
    """The number of finished builds and the last one's error; the long-poll waits on it."""

    version: int = 0
    error: str | None = None
    cond: threading.Condition = field(default_factory=threading.Condition)

    def finished(self, error: str | None) -> None:
        with self.cond:
            self.version += 1
            self.error = error
            self.cond.notify_all()

    def wait_past(self, since: int, timeout: float) -> tuple[int, str | None]:
        with self.cond:
            self.cond.wait_for(lambda: self.version != since, timeout=timeout)
            return self.version, self.error


def run_build(cmd: list[str], cwd: Path, log: Callable[[str], None]) -> str | None:
    """Run one build; None on success, else its last error line (the site stays as it was)."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=_child_env(), capture_output=True, text=True)
    if proc.returncode == 0:
        # --explain writes to stderr: which stages ran, and why.
        for line in proc.stderr.splitlines() + proc.stdout.splitlines():
            log(f"  {line}")
        log(f"built in {time.perf_counter() - started:.2f} s")
        return None
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    message = lines[-1] if lines else f"build exited with status {proc.returncode}"
    log(f"build failed: {message}")
    return message


# ---------------------------------------------------------------------------------------------
# Serving

def site_baseurl(project: Project) -> str:
    """The baseurl from content/site.yml ('' or '/repo'), so links work as they will online."""
    try:
        import yaml
        data = yaml.safe_load(project.site_yml.read_text(encoding="utf-8")) or {}
        base = str(data.get("baseurl") or "").strip()
    except Exception:           # a broken site.yml is the build's error to report, not ours
        return ""
    base = "/" + base.strip("/") if base.strip("/") else ""
    return base


def resolve_request(html_root: Path, baseurl: str, url_path: str) -> Path | None:
    """The file under html_root a URL path names, or None (never a path outside html_root)."""
    path = unquote(url_path)
    if "\x00" in path or "\\" in path:
        return None
    if baseurl:
        if path == baseurl:
            path = "/"
        elif path.startswith(baseurl + "/"):
            path = path[len(baseurl):]
        else:
            return None
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        return None
    root = html_root.resolve()
    candidate = (root.joinpath(*parts) if parts else root).resolve()
    # resolve() follows symlinks: a link that points outside the site is refused too.
    if candidate != root and not candidate.is_relative_to(root):
        return None
    if candidate.is_dir():
        candidate = candidate / "index.html"
    return candidate if candidate.is_file() else None


def inject(page: bytes, state: BuildState) -> bytes:
    script = CLIENT_SCRIPT % {"version": state.version, "endpoint": ENDPOINT,
                              "error": json.dumps(state.error).replace("</", "<\\/")}
    data = script.encode("utf-8")
    at = page.lower().rfind(b"</body>")
    return page[:at] + data + page[at:] if at >= 0 else page + data


class PreviewHandler(BaseHTTPRequestHandler):
    server_version = "lora-site-serve"
    html_root: Path
    baseurl: str
    state: BuildState
    quiet: bool = True

    def log_message(self, format: str, *args) -> None:     # noqa: A002 (the base's name)
        if not self.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        # A preview must always show the latest build.
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == ENDPOINT:
            try:
                since = int(parse_qs(url.query).get("since", ["-1"])[0])
            except ValueError:
                since = -1
            version, error = self.state.wait_past(since, WAIT_LIMIT_S)
            body = json.dumps({"version": version, "error": error}).encode()
            return self._send(HTTPStatus.OK, body, "application/json")
        if self.baseurl and url.path in ("", "/"):
            return self._send(HTTPStatus.FOUND, b"", "text/plain",
                              {"Location": self.baseurl + "/"})
        target = resolve_request(self.html_root, self.baseurl, url.path)
        if target is None:
            return self._not_found()
        ctype = TYPES.get(target.suffix.lower(), "application/octet-stream")
        body = target.read_bytes()
        if target.suffix.lower() == ".html":
            body = inject(body, self.state)
        self._send(HTTPStatus.OK, body, ctype)

    def _not_found(self) -> None:
        page = self.html_root / "404.html"
        if page.is_file():
            body = inject(page.read_bytes(), self.state)
        else:
            body = (f"<!doctype html><title>Not found</title><h1>Not found</h1>"
                    f"<p>{html.escape(self.path)}</p>").encode()
        self._send(HTTPStatus.NOT_FOUND, body, "text/html; charset=utf-8")


def listen(host: str, port: int, handler) -> ThreadingHTTPServer:
    """The HTTP server on host:port; a port in use, a privileged port or an address that is not
    this machine's is one line naming host:port and what to do."""
    import errno
    import socket

    from .core.errors import BuildError

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
            field, hint = "--host", "that address is not one of this machine's: use --host " \
                                    "127.0.0.1"
        else:
            field, hint = "--host", "check --host and --port"
        raise BuildError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", field=field,
                         hint=hint) from None


class PreviewServer:
    """The server, the watcher and the builder, started and stopped together."""

    def __init__(self, project: Project, *, host: str = "127.0.0.1", port: int = 8000,
                 interval: float = 0.5, command: list[str] | None = None,
                 log: Callable[[str], None] | None = None, drafts: bool = False) -> None:
        self.project = project
        self.interval = interval
        self.command = command or build_command(project, drafts)
        self.log = log or (lambda line: print(line, flush=True))
        self.state = BuildState()
        self.roots = watched_roots(project)
        self._stop = threading.Event()
        handler = type("Handler", (PreviewHandler,), {
            "html_root": project.site / "html", "baseurl": site_baseurl(project),
            "state": self.state})
        self.handler = handler
        self.httpd = listen(host, port, handler)
        self.httpd.daemon_threads = True
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{self.handler.baseurl}/"

    def build(self) -> None:
        error = run_build(self.command, self.project.root, self.log)
        self.handler.baseurl = site_baseurl(self.project)
        self.state.finished(error)

    def watch(self) -> None:
        seen = self._seen
        while not self._stop.wait(self.interval):
            now = snapshot(self.roots)
            if now == seen:
                continue
            # Let a burst of saves settle (an editor writes several files), at most ~2 s.
            for _ in range(8):
                if self._stop.wait(min(self.interval, 0.25)):
                    return
                later = snapshot(self.roots)
                if later == now:
                    break
                now = later
            changed = changed_paths(seen, now)
            shown = ", ".join(os.path.relpath(p, self.project.root) for p in changed[:3])
            more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            self.log(f"changed: {shown}{more}; rebuilding")
            self.build()
            # What the build itself wrote (content/_freeze) must not trigger another build.
            seen = snapshot(self.roots)

    def start(self) -> None:
        self.build()
        self._seen = snapshot(self.roots)
        for target in (self.httpd.serve_forever, self.watch):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.log(f"serving {self.project.site / 'html'} at {self.url} (Ctrl-C stops)")

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)


def serve(project: Project, *, host: str = "127.0.0.1", port: int = 8000,
          interval: float = 0.5, drafts: bool = False) -> None:
    """Run the preview until interrupted."""
    server = PreviewServer(project, host=host, port=port, interval=interval, drafts=drafts)
    server.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
