"""One build at a time per project, and the failpoints tests interrupt builds at."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..core.errors import BuildError
from ..core.project import Project

LOCK_NAME = "build.lock"


@contextlib.contextmanager
def build_lock(project: Project):
    """One build at a time per project. A second build fails at once, naming the pid of the one
    that runs, rather than waiting: a build can take minutes, and the person who started the
    second one should decide. The lock is an flock on .cache/lora-site/build.lock, which the
    kernel releases when its process exits (even on SIGKILL), so it never goes stale and the
    file itself never needs removing."""
    import fcntl

    path = project.cache / LOCK_NAME
    try:
        project.cache.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")
    except OSError as exc:
        raise BuildError(f"cannot create the build lock: {exc.strerror}", path=path,
                         hint="check that the project folder is writable") from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            pid = fh.read().strip() or "unknown"
            raise BuildError(f"another build is running (pid {pid})", path=path,
                             hint=f"wait for it to finish, or stop process {pid}; the lock is "
                                  "released when that process exits") from None
        try:
            fh.seek(0)
            mine = f"{os.getpid()}\n"
            if fh.read() != mine:                   # a warm process holds it build after build
                fh.seek(0)
                fh.truncate()
                fh.write(mine)
                fh.flush()
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


PAUSE_AT_ENV = "LORA_SITE_PAUSE_AT"
PAUSE_FILE_ENV = "LORA_SITE_PAUSE_FILE"


def failpoint(name: str) -> None:
    """A test hook: with LORA_SITE_PAUSE_AT=<name> and LORA_SITE_PAUSE_FILE=<path> set, the build
    writes its pid to <path> on reaching the point called <name>, then waits (up to two minutes)
    until <path> is removed. Tests use it to interrupt a build at a known place or to start a
    second build while the first holds the lock. Points: results, render, write."""
    if os.environ.get(PAUSE_AT_ENV) != name:
        return
    import time

    flag = Path(os.environ[PAUSE_FILE_ENV])
    flag.write_text(f"{os.getpid()}\n", encoding="utf-8")
    deadline = time.monotonic() + 120
    while flag.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


