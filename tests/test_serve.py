"""Live preview: serves site/html only, rebuilds on an edit and signals the open page to reload.

The end-to-end test starts `python -m generator serve` on a free port in a subprocess; every wait
is bounded. Posts here declare no experiment, so builds neither train nor draw.
"""
from __future__ import annotations

import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from generator import serve as serve_mod
from generator.core.project import Project
from generator.serve import BuildState, inject, resolve_request

SITE_YML = ('title: "Preview test"\ndescription: "A site to preview"\nauthor: "Tester"\n'
            'url: "https://example.org"\nbaseurl: "{base}"\n')
POST = ("---\ntitle: First post\ndate: 2026-01-11 10:00:00 +0530\ndescription: d\n---\n"
        "{body}\n")


def make_site(root: Path, body: str = "Original prose.", base: str = "") -> Path:
    (root / "content" / "posts").mkdir(parents=True, exist_ok=True)
    (root / "content" / "site.yml").write_text(SITE_YML.format(base=base))
    post = root / "content" / "posts" / "first.md"
    post.write_text(POST.format(body=body))
    return post


# ---------------------------------------------------------------------------------------------
# Units: path resolution and injection

@pytest.fixture
def html_tree(tmp_path) -> Path:
    html = tmp_path / "site" / "html"
    (html / "post").mkdir(parents=True)
    (html / "index.html").write_text("<html><body>home</body></html>")
    (html / "post" / "index.html").write_text("<html><body>post</body></html>")
    (html / "assets").mkdir()
    (html / "assets" / "a b.css").write_text("css")
    (tmp_path / "site" / "jekyll").mkdir()
    (tmp_path / "site" / "jekyll" / "_config.yml").write_text("secret: 1")
    (tmp_path / "outside.txt").write_text("outside")
    return html


def test_resolve_maps_urls_to_files_inside_the_site(html_tree):
    assert resolve_request(html_tree, "", "/") == html_tree.resolve() / "index.html"
    assert resolve_request(html_tree, "", "/post/") == html_tree.resolve() / "post" / "index.html"
    assert resolve_request(html_tree, "", "/post") == html_tree.resolve() / "post" / "index.html"
    assert resolve_request(html_tree, "", "/assets/a%20b.css") == \
        html_tree.resolve() / "assets" / "a b.css"
    assert resolve_request(html_tree, "", "/missing.html") is None


@pytest.mark.parametrize("path", [
    "/../outside.txt", "/../jekyll/_config.yml", "/%2e%2e/outside.txt", "/post/../../outside.txt",
    "/..%2foutside.txt", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/..\\outside.txt",
    "/assets/%00.css", "//etc/passwd", "/./index.html",
])
def test_resolve_refuses_every_way_out(html_tree, path):
    assert resolve_request(html_tree, "", path) is None


def test_resolve_refuses_a_symlink_that_leads_out(html_tree):
    (html_tree / "link.txt").symlink_to(html_tree.parent.parent / "outside.txt")
    (html_tree / "linkdir").symlink_to(html_tree.parent / "jekyll")
    assert resolve_request(html_tree, "", "/link.txt") is None
    assert resolve_request(html_tree, "", "/linkdir/_config.yml") is None


def test_resolve_serves_under_the_baseurl_only(html_tree):
    assert resolve_request(html_tree, "/repo", "/repo/post/") == \
        html_tree.resolve() / "post" / "index.html"
    assert resolve_request(html_tree, "/repo", "/repo") == html_tree.resolve() / "index.html"
    assert resolve_request(html_tree, "/repo", "/post/") is None
    assert resolve_request(html_tree, "/repo", "/repository/post/") is None


def test_inject_adds_the_reload_script_before_body_end():
    state = BuildState(version=3, error='bad </script> "x"')
    page = inject(b"<html><body><p>x</p></body></html>", state)
    text = page.decode()
    assert text.endswith("</script></body></html>")
    assert serve_mod.ENDPOINT in text and "var version = 3" in text
    # The error is JSON inside the script; a '</' cannot close the script early.
    assert text.count("</script>") == 1
    assert inject(b"no body", state).startswith(b"no body<script>")


def test_snapshot_sees_edits_additions_and_removals(tmp_path):
    (tmp_path / "a.md").write_text("1")
    (tmp_path / ".hidden").write_text("x")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "m.pyc").write_text("x")
    before = serve_mod.snapshot([tmp_path])
    assert list(before) == [str(tmp_path / "a.md")]
    (tmp_path / "a.md").write_text("22")
    (tmp_path / "b.md").write_text("new")
    after = serve_mod.snapshot([tmp_path])
    assert serve_mod.changed_paths(before, after) == [str(tmp_path / "a.md"),
                                                      str(tmp_path / "b.md")]
    (tmp_path / "b.md").unlink()
    assert serve_mod.changed_paths(after, serve_mod.snapshot([tmp_path])) == [
        str(tmp_path / "b.md")]


def test_watched_roots_include_the_project_generator_copy(tmp_path):
    (tmp_path / "generator").mkdir()
    (tmp_path / "generator" / "__init__.py").write_text("")
    roots = serve_mod.watched_roots(Project(tmp_path))
    assert roots == [tmp_path / "content", tmp_path / "templates", tmp_path / "generator"]
    roots = serve_mod.watched_roots(Project(tmp_path / "other"))
    assert roots[-1] == Path(serve_mod.__file__).resolve().parent


# ---------------------------------------------------------------------------------------------
# End to end

class Server:
    """`lora-site serve` in a subprocess; its output lines arrive on a queue."""

    def __init__(self, root: Path) -> None:
        env = dict(os.environ)
        repo = str(Path(serve_mod.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "generator", "serve", "--root", str(root), "--port", "0",
             "--interval", "0.1"], cwd=root, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, needle: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.log.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no {needle!r} in the server's output:\n" + "\n".join(self.log))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                raise AssertionError("serve did not stop on Ctrl-C")
        return self.proc.returncode


def raw_get(host: str, port: int, path: str) -> tuple[int, bytes]:
    """A GET with the path sent exactly as given (urllib would normalise '..')."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def fetch(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as res:
        return res.read().decode("utf-8")


@pytest.mark.slow
def test_serve_rebuilds_on_edit_and_signals_reload(tmp_path):
    post = make_site(tmp_path)
    (tmp_path / "outside.txt").write_text("not for the web")
    server = Server(tmp_path)
    try:
        line = server.wait_for("serving ")
        url = line.split(" at ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        host, port = "127.0.0.1", int(url.rsplit(":", 1)[1].strip("/"))

        page = fetch(url + "first/")
        assert "Original prose." in page and serve_mod.ENDPOINT in page
        on_disk = (tmp_path / "site" / "html" / "first" / "index.html").read_text()
        assert "Original prose." in on_disk and serve_mod.ENDPOINT not in on_disk
        state = json.loads(fetch(f"{url.rstrip('/')}{serve_mod.ENDPOINT}?since=-1"))
        assert state["error"] is None
        version = state["version"]

        # The open page's long-poll: it must answer with a new version once the edit is built.
        answer: dict = {}

        def long_poll() -> None:
            answer.update(json.loads(fetch(f"{url.rstrip('/')}{serve_mod.ENDPOINT}"
                                           f"?since={version}", timeout=60)))
        poller = threading.Thread(target=long_poll, daemon=True)
        poller.start()
        time.sleep(0.3)
        assert poller.is_alive(), "the long-poll answered before anything changed"
        post.write_text(POST.format(body="Edited prose, twice as good."))
        server.wait_for("rebuilding")
        server.wait_for("built in")
        poller.join(timeout=60)
        assert answer == {"version": version + 1, "error": None}
        page = fetch(url + "first/")
        assert "Edited prose, twice as good." in page and "Original prose." not in page

        # Nothing outside site/html is ever served, however the path is spelt.
        (tmp_path / "site" / "html" / "leak.txt").symlink_to(tmp_path / "outside.txt")
        for path in ("/../outside.txt", "/../../outside.txt", "/%2e%2e/outside.txt",
                     "/first/../../jekyll/_config.yml", "/..%2f..%2foutside.txt", "/leak.txt"):
            status, body = raw_get(host, port, path)
            assert status in (403, 404), path
            assert b"not for the web" not in body and b"baseurl" not in body, path
        assert raw_get(host, port, "/first/")[0] == 200

        # A broken edit: the build fails, the previous site stays, the page is told why.
        post.write_text(POST.format(body="{{ no_such_value }}"))
        server.wait_for("build failed")
        state = json.loads(fetch(f"{url.rstrip('/')}{serve_mod.ENDPOINT}?since={version + 1}",
                                 timeout=60))
        assert state["version"] == version + 2
        assert "first.md" in state["error"] and "no_such_value" in state["error"]
        page = fetch(url + "first/")
        assert "Edited prose, twice as good." in page and "no_such_value" in page
    finally:
        code = server.stop()
    assert code == 0, "\n".join(server.log)
