"""A static HTTP server on 127.0.0.1 that serves a folder under a URL prefix, like GitHub Pages.

GitHub Pages serves a project site under /<repo>/; a page that links to /assets/x.png instead of
/<repo>/assets/x.png works on a laptop and breaks there. This server answers only under its prefix,
so such a link gets the 404 it would get in production.
"""
from __future__ import annotations

import http.server
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path


class _Handler(http.server.SimpleHTTPRequestHandler):
    prefix = "/"                                      # set per server, always ends with "/"

    def log_message(self, format, *args):             # noqa: A002 - stdlib signature
        pass                                          # keep pytest output clean

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def _redirect(self, location: str):
        self.send_response(301)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send_head(self):
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        if path + "/" == self.prefix:                 # /repo -> /repo/, as Pages does
            self._redirect(self.prefix)
            return None
        if not path.startswith(self.prefix):
            self.send_error(404, "outside the served prefix")
            return None
        rest = path[len(self.prefix):]
        local = Path(self.directory) / urllib.parse.unquote(rest)
        if rest and local.is_dir() and not rest.endswith("/"):
            self._redirect(path + "/")                # keep the prefix in the Location
            return None
        # Pages resolves /post to /post.html when there is no such folder or file.
        if rest and not local.exists() and local.with_name(local.name + ".html").is_file():
            rest += ".html"
        # The stdlib maps the rest (index.html for folders, content types, 404s).
        self.path = "/" + rest + ("?" + split.query if split.query else "")
        return super().send_head()

    def send_error(self, code, message=None, explain=None):
        # Serve the site's own 404.html with status 404, as GitHub Pages does.
        page = Path(self.directory) / "404.html"
        if code == 404 and page.is_file():
            body = page.read_bytes()
            self.send_response(404, message)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        super().send_error(code, message, explain)


@dataclass
class StaticServer:
    folder: Path
    prefix: str
    httpd: http.server.ThreadingHTTPServer
    thread: threading.Thread

    @property
    def origin(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The site's root URL, ending with '/'."""
        return self.origin + self.prefix

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve(folder: Path, prefix: str = "/") -> StaticServer:
    """Serve ``folder`` at http://127.0.0.1:<free port><prefix> from a daemon thread."""
    prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    handler = type("Handler", (_Handler,), {"prefix": prefix})

    def make(*args, **kwargs):
        return handler(*args, directory=str(folder), **kwargs)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name=f"serve {folder}", daemon=True)
    thread.start()
    return StaticServer(Path(folder), prefix, httpd, thread)
