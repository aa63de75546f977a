"""What the commands share: the build context of a command, the declared experiments, the
progress display and the common options. Nothing heavy is imported here."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click


def context(root: str | None):
    """The build context of this command's project (core.context): it owns every worker,
    child process and cache the command uses, and is closed when the command ends."""
    from ..core.context import BuildContext
    from ..core.project import Project

    project = Project(Path(root).resolve()) if root else Project.find()
    ctx = BuildContext(project)
    click.get_current_context().call_on_close(ctx.close)
    return ctx


def declared(ctx, drafts: bool = True):
    """The experiments the posts declare; without ``drafts``, only those of published posts
    (what a build without --drafts runs and freezes)."""
    from ..authoring.posts import collect_experiments, read_posts

    posts = read_posts(ctx)
    if not drafts:
        posts = [p for p in posts if p.meta.get("published", True) is not False]
    return collect_experiments(posts)


def show_progress(quiet: bool) -> bool:
    # A progress bar is for a person at a terminal; logs and pipes get none.
    return not quiet and sys.stderr.isatty()


class ProgressLine:
    """One line on a terminal, redrawn at most ``1 / interval`` times a second (a redraw per
    training step would write megabytes and slow the training down), then replaced by a last
    line that says how the work ended ("target reached at step 37")."""

    WIDTH = 24

    def __init__(self, label: str, stream, *, interval: float = 0.1, clock=None) -> None:
        import time

        self.label, self.stream, self.interval = label, stream, interval
        self.clock = clock or time.monotonic
        self.next_draw = 0.0
        self.drawn = 0                  # characters of the line on screen
        self.draws = 0

    def __call__(self, done: int, total: int, note: str = "") -> None:
        now = self.clock()
        if now < self.next_draw and done < total:
            return
        self.next_draw = now + self.interval
        filled = self.WIDTH * done // total if total else 0
        text = (f"{self.label} [{'#' * filled}{'-' * (self.WIDTH - filled)}] {done}/{total}"
                + (f" {note}" if note else ""))
        self._show(text, end="")
        self.draws += 1

    def finish(self, how: str) -> None:
        self._show(f"{self.label}: {how}", end="\n")
        self.drawn = 0

    def close(self) -> None:
        if self.drawn:                  # ended without a word (an error follows): new line
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = 0

    def _show(self, text: str, end: str) -> None:
        pad = " " * max(0, self.drawn - len(text))
        self.stream.write(f"\r{text}{pad}{end}")
        self.stream.flush()
        self.drawn = 0 if end else len(text)


def progress_factory(quiet: bool):
    """progress(name, kind) -> a context manager yielding progress(done, total, note), which
    also has finish(how) for the line that says how the work ended."""
    if not show_progress(quiet):
        return None

    @contextlib.contextmanager
    def factory(name, kind):
        line = ProgressLine(f"{'computing' if kind.heavy else 'training'} {name}", sys.stderr)
        try:
            yield line
        finally:
            line.close()
    return factory


root_option = click.option("--root", type=click.Path(file_okay=False), default=None,
                           help="Project folder (default: the nearest folder with content/).")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress display.")


def warn(line: str) -> None:
    click.echo(f"warning: {line}", err=True)


def explainer(explain: bool):
    return (lambda line: click.echo(line, err=True)) if explain else None


