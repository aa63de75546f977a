"""Benchmark the live preview: edit-to-served latency of a prose edit, `lora-site serve` against
`jekyll serve` regenerating the same Jekyll tree, side by side in one run.

Run with `make bench` (or `python bench/bench_serve.py --edits 30`). Everything happens in a
temporary copy of the project; the working tree is never touched.

  lora-site  `python -m generator serve` on the copy; a sentence of the article's Markdown
             (content/posts/) is rewritten, then its page is fetched over HTTP until it holds
             the new sentence.
  Jekyll     `jekyll serve --watch` (its default watcher) on a copy of the site/jekyll tree that
             `lora-site build` wrote; the same sentence is rewritten in the post's Markdown in
             _posts/, then its page (at the post's permalink) is fetched until it holds it.

Latency is measured from the moment the edited file is written (closed) until an HTTP response
holds the new text, the same way for both; each server is polled every POLL_S. The edits
alternate between the two servers, so both see the same load. Printed: median, p90, min and max
over the edits, the machine's load average, which watcher Jekyll used. Benchmarks time things;
tests never do.
"""
from __future__ import annotations

import argparse
import glob
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPY = ("content", "templates", "generator", "requirements.lock", "pyproject.toml")
ARTICLE = "content/posts/lora-attention-geometry.md"
# What is edited: a sentence of a plain paragraph or of a list item (the preview converts the
# Markdown of that block alone, render.markdown.Markdowner.splice), or of a paragraph with a
# footnote (the whole post's Markdown is converted again).
SENTENCES = {
    "paragraph": "We place a low-rank update on the query projection",
    "list": "which projection to adapt: an objective that is only about where a token looks",
    "footnote": "is usually sold as a cheaper way to fine-tune",
}
POLL_S = 0.005
TIMEOUT_S = 30.0
GOAL_MS = 100.0
SETTLE_S = 0.4          # between edits: each server is idle again when the next edit comes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update({"PYTHONHASHSEED": "0", "MPLBACKEND": "Agg", "PYTHONPATH": str(root)})
    # The copy has no node_modules of its own: its math pre-renders with this checkout's.
    env.setdefault("LORA_SITE_NODE_MODULES", str(REPO / "node_modules"))
    return env


FAILED_GETS: dict[str, int] = {}


def get(url: str) -> bytes | None:
    """The page, or None (counted per URL) when the server answered with an error or a cut
    response: a server in the middle of rewriting its files may."""
    try:
        with urllib.request.urlopen(url, timeout=5) as res:
            return res.read()
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        FAILED_GETS[url] = FAILED_GETS.get(url, 0) + 1
        return None


def wait_until(url: str, needle: bytes, timeout: float = TIMEOUT_S) -> float | None:
    """Seconds until a GET of ``url`` holds ``needle`` (polling every POLL_S), or None."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        body = get(url)
        if body is not None and needle in body:
            return time.perf_counter()
        time.sleep(POLL_S)
    return None


class Edited:
    """A file whose sentence is rewritten with a new marker each time."""

    def __init__(self, path: Path, sentence: str) -> None:
        self.path, self.sentence = path, sentence
        self.original = path.read_text(encoding="utf-8")
        if sentence not in self.original:
            raise SystemExit(f"{path} no longer has the sentence {sentence!r}")

    def write(self, marker: str) -> float:
        text = self.original.replace(self.sentence, f"{self.sentence} {marker}", 1)
        with open(self.path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return time.perf_counter()          # the write is complete: the clock starts


class Server:
    """A server process whose output is drained (and kept) by a thread."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], ready: str) -> None:
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._needle = ready
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._ready.wait(120):
            self.stop()
            raise SystemExit(f"{cmd[0]} did not start:\n" + "\n".join(self.lines[-20:]))

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if self._needle in line:
                self._ready.set()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


PERMALINK = """
from pathlib import Path
from generator.authoring.post_info import post_info
from generator.authoring.posts import read_post
from generator.authoring.site_config import load_site_config
from generator.core.context import BuildContext
from generator.core.project import Project
project = Project(Path.cwd())
site = load_site_config(project)
with BuildContext(project, remember_hashes=False) as ctx:
    info = post_info(read_post(ctx, project.root / {article!r}), site)
    print(site.baseurl + info.jekyll_url)
"""


def jekyll_permalink(root: Path, env: dict[str, str]) -> str:
    """The URL path of the article in the Jekyll tree, as the copy's post_url computes it."""
    out = subprocess.run([sys.executable, "-c", PERMALINK.format(article=ARTICLE)], cwd=root,
                         env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def summary(samples: list[float]) -> tuple[float, float, float, float]:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, max(0, int(round(0.9 * len(ms))) - 1))]
    return statistics.median(ms), p90, ms[0], ms[-1]


def measure(kind: str, edits: int, ours_path: Path, ours_url: str,
            theirs_path: Path | None, theirs_url: str | None) -> None:
    """``edits`` edits of the sentence SENTENCES[kind] on each server, alternating; prints the
    table."""
    sentence = SENTENCES[kind]
    ours_file = Edited(ours_path, sentence)
    theirs_file = Edited(theirs_path, sentence) if theirs_path is not None else None
    ours_s: list[float] = []
    theirs_s: list[float] = []
    FAILED_GETS.clear()
    load_before = os.getloadavg()
    for i in range(edits):
        for name, file, url, out in (("lora-site", ours_file, ours_url, ours_s),
                                     ("jekyll", theirs_file, theirs_url, theirs_s)):
            if file is None:
                continue
            marker = f"bench{kind}{i}x{name.replace('-', '')}"
            start = file.write(marker)
            seen = wait_until(url, marker.encode())
            if seen is None:
                raise SystemExit(f"{name}: the edit was not served within {TIMEOUT_S} s")
            out.append(seen - start)
            time.sleep(SETTLE_S)
    load_after = os.getloadavg()
    what = {"paragraph": "a paragraph", "list": "a list item",
            "footnote": "a paragraph with a footnote"}[kind]
    print(f"edit-to-served latency of a prose edit (a sentence of {what}), {edits} edits "
          f"each, polled every {POLL_S * 1000:.0f} ms; load average {load_before[0]:.2f} "
          f"before, {load_after[0]:.2f} after, {os.cpu_count()} cores")
    print(f"{'server':<24}{'median':>10}{'p90':>10}{'min':>10}{'max':>10}")
    rows = [("lora-site serve", ours_s)] + ([("jekyll serve", theirs_s)] if theirs_s else [])
    for label, samples in rows:
        med, p90, lo, hi = summary(samples)
        print(f"{label:<24}{med:>8.1f}ms{p90:>8.1f}ms{lo:>8.1f}ms{hi:>8.1f}ms")
    for label, url in (("lora-site serve", ours_url), ("jekyll serve", theirs_url)):
        if url and FAILED_GETS.get(url):
            print(f"{label}: {FAILED_GETS[url]} polls got an error or a cut response")
    ours_med = summary(ours_s)[0]
    print(f"goal: lora-site median < {GOAL_MS:.0f} ms: "
          f"{'met' if ours_med < GOAL_MS else 'NOT met'} ({ours_med:.1f} ms)")
    if theirs_s:
        ratio = ours_med / summary(theirs_s)[0]
        print(f"goal: at most 1/3 of Jekyll's median: {'met' if ratio <= 1 / 3 else 'NOT met'}"
              f" (ratio {ratio:.2f})")
    print()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--edits", type=int, default=25, help="edits per server (at least 20)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project")
    ap.add_argument("--edit", choices=["all", *sorted(SENTENCES)], default="all",
                    help="what to edit: a sentence of a plain paragraph, of a list item, of a "
                         "paragraph with a footnote, or each in turn (all, the default)")
    args = ap.parse_args(argv)
    if args.edits < 20:
        ap.error("--edits: at least 20, for a median and a p90 worth reading")
    jekyll = shutil.which("jekyll")
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    servers: list[Server] = []
    try:
        root = tmp / "project"
        root.mkdir()
        for name in COPY:
            src = REPO / name
            if src.is_dir():
                shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
            elif src.is_file():
                shutil.copy2(src, root / name)
        env = env_for(root)
        # The Jekyll tree both servers start from: what `lora-site build` writes.
        subprocess.run([sys.executable, "-m", "generator", "build", "--quiet"], cwd=root,
                       env=env, check=True)
        tree = tmp / "jekyll"
        shutil.copytree(root / "site" / "jekyll", tree)

        ours_port = free_port()
        ours = Server([sys.executable, "-m", "generator", "serve", "--port", str(ours_port),
                       "--quiet"], root, env, "serving ")
        servers.append(ours)
        ours_url = f"http://127.0.0.1:{ours_port}/lora-attention-geometry/"
        ours_path = root / ARTICLE

        theirs = theirs_path = theirs_url = None
        watcher = "-"
        if jekyll:
            port = free_port()
            jenv = {k: v for k, v in os.environ.items()
                    if not k.startswith(("BUNDLE_", "GEM_", "RUBY"))}
            jenv.update(LANG="C.UTF-8", TZ="UTC")
            theirs = Server([jekyll, "serve", "--port", str(port), "--host", "127.0.0.1",
                             "--future", "--disable-disk-cache", "--source", str(tree),
                             "--destination", str(tmp / "_site")], tmp, jenv,
                            "Server running")
            servers.append(theirs)
            theirs_url = f"http://127.0.0.1:{port}{jekyll_permalink(root, env)}"
            theirs_path = Path(glob.glob(str(tree / "_posts" / "*-lora-attention-geometry.md"))[0])
            watcher = "its own (listen, OS notifications; no --force_polling)"
            # Jekyll says which adapter listen picked only when it falls back to polling.
            if any("polling" in line.lower() for line in theirs.lines):
                watcher = "polling (listen fell back to it)"

        kinds = sorted(SENTENCES) if args.edit == "all" else [args.edit]
        for kind in sorted(kinds, key=list(SENTENCES).index):
            measure(kind, args.edits, ours_path, ours_url, theirs_path, theirs_url)
        if theirs is not None:
            print(f"Jekyll's watcher: {watcher}")
        else:
            print("jekyll not found: the Jekyll half was not run (apt-get install jekyll)")
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
