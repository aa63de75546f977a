"""The preview's HTTP side: files of site/html only, the reload script, the push channel.

Pages are served with a small script added before ``</body>`` (never into the built files).
The script opens a server-sent-events stream (EVENTS) and is told:
  reload   a build changed the site: the page reloads where the reader was (the scroll
           position is kept in sessionStorage across the reload)
  failed   the last build failed: its one-line error is shown at the bottom of the page, which
           stays as it was (the last good site is still what is served); a page of another
           version than the site served (shown early by the build that failed) reloads first
  ok       a build succeeded without changing the site: the error is taken away
  status   a build is taking a while (training, say): a note says so until it ends
Standard library only: the server process never imports the build.
"""
from __future__ import annotations

import html
import json
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

EVENTS = "/__lora-site/events"      # outside any baseurl, so it never shadows a page
KEEPALIVE_S = 15.0                  # a comment line this often finds readers that went away
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".xml": "application/xml; charset=utf-8",
         ".json": "application/json", ".png": "image/png", ".svg": "image/svg+xml",
         ".txt": "text/plain; charset=utf-8", ".ico": "image/x-icon", ".woff2": "font/woff2"}

CLIENT_SCRIPT = """<script>/* lora-site serve: live reload (never in the built files) */
(function () {
  var version = %(version)d, key = "lora-site-scroll";
  function restore() {
    var saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(key) || "null"); } catch (e) {}
    if (saved && saved.path === location.pathname) { window.scrollTo(saved.x, saved.y); }
    return saved;
  }
  // Where the reader was before the reload; again once images and math have laid out.
  if (restore()) {
    window.addEventListener("load", function () {
      restore();
      var mj = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
      var done = function () { restore(); sessionStorage.removeItem(key); };
      if (mj) { mj.then(done, done); } else { done(); }
    });
  }
  function bar(id, text, colour) {
    var el = document.getElementById(id);
    if (!text) { if (el) { el.remove(); } return; }
    if (!el) {
      el = document.createElement("pre");
      el.id = id;
      el.setAttribute("role", "status");
      el.style.cssText = "position:fixed;left:0;right:0;bottom:0;margin:0;padding:.6em 1em;" +
        "color:#fff;font:13px/1.4 monospace;white-space:pre-wrap;z-index:99999";
      document.body.appendChild(el);
    }
    el.style.background = colour;
    el.textContent = text;
  }
  var events = new EventSource("%(endpoint)s?version=" + version);
  function reload() {
    sessionStorage.setItem(key, JSON.stringify(
      {path: location.pathname, x: window.scrollX, y: window.scrollY}));
    events.close();
    location.reload();
  }
  events.addEventListener("reload", reload);
  events.addEventListener("failed", function (e) {
    var data = JSON.parse(e.data);
    if (data.version !== version) {
      // This page is not the site served now (a page shown early by a build that then
      // failed): reload the last good one, which is then told the error.
      reload();
      return;
    }
    bar("lora-site-status", "", "");
    bar("lora-site-error", "lora-site build failed: " + data.error, "#8b0000");
  });
  events.addEventListener("ok", function () { bar("lora-site-error", "", ""); });
  events.addEventListener("status", function (e) {
    bar("lora-site-status", JSON.parse(e.data).status, "#333");
  });
})();
</script>"""


@dataclass
class BuildState:
    """What the open pages are told: the site's version (moved by every build that changed
    the site), the last build's error, and a note while a long build runs. ``seq`` moves on
    every change, which the event streams wait for."""

    version: int = 0
    error: str | None = None
    status: str | None = None
    seq: int = 0
    closed: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)

    def snapshot(self) -> tuple[int, int, str | None, str | None]:
        with self.cond:
            return self.seq, self.version, self.error, self.status

    def finished(self, error: str | None, changed: bool, *, reverted: bool = False) -> None:
        """A build ended. reverted: it failed after its pages had been served (from memory),
        so the site served is the last good one again: the version moves, and a page that
        was told the failure with a version other than its own reloads."""
        with self.cond:
            if (error is None and changed) or reverted:
                self.version += 1
            self.error, self.status = error, None
            self.seq += 1
            self.cond.notify_all()

    def building(self, status: str | None) -> None:
        with self.cond:
            self.status = status
            self.seq += 1
            self.cond.notify_all()

    def wait_past(self, seq: int, timeout: float) -> tuple[int, int, str | None, str | None]:
        with self.cond:
            self.cond.wait_for(lambda: self.seq != seq or self.closed, timeout=timeout)
            return self.seq, self.version, self.error, self.status

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def events_between(old: tuple[int, str | None, str | None],
                   new: tuple[int, str | None, str | None]) -> list[tuple[str, dict]]:
    """The events that take a page from what it was told (version, error, status) to the
    state now: a reload alone when the site changed and built, else the error, its end, and
    the status note as they changed."""
    version, error, status = new
    before_version, before_error, before_status = old
    out: list[tuple[str, dict]] = []
    if error is not None:
        if error != before_error:
            out.append(("failed", {"error": error, "version": version}))
    elif version != before_version:
        return [("reload", {"version": version})]
    elif before_error is not None:
        out.append(("ok", {"version": version}))
    if status != before_status:
        out.append(("status", {"status": status}))
    return out


def url_parts(baseurl: str, url_path: str) -> list[str] | None:
    """The path below the site a URL path names, as its parts; None outside the baseurl or for
    a path that tries to leave the site."""
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
    return parts


def overlay_page(overlay: dict[str, bytes | None], baseurl: str,
                 url_path: str) -> tuple[str, bytes | None] | None:
    """(path, bytes or None for a page that is gone) of a page the last build rendered and has
    not finished writing, or None: then the file on disk is the answer."""
    parts = url_parts(baseurl, url_path)
    if parts is None or not overlay:
        return None
    rel = "/".join(parts)
    for candidate in ((rel, f"{rel}/index.html") if rel else ("index.html",)):
        if candidate in overlay:
            return candidate, overlay[candidate]
    return None


def resolve_request(html_root: Path, baseurl: str, url_path: str) -> Path | None:
    """The file under html_root a URL path names, or None (never a path outside html_root)."""
    parts = url_parts(baseurl, url_path)
    if parts is None:
        return None
    root = html_root.resolve()
    candidate = (root.joinpath(*parts) if parts else root).resolve()
    # resolve() follows symlinks: a link that points outside the site is refused too.
    if candidate != root and not candidate.is_relative_to(root):
        return None
    if candidate.is_dir():
        candidate = candidate / "index.html"
    return candidate if candidate.is_file() else None


def inject(page: bytes, version: int) -> bytes:
    data = (CLIENT_SCRIPT % {"version": version, "endpoint": EVENTS}).encode("utf-8")
    at = page.lower().rfind(b"</body>")
    return page[:at] + data + page[at:] if at >= 0 else page + data


class PreviewHandler(BaseHTTPRequestHandler):
    server_version = "lora-site-serve"
    html_root: Path
    baseurl: str
    state: BuildState
    quiet: bool = True
    # Pages of a build that are rendered but not yet written (path below site/html -> bytes,
    # None: gone): served from here until the build has written site/.
    overlay: dict[str, bytes | None] = {}

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
        if url.path == EVENTS:
            return self._events(url.query)
        if self.baseurl and url.path in ("", "/"):
            return self._send(HTTPStatus.FOUND, b"", "text/plain",
                              {"Location": self.baseurl + "/"})
        # The version first, then the page: a build moves the version after it changes what
        # is served, so a page can only be older than the version it is told, never newer
        # (then it reloads once more, and never stays stale).
        version = self.state.snapshot()[1]
        fresh = overlay_page(self.overlay, self.baseurl, url.path)
        if fresh is not None:
            rel, body = fresh
            if body is None:
                return self._not_found(version)
            ctype = TYPES.get(Path(rel).suffix.lower(), "application/octet-stream")
            if rel.endswith(".html"):
                body = inject(body, version)
            return self._send(HTTPStatus.OK, body, ctype)
        target = self._resolve(url.path)
        if target is None:
            return self._not_found(version)
        try:
            body = target.read_bytes()
        except OSError:             # replaced by a build between resolving and reading
            target = self._resolve(url.path)
            if target is None:
                return self._not_found(version)
            body = target.read_bytes()
        ctype = TYPES.get(target.suffix.lower(), "application/octet-stream")
        if target.suffix.lower() == ".html":
            body = inject(body, version)
        self._send(HTTPStatus.OK, body, ctype)

    def _resolve(self, url_path: str) -> Path | None:
        # A build swaps the new site in with two renames; in between there is no site/html.
        # Wait that instant out rather than answer 404 (bounded: a deleted site stays deleted).
        for _ in range(50):
            found = resolve_request(self.html_root, self.baseurl, url_path)
            if found is not None or self.html_root.is_dir():
                return found
            time.sleep(0.002)
        return None

    def _not_found(self, version: int | None = None) -> None:
        if version is None:
            version = self.state.snapshot()[1]
        page = self.html_root / "404.html"
        fresh = self.overlay.get("404.html")
        if fresh is not None:
            body = inject(fresh, version)
        elif page.is_file():
            body = inject(page.read_bytes(), version)
        else:
            body = (f"<!doctype html><title>Not found</title><h1>Not found</h1>"
                    f"<p>{html.escape(self.path)}</p>").encode()
        self._send(HTTPStatus.NOT_FOUND, body, "text/html; charset=utf-8")

    def _events(self, query: str) -> None:
        """The push channel: one event per change, until the reader goes or the server
        stops. A page says which version it shows, so a reload it missed while reconnecting
        is sent at once."""
        seq, version, error, status = self.state.snapshot()
        try:
            known = int(parse_qs(query).get("version", [str(version)])[0])
        except ValueError:
            known = version
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        told = (known, None, None)
        try:
            self.wfile.write(b"retry: 500\n\n")
            while True:
                events = events_between(told, (version, error, status))
                for name, data in events:
                    self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                if events:
                    self.wfile.flush()
                told = (version, error, status)
                if events and events[0][0] == "reload":
                    return              # the page goes; its next load opens a new stream
                before = seq
                seq, version, error, status = self.state.wait_past(seq, KEEPALIVE_S)
                if self.state.closed:
                    return
                if seq == before:
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
