"""Shortcuts the tests share for driving the package's layers on a project folder."""
from __future__ import annotations

import subprocess
from pathlib import Path

from generator.authoring.posts import collect_experiments, read_posts
from generator.core.context import BuildContext
from generator.core.project import Project
from generator.stages import run
from generator.stages.run import StageOptions


def context(root: Path | Project) -> BuildContext:
    """A fresh build context for a project (no hash memo on disk: each test starts clean)."""
    project = root if isinstance(root, Project) else Project(Path(root))
    return BuildContext(project, remember_hashes=False)


def declared(ctx: BuildContext):
    return collect_experiments(read_posts(ctx))


def results_stage(root, **options):
    """The run stage of every experiment the project's posts declare (a context per call)."""
    with context(root) as ctx:
        return run.results_stage(ctx, declared(ctx), StageOptions(**options))


def experiments(root, **options):
    """Both stages, figures resolved: (results, {experiment: {file: PNG bytes}})."""
    with context(root) as ctx:
        results, figures = run.experiments(ctx, declared(ctx), StageOptions(**options))
        return results, {name: dict(images) for name, images in figures.items()}


def build(root, **kw):
    """publish.build in a context of its own. kw: out, baseurl, frozen, force, explain,
    refreeze, warn, progress."""
    from generator.publish.build import build as publish_build

    stage_keys = ("frozen", "force", "refreeze", "explain", "warn", "progress")
    opts = StageOptions(**{k: kw.pop(k) for k in stage_keys if k in kw})
    with context(root) as ctx:
        return publish_build(ctx, opts=opts, **kw)


def git(cwd: Path, *args: str) -> str:
    """git in ``cwd`` as a test's own user, whatever the machine's settings (no signing)."""
    return subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.org",
                           "-c", "commit.gpgsign=false", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()
