"""Fixtures for the client tests: a built site, a local static server, one headless Chromium.

The expensive things are session-scoped: the site is built once per baseurl and the browser is
launched once; each test gets fresh browser contexts, which are cheap.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .browser import Traffic, route_offline
from .checks import (count_images_in_markdown, extract_math_from_markdown, jekyll_build,
                     pages_config, post_permalink)
from .clientenv import CHROMIUM, CHROMIUM_ARGS, clients_required, require_client
from .serve import serve

REPO = Path(__file__).resolve().parents[2]

__all__ = ["require_client", "clients_required"]


# ---------------------------------------------------------------------------------------------
# Serving folders over HTTP

@pytest.fixture(scope="session")
def serve_folder():
    """serve_folder(folder, prefix="/") -> StaticServer on 127.0.0.1; all stopped at the end."""
    servers = []

    def start(folder: Path, prefix: str = "/"):
        server = serve(folder, prefix)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# ---------------------------------------------------------------------------------------------
# The browser

@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright; one launch per test session."""
    require_client("playwright", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                      headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def new_context(browser):
    """new_context(width=1280, mobile=False, color_scheme="light") -> (context, Traffic).

    Each context answers MathJax's CDN URLs from node_modules and blocks every other external
    request (see browser.route_offline). ``mobile`` emulates a phone: meta viewport honoured,
    touch, 2x pixels (so srcset's 2x images are the ones loaded).
    """
    require_client("mathjax")
    contexts = []

    def make(width: int = 1280, height: int = 900, mobile: bool = False,
             color_scheme: str = "light", javascript: bool = True):
        traffic = Traffic()
        context = browser.new_context(viewport={"width": width, "height": height},
                                      is_mobile=mobile, has_touch=mobile,
                                      device_scale_factor=2 if mobile else 1,
                                      color_scheme=color_scheme, java_script_enabled=javascript)
        context.set_default_timeout(30_000)
        route_offline(context, traffic)
        contexts.append(context)
        return context, traffic

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    """Where screenshots go: $LORA_SITE_SCREENSHOTS, else a pytest temp folder."""
    folder = Path(os.environ.get("LORA_SITE_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    folder.mkdir(parents=True, exist_ok=True)
    _SCREENSHOTS.append(folder)
    return folder


_SCREENSHOTS: list[Path] = []


def pytest_terminal_summary(terminalreporter):
    for folder in _SCREENSHOTS:
        shots = sorted(folder.rglob("*.png"))
        if shots:
            terminalreporter.write_line(f"client tests: {len(shots)} screenshots in {folder}")


# ---------------------------------------------------------------------------------------------
# A site built by the real generator from the repo's own content

@dataclass(frozen=True)
class BuiltSite:
    project: Path                 # a copy of the repo's content/ and templates/
    out: Path                     # what `lora-site build --out` wrote: html/ and jekyll/
    baseurl: str                  # "" or "/repo"
    config: dict                  # content/site.yml

    @property
    def html(self) -> Path:
        return self.out / "html"

    @property
    def jekyll(self) -> Path:
        return self.out / "jekyll"

    @property
    def posts(self) -> list[Path]:
        """The author's Markdown sources (content/posts/*.md), sorted."""
        return sorted((self.project / "content" / "posts").glob("*.md"))

    def jekyll_post(self, slug: str) -> Path:
        """The Jekyll writer's post for ``slug``: _posts/YYYY-MM-DD-<slug>.md."""
        found = sorted((self.jekyll / "_posts").glob(f"????-??-??-{slug}.md"))
        assert len(found) == 1, f"Jekyll posts for {slug}: {found}"
        return found[0]

    def expected_math(self, slug: str) -> list:
        """The math of the post after Jinja: the list in the Jekyll writer's Markdown."""
        return extract_math_from_markdown(self.jekyll_post(slug).read_text(encoding="utf-8"))

    def expected_images(self, slug: str) -> int:
        return count_images_in_markdown(self.jekyll_post(slug).read_text(encoding="utf-8"))

    @property
    def slugs(self) -> list[str]:
        return [p.stem for p in self.posts]

    @property
    def site_url(self) -> str:
        """The public URL of the site's root, ending in '/'."""
        return self.config["url"].rstrip("/") + self.baseurl + "/"


GIT_IDENTITY = ["-c", "user.name=lora-site tests", "-c", "user.email=tests@example.org",
                "-c", "commit.gpgsign=false"]


@pytest.fixture(scope="session")
def site_project(tmp_path_factory) -> Path:
    """A clone-like project: copies of the repo's content/, templates/ and generator/ (the
    package that builds, so its listings are files of this project), committed to a git
    repository of its own when git is here. The pages then link every listing to its file at
    that commit and name the commit in their reproduce box."""
    project = tmp_path_factory.mktemp("project")
    for name in ("content", "templates", "generator"):
        shutil.copytree(REPO / name, project / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(REPO / ".gitignore", project / ".gitignore")
    if shutil.which("git"):
        for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "site under test"]):
            subprocess.run(["git", *GIT_IDENTITY, *args], cwd=project, check=True,
                           capture_output=True)
    return project


def project_commit(project: Path) -> str | None:
    """The commit the project's pages were built from (None without git)."""
    if not (project / ".git").exists():
        return None
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, check=True,
                          capture_output=True, text=True).stdout.strip()


def _build(project: Path, out: Path, baseurl: str) -> BuiltSite:
    cmd = [sys.executable, "-m", "generator", "build", "--root", str(project), "--out", str(out),
           f"--baseurl={baseurl}", "--quiet"]
    # `-m generator` in the project runs the project's copy of the package (the current folder
    # comes first on sys.path: the listings link to the copy's files at the project's commit),
    # which finds MathJax in this checkout's node_modules. PYTHONPATH: this checkout's
    # generator for anything the copy does not hold.
    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               MPLBACKEND="Agg", LORA_SITE_NODE_MODULES=str(REPO / "node_modules"),
               PYTHONPATH=os.pathsep.join(
                   [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=project, env=env, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"`lora-site build` failed (exit {proc.returncode}):\n{proc.stdout}\n"
                    f"{proc.stderr}", pytrace=False)
    config = yaml.safe_load((project / "content" / "site.yml").read_text(encoding="utf-8"))
    return BuiltSite(project=project, out=out, baseurl=baseurl, config=config)


@pytest.fixture(scope="session")
def built_site(site_project, tmp_path_factory) -> BuiltSite:
    """The repo's article built with an empty baseurl (a site at the root of its domain)."""
    return _build(site_project, tmp_path_factory.mktemp("site-root"), "")


@pytest.fixture(scope="session")
def built_site_repo(site_project, built_site, tmp_path_factory) -> BuiltSite:
    """The same article built with baseurl /repo (a GitHub project page)."""
    return _build(site_project, tmp_path_factory.mktemp("site-repo"), "/repo")


@pytest.fixture(scope="session", params=["", "/repo"], ids=["baseurl-empty", "baseurl-repo"])
def any_built_site(request) -> BuiltSite:
    """Both builds, one after the other."""
    return request.getfixturevalue("built_site" if request.param == "" else "built_site_repo")


@pytest.fixture(scope="session")
def _jekyll_builds(tmp_path_factory):
    """Cache: one `jekyll build` per site build, however many fixtures ask for it."""
    cache: dict[str, tuple] = {}

    def build(site: BuiltSite):
        if site.baseurl not in cache:
            require_client("jekyll")
            dest = tmp_path_factory.mktemp("jekyll-site") / "_site"
            code, output = jekyll_build(site.jekyll, dest, baseurl=site.baseurl)
            if code != 0:
                pytest.fail(f"jekyll build of {site.jekyll} failed (exit {code}):\n{output}",
                            pytrace=False)
            config = pages_config(site.jekyll)
            pages = {slug: post_permalink(site.jekyll_post(slug), config) for slug in site.slugs}
            cache[site.baseurl] = (site, dest, pages)
        return cache[site.baseurl]

    return build


@pytest.fixture(scope="session")
def jekyll_site(any_built_site, _jekyll_builds):
    """(site, _site folder, {slug: permalink}): the build's site/jekyll through `jekyll build
    --safe --future` with GitHub Pages' settings and the build's baseurl; both baseurls."""
    return _jekyll_builds(any_built_site)


@pytest.fixture(scope="session")
def jekyll_site_root(built_site, _jekyll_builds):
    """The same, for the build with an empty baseurl only."""
    return _jekyll_builds(built_site)
