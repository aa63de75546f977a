"""Live preview: serves site/html only, watches with the system's notifications, rebuilds in a
warm worker and pushes each outcome to the open page over server-sent events.

The end-to-end tests start `python -m generator serve` on a free port in a subprocess and read
its event stream as a page does; every wait is bounded, and nothing is timed. Posts here declare
no experiment, so builds neither train nor draw.
"""
from __future__ import annotations

import http.client
import queue
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator import serve as serve_mod
from generator.cli import main
from generator.core.project import Project
from generator.serve import events_between, inject, resolve_request
from generator.serve.watch import Watcher
from preview import POST, Events, Server, fetch, make_site, page_version

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
    page = inject(b"<html><body><p>x</p></body></html>", 3).decode()
    assert page.endswith("</script></body></html>") and page.count("<script>") == 1
    assert serve_mod.EVENTS in page and "var version = 3" in page
    assert "EventSource" in page and "sessionStorage" in page       # the push channel, scroll
    assert inject(b"no body", 3).startswith(b"no body<script>")


@pytest.mark.parametrize("told, now, events", [
    ((1, None, None), (1, None, None), []),
    ((1, None, None), (2, None, None), ["reload"]),
    ((1, None, None), (1, "post.md:3: bad", None), ["failed"]),
    ((1, "post.md:3: bad", None), (1, "post.md:3: bad", None), []),
    ((1, "post.md:3: bad", None), (1, "post.md:4: worse", None), ["failed"]),
    ((1, "post.md:3: bad", None), (1, None, None), ["ok"]),          # fixed back to the same site
    ((1, "post.md:3: bad", None), (2, None, None), ["reload"]),
    ((1, None, None), (1, None, "rebuilding"), ["status"]),
    ((1, None, "rebuilding"), (2, None, None), ["reload"]),
    ((1, None, "rebuilding"), (1, "x", None), ["failed", "status"]),
])
def test_events_take_a_page_to_the_current_state(told, now, events):
    assert [name for name, _data in events_between(told, now)] == events


@pytest.mark.parametrize("path, skipped", [
    ("content/posts/post.md", False), ("content/site.yml", False),
    ("templates/html/post.html", False), ("generator/render/jinja.py", False),
    ("content/posts/.post.md.swp", True), ("content/posts/post.md~", True),
    ("content/posts/#post.md#", True), ("content/posts/.#post.md", True),
    ("content/posts/4913", True), ("content/posts/post.md.tmp", True),
    ("content/posts/post.md___jb_tmp___", True), ("content/_freeze/.manifest.json.x1.tmp", True),
    (".cache/lora-site/posts/k.json", True), ("site/html/index.html", True),
    (".git/index", True), ("generator/__pycache__/x.cpython-311.pyc", True),
    # The folders a build fills and then swaps in (core.swap), the freeze's among them.
    ("content/._freeze.build-lfn9el8q/c/value.json", True),
    ("content/._freeze.old-x_1/manifest.json", True), ("content/.site.build-ab/x", True),
])
def test_editor_temporary_files_caches_and_outputs_are_ignored(tmp_path, path, skipped):
    assert serve_mod.ignored(str(tmp_path / path)) is skipped


def test_watched_roots_include_the_project_generator_copy(tmp_path):
    (tmp_path / "generator").mkdir()
    (tmp_path / "generator" / "__init__.py").write_text("")
    roots = serve_mod.watched_roots(Project(tmp_path))
    assert roots[:3] == [tmp_path / "content", tmp_path / "templates", tmp_path / "generator"]
    roots = serve_mod.watched_roots(Project(tmp_path / "other"))
    assert roots[2] == Path(serve_mod.__file__).resolve().parents[1]


def test_the_watcher_is_told_by_the_system_and_hands_over_only_what_matters(tmp_path,
                                                                           monkeypatch):
    """watchfiles with notifications (never its polling fallback), the filter applied."""
    import watchfiles

    asked = []
    real = watchfiles.watch

    def recording(*paths, **kwargs):
        asked.append(kwargs)
        return real(*paths, **kwargs)
    monkeypatch.setattr(watchfiles, "watch", recording)
    monkeypatch.setenv("WATCHFILES_FORCE_POLLING", "1")     # ignored: we ask for notifications
    (tmp_path / "content" / "posts").mkdir(parents=True)
    (tmp_path / ".cache").mkdir()
    seen: queue.Queue = queue.Queue()
    watcher = Watcher(lambda: [tmp_path], seen.put)
    watcher.start()
    try:
        assert watcher.ready.wait(timeout=10)
        for junk in ("content/posts/.post.md.swp", "content/posts/post.md~", ".cache/x.json",
                     "content/posts/4913"):
            (tmp_path / junk).write_text("x")
        (tmp_path / "content" / "posts" / "post.md").write_text("edited")
        batch = seen.get(timeout=10)
        assert batch == {str(tmp_path / "content" / "posts" / "post.md")}, batch
    finally:
        watcher.stop()
    assert asked and asked[0]["force_polling"] is False
    assert asked[0]["step"] == serve_mod.watch.QUIET_MS


def test_a_port_in_use_is_one_line_naming_host_and_port(tmp_path):
    make_site(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = CliRunner().invoke(main, ["serve", "--root", str(tmp_path), "--port", str(port)])
    assert res.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in res.output and "--port" in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output


# ---------------------------------------------------------------------------------------------
# End to end

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


@pytest.mark.slow
def test_serve_rebuilds_on_edit_and_pushes_a_reload(tmp_path):
    post = make_site(tmp_path)
    (tmp_path / "outside.txt").write_text("not for the web")
    server = Server(tmp_path)
    try:
        url = server.url
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        page = fetch(url + "first/")
        assert "Original prose." in page and serve_mod.EVENTS in page
        on_disk = (tmp_path / "site" / "html" / "first" / "index.html").read_text()
        assert "Original prose." in on_disk and serve_mod.EVENTS not in on_disk
        assert "lora-site serve" not in on_disk and "EventSource" not in on_disk
        version = page_version(page)

        # The open page's event stream: quiet until an edit is built, then a reload.
        events = Events(server.origin, version)
        post.write_text(POST.format(body="Edited prose, twice as good."))
        assert events.next() == ("reload", {"version": version + 1})
        assert events.next()[0] == "closed"            # the page goes; its reload reconnects
        page = fetch(url + "first/")
        assert "Edited prose, twice as good." in page and "Original prose." not in page
        assert page_version(page) == version + 1
        server.wait_for("built in")
        # The page came first, alone (publish.early); the rest of the build changed the feed
        # only, which no page shows: no second reload.
        assert page_version(fetch(url + "first/")) == version + 1

        # A page that missed the reload (it was reconnecting) is told at once.
        late = Events(server.origin, version)
        assert late.next() == ("reload", {"version": version + 1})

        # Nothing outside site/html is ever served, however the path is spelt.
        (tmp_path / "site" / "html" / "leak.txt").symlink_to(tmp_path / "outside.txt")
        for path in ("/../outside.txt", "/../../outside.txt", "/%2e%2e/outside.txt",
                     "/first/../../jekyll/_config.yml", "/..%2f..%2foutside.txt", "/leak.txt"):
            status, body = raw_get("127.0.0.1", server.port, path)
            assert status in (403, 404), path
            assert b"not for the web" not in body and b"baseurl" not in body, path
        assert raw_get("127.0.0.1", server.port, "/first/")[0] == 200

        # A broken edit: the page is told the one-line error, the last good site stays.
        events = Events(server.origin, version + 1)
        post.write_text(POST.format(body="Fine line.\n\n{{ no_such_value }}"))
        name, data = events.next()
        assert name == "failed", (name, data)
        assert data["error"].startswith(f"{post}:8: undefined value"), data["error"]
        assert "no_such_value" in data["error"] and "\n" not in data["error"]
        server.wait_for("build failed")
        page = fetch(url + "first/")
        assert "Edited prose, twice as good." in page and page_version(page) == version + 1
        # A page opened now hears of the failure straight away.
        fresh = Events(server.origin, version + 1)
        assert fresh.next()[0] == "failed"
        fresh.close()

        # Fixed: the page reloads with the new text.
        post.write_text(POST.format(body="Fixed prose."))
        assert events.next() == ("reload", {"version": version + 2})
        assert "Fixed prose." in fetch(url + "first/")
    finally:
        code = server.stop()
    assert code == 0, "\n".join(server.log)


@pytest.mark.slow
def test_edits_made_while_a_build_runs_are_built_together(tmp_path):
    """The builds pause at a failpoint (publish.lock), so edits are certain to arrive while a
    build runs: however many, they make one more build."""
    post = make_site(tmp_path)
    other = tmp_path / "content" / "posts" / "second.md"
    flag = tmp_path / "paused"
    env = {"LORA_SITE_PAUSE_AT": "render", "LORA_SITE_PAUSE_FILE": str(flag)}

    def release() -> None:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert time.monotonic() < deadline, "no build reached the failpoint"
            time.sleep(0.01)
        flag.unlink()

    threading.Thread(target=release, daemon=True).start()     # the first build
    server = Server(tmp_path, env=env)
    try:
        events = Events(server.origin, page_version(fetch(server.url + "first/")))
        # A new title: not a body edit alone, so no page is served before the build's end
        # (publish.early).
        post.write_text(POST.format(body="Edit one.").replace("First post", "Edited title"))
        server.wait_for("rebuilding")
        # A build that takes a while says so on the page, and meanwhile the server answers
        # with the last good site.
        assert events.next(skip=()) == ("status", {"status": "lora-site: rebuilding…"})
        assert "Original prose." in fetch(server.url + "first/")
        deadline = time.monotonic() + 60
        while not flag.exists():                            # the build of edit one waits
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for i in range(2, 5):
            post.write_text(POST.format(body=f"Edit {['', '', 'two', 'three', 'four'][i]}."))
            time.sleep(0.05)                                # apart: separate notifications
        other.write_text(POST.format(body="A second post.").replace("First post", "Second"))
        time.sleep(0.3)
        flag.unlink()                                       # edit one's build ends
        line = server.wait_for("rebuilding")                # one build for all the others
        assert "first.md" in line and "second.md" in line, line
        release()
        server.wait_for("built in")
        assert "Edit four." in fetch(server.url + "first/")
        assert "A second post." in fetch(server.url + "second/")
        time.sleep(0.5)
        assert server.count("rebuilding") == 2, "\n".join(server.log)
    finally:
        if flag.exists():
            flag.unlink()
        code = server.stop()
    assert code == 0, "\n".join(server.log)


@pytest.mark.slow
def test_an_edit_to_the_generator_restarts_the_worker_with_the_new_code(tmp_path):
    """A warm process cannot take new code in: the worker starts afresh and builds with it."""
    package = Path(serve_mod.__file__).resolve().parents[1]
    shutil.copytree(package, tmp_path / "generator",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(package.parent / "templates", tmp_path / "templates")
    make_site(tmp_path, body="Rank {{ 8.0 | num }}.")
    server = Server(tmp_path)
    try:
        assert "Rank 8." in fetch(server.url + "first/")
        events = Events(server.origin, page_version(fetch(server.url + "first/")))
        jinja = tmp_path / "generator" / "render" / "jinja.py"
        source = jinja.read_text()
        marker = '    return str(value) if isinstance(value, int) else f"{value:g}"\n'
        assert marker in source
        jinja.write_text(source.replace(marker, '    return f"num{value:g}"\n'))
        line = server.wait_for("changed: ")
        assert "generator/render/jinja.py" in line and "starts afresh" in line, line
        assert events.next()[0] == "reload"
        assert "Rank num8." in fetch(server.url + "first/")
    finally:
        code = server.stop()
    assert code == 0, "\n".join(server.log)


@pytest.mark.slow
def test_serve_takes_baseurl_and_quiet(tmp_path):
    post = make_site(tmp_path)
    server = Server(tmp_path, "--baseurl", "/repo", "--quiet")
    try:
        assert server.url.endswith("/repo/")
        page = fetch(server.url + "first/")
        assert 'href="/repo/' in page
        assert raw_get("127.0.0.1", server.port, "/first/")[0] == 404
        events = Events(server.origin, page_version(page))
        post.write_text(POST.format(body="Quietly edited."))
        assert events.next()[0] == "reload"
        assert "Quietly edited." in fetch(server.url + "first/")
    finally:
        code = server.stop()
    assert code == 0
    # Quiet: the address, and nothing about each rebuild.
    assert not any("rebuilding" in line or "built in" in line for line in server.log), server.log


@pytest.mark.slow
def test_pages_are_served_as_soon_as_rendered_while_site_is_written(tmp_path):
    """The builds pause before they write site/ (a failpoint): the open page is told, and the
    server answers with the new page, before the files are on disk."""
    post = make_site(tmp_path)
    flag = tmp_path / "paused"

    def wait_for_flag() -> None:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert time.monotonic() < deadline, "no build reached the failpoint"
            time.sleep(0.01)

    def release_first() -> None:
        wait_for_flag()
        flag.unlink()
    threading.Thread(target=release_first, daemon=True).start()
    server = Server(tmp_path, env={"LORA_SITE_PAUSE_AT": "write",
                                   "LORA_SITE_PAUSE_FILE": str(flag)})
    on_disk = tmp_path / "site" / "html" / "first" / "index.html"
    try:
        events = Events(server.origin, page_version(fetch(server.url + "first/")))
        post.write_text(POST.format(body="Rendered, not yet written."))
        assert events.next()[0] == "reload"
        wait_for_flag()                                     # the build waits to write
        assert "Rendered, not yet written." in fetch(server.url + "first/")
        assert "Original prose." in on_disk.read_text()
        flag.unlink()
        server.wait_for("built in")
        assert "Rendered, not yet written." in on_disk.read_text()
        assert "Rendered, not yet written." in fetch(server.url + "first/")
    finally:
        if flag.exists():
            flag.unlink()
        code = server.stop()
    assert code == 0, "\n".join(server.log)


@pytest.mark.slow
def test_a_page_told_early_by_a_build_that_then_fails_is_taken_back(tmp_path):
    """An edited body's page is served before the rest of the build (publish.early). A link
    to the post's HTML address is served there but not in the Jekyll tree, so the build then
    fails: the server serves the last good page again, and tells the open pages the error with
    a version of their own, which makes a page showing the early one reload first."""
    post = make_site(tmp_path)
    server = Server(tmp_path)
    try:
        version = page_version(fetch(server.url + "first/"))
        events = Events(server.origin, version)
        post.write_text(POST.format(body="Edited, see [here]({{ site.baseurl }}/first/)."))
        assert events.next() == ("reload", {"version": version + 1})     # the early page
        server.wait_for("build failed")
        late = Events(server.origin, version + 1)       # the page that reloaded to it
        name, data = late.next()
        assert name == "failed" and data["version"] == version + 2, (name, data)
        assert "in the jekyll output" in data["error"], data["error"]
        page = fetch(server.url + "first/")
        assert "Original prose." in page and "Edited, see" not in page
        assert page_version(page) == version + 2
        late.close()
        # The page the last good site is at now hears the error without a new version.
        again = Events(server.origin, version + 2)
        assert again.next() == ("failed", {"error": data["error"], "version": version + 2})
        again.close()
    finally:
        code = server.stop()
    assert code == 0, "\n".join(server.log)


KIND_MODULE = '''"""A project's own experiment kind, outside the package (site.yml's kinds:)."""
from generator.kinds.base import Kind


class Constant(Kind):
    name = "constant"
    description = "a number, written down"
    result_files = ("value.json",)

    def parse(self, mapping, *, source=None, prefix=""):
        return dict(mapping or {})

    def settings_dict(self, settings):
        return dict(settings)

    def compute(self, name, settings, progress=None):
        return {"value.json": b"41\\n"}

    def load(self, folder, name):
        return int((folder / "value.json").read_text())

    def compare(self, files, folder, atol, rtol):
        return None

    def view(self, name, loaded):
        return {"value": loaded + OFFSET}


OFFSET = 1
KIND = Constant()
'''


@pytest.mark.slow
def test_an_edit_to_a_projects_own_kind_module_restarts_the_worker(tmp_path):
    """site.yml's kinds: name a module outside the package; once a build has imported it, an
    edit to it is an edit to the build's code."""
    kinds = tmp_path / "mykinds"
    kinds.mkdir()
    module = kinds / "constkind.py"
    module.write_text(KIND_MODULE)
    project = tmp_path / "project"
    post = make_site(project, body="The value is {{ c.value }}.")
    post.write_text(post.read_text().replace("description: d\n",
                                             "description: d\nexperiments:\n  c: {kind: constant}\n"))
    (project / "content" / "site.yml").write_text(
        (project / "content" / "site.yml").read_text() + "kinds: [constkind]\n")
    server = Server(project, env={"PYTHONPATH": str(kinds)})
    try:
        page = fetch(server.url + "first/")
        assert "The value is 42." in page
        events = Events(server.origin, page_version(page))
        module.write_text(KIND_MODULE.replace("OFFSET = 1", "OFFSET = 2"))
        line = server.wait_for("starts afresh")
        assert "changed: " in line and "constkind.py" in line, line
        assert events.next()[0] == "reload"
        assert "The value is 43." in fetch(server.url + "first/"), "\n".join(server.log)
    finally:
        code = server.stop()
    assert code == 0, "\n".join(server.log)
