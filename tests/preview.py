"""The live preview as the tests drive it: a project to serve, `lora-site serve` in a subprocess,
and an event stream read as a page reads it. Not a test module."""
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

from generator import serve as serve_mod

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


class Server:
    """`lora-site serve` in a subprocess; its output lines arrive on a queue."""

    def __init__(self, root: Path, *args: str, env: dict | None = None) -> None:
        full = dict(os.environ, **(env or {}))
        repo = str(Path(serve_mod.__file__).resolve().parents[2])
        full["PYTHONPATH"] = os.pathsep.join(p for p in (repo, full.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "generator", "serve", "--root", str(root), "--port", "0",
             *args], cwd=root, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_for("serving ")
        self.url = line.split(" at ", 1)[1].split()[0]
        self.port = int(self.url.split(":")[2].split("/")[0])
        self.origin = f"http://127.0.0.1:{self.port}"

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

    def count(self, needle: str) -> int:
        while True:                     # take in what has arrived so far
            try:
                self.log.append(self.lines.get_nowait())
            except queue.Empty:
                break
        return sum(needle in line for line in self.log)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                return self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                raise AssertionError("serve did not stop on Ctrl-C")
        return self.proc.returncode


class Events:
    """An EventSource of the page, as the browser opens it: (event, data) pairs on a queue."""

    def __init__(self, origin: str, version: int) -> None:
        self.conn = http.client.HTTPConnection(origin.split("//")[1], timeout=60)
        self.conn.request("GET", f"{serve_mod.EVENTS}?version={version}")
        self.res = self.conn.getresponse()
        assert self.res.status == 200
        assert self.res.getheader("Content-Type").startswith("text/event-stream")
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        name, data = None, []
        try:
            for raw in self.res:
                line = raw.decode("utf-8").rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif not line and name:
                    self.events.put((name, json.loads("\n".join(data))))
                    name, data = None, []
        except (OSError, ValueError):
            pass
        self.events.put(("closed", None))

    def next(self, timeout: float = 60, skip: tuple[str, ...] = ("status",)
             ) -> tuple[str, dict]:
        """The next event, passing over the status notes of a build that takes a while (a
        loaded machine may make any build one)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no event from the server") from None
            if event[0] not in skip:
                return event

    def close(self) -> None:
        self.conn.close()


def fetch(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as res:
        return res.read().decode("utf-8")


def page_version(page: str) -> int:
    return int(page.split("var version = ", 1)[1].split(",", 1)[0])
