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


def declared(ctx):
    from ..authoring.posts import collect_experiments, read_posts

    return collect_experiments(read_posts(ctx))


def show_progress(quiet: bool) -> bool:
    # A progress bar is for a person at a terminal; logs and pipes get none.
    return not quiet and sys.stderr.isatty()


def progress_factory(quiet: bool):
    """progress(name, kind) -> a context manager yielding progress(done, total, note)."""
    if not show_progress(quiet):
        return None

    @contextlib.contextmanager
    def factory(name, kind):
        with click.progressbar(length=1, label=f"training {name}", file=sys.stderr,
                               show_pos=True, width=30) as bar:
            def progress(done: int, total: int, note: str) -> None:
                bar.length = total
                bar.label = f"training {name} ({note})"
                bar.update(done - bar.pos)
            yield progress
    return factory


root_option = click.option("--root", type=click.Path(file_okay=False), default=None,
                           help="Project folder (default: the nearest folder with content/).")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress display.")


def warn(line: str) -> None:
    click.echo(f"warning: {line}", err=True)


def explainer(explain: bool):
    return (lambda line: click.echo(line, err=True)) if explain else None


