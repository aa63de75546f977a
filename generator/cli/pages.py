"""The commands that make pages: build, render, serve."""
from __future__ import annotations

from pathlib import Path

import click

from . import common


@click.command()
@common.root_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; the default is reachable from this machine only.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0 picks a free one).")
@click.option("--baseurl", default=None, metavar="PATH",
              help="Build and serve the site under this path, e.g. /repo, as it will be "
                   "published (overrides site.yml).")
@click.option("--frozen", is_flag=True,
              help="Never train: build from content/_freeze only; a setting edit shows the "
                   "stale result's error on the page instead of retraining.")
@click.option("--drafts", is_flag=True,
              help="Show the posts with published: false too, marked as drafts.")
@click.option("--quiet", "-q", is_flag=True,
              help="Print only the address and failed builds, not every rebuild.")
@click.pass_context
def serve(click_ctx, root, host, port, baseurl, frozen, drafts, quiet) -> None:
    """Build, serve site/html, and rebuild and reload the open page whenever a source changes."""
    from ..core.project import Project
    from ..serve import serve as run_preview

    if drafts:
        import inspect

        from ..publish.build import build as build_site

        if "drafts" not in inspect.signature(build_site).parameters:
            raise click.UsageError("--drafts: this version of the build has no drafts to "
                                   "include; drop the option")
    project = Project(Path(root).resolve()) if root else Project.find()
    debug = bool(click_ctx.find_root().params.get("debug"))
    run_preview(project, host=host, port=port, baseurl=baseurl, frozen=frozen, drafts=drafts,
                quiet=quiet, debug=debug)


def _report_build(report, quiet: bool) -> None:
    if quiet:
        return
    counts = dict(report.counts)
    click.echo(f"built {len(report.posts)} post(s): " + ", ".join(
        f"{report.out / fmt} ({n} files)" for fmt, n in counts.items()))


baseurl_option = click.option(
    "--baseurl", default=None, metavar="PATH",
    help="Serve the site under this path, e.g. /repo for a GitHub project page "
         "(overrides site.yml for this build).")
explain_option = click.option("--explain", is_flag=True,
                              help="Print, for each stage, whether it ran or was reused and why.")
# Not click.Path(file_okay=False): the build's own check says what to do in one line.
out_option = click.option("--out", type=click.Path(), default=None,
                          help="Output folder holding html/ and jekyll/ (default: site/).")


@click.command()
@common.root_option
@common.quiet_option
@click.option("--frozen", is_flag=True,
              help="Never train: use the results in content/_freeze and fail if they are stale.")
@click.option("--force", is_flag=True, help="Re-run every experiment and redraw every figure; "
              "a re-run that matches the freeze within verify's tolerance keeps its bytes.")
@click.option("--refreeze", is_flag=True,
              help="As --force, and write every re-run into content/_freeze even where it "
                   "matches the frozen bytes within tolerance (after changing the pins).")
@explain_option
@baseurl_option
@out_option
@click.option("--drafts", is_flag=True,
              help="Show the posts with published: false too, marked as drafts (never in the "
                   "feed or the sitemap). Without it a draft reaches no output.")
def build(root, quiet, frozen, force, refreeze, explain, baseurl, out, drafts) -> None:
    """Run every stage (experiments, figures, render) and write site/html and site/jekyll."""
    if frozen and (force or refreeze):
        raise click.UsageError(f"--frozen and {'--force' if force else '--refreeze'} "
                               "contradict each other; pick one")
    force = force or refreeze
    ctx = common.context(root)
    say = common.explainer(explain)
    # The no-op fast path: when no input changed and site/ is as the last build left it, stop
    # here, before yaml, Jinja, Markdown, numpy or torch are imported.
    from ..publish.fingerprint import BuildFingerprint, build_options
    out_dir = Path(out).resolve() if out else ctx.project.site
    fingerprint = BuildFingerprint(ctx, out_dir,
                                   build_options(frozen=frozen, baseurl=baseurl, drafts=drafts))
    changes = ["--force"] if force else fingerprint.changes()
    if not changes:
        if say:
            why = f"no input changed since the last build, fingerprint {fingerprint.key[:12]}"
            for stage in fingerprint.stages():
                if stage == "write":
                    say(f"write: skipped ({out_dir} holds exactly what the last build wrote)")
                else:
                    say(f"{stage}: reused ({why})")
        if not quiet:
            click.echo(f"up to date: {out_dir / 'html'}, {out_dir / 'jekyll'}")
        return
    if say:
        say(f"build: {'; '.join(changes)}")
    from ..publish.build import build as build_site
    from ..stages.run import StageOptions

    stages: list[str] = []

    def explain_and_note(line: str) -> None:
        if not line.startswith("ignored: "):        # a file named, not a stage
            stages.append(line.split(":", 1)[0])    # 'run main', 'figures main', 'render', ...
        if say:
            say(line)

    opts = StageOptions(frozen=frozen, force=force, refreeze=refreeze, explain=explain_and_note,
                        warn=common.warn, progress=common.progress_factory(quiet))
    report = build_site(ctx, baseurl=baseurl, out=Path(out) if out else None, opts=opts,
                        drafts=drafts)
    try:
        fingerprint.record(stages)
    except OSError as exc:
        # The site and the freeze are written: the build succeeded, only its record did not.
        from ..core.oserror import os_reason

        common.warn(f"could not record this build in {exc.filename or fingerprint.record_path} "
                    f"({os_reason(exc)}): the next build will not be skipped")
    _report_build(report, quiet)


@click.command()
@common.root_option
@common.quiet_option
@explain_option
@baseurl_option
@out_option
def render(root, quiet, explain, baseurl, out) -> None:
    """Re-render the site from saved results only (no training; fails if results are stale)."""
    from ..publish.build import build as build_site
    from ..stages.run import StageOptions

    report = build_site(common.context(root), baseurl=baseurl, out=Path(out) if out else None,
                        opts=StageOptions(frozen=True, explain=common.explainer(explain)))
    _report_build(report, quiet)


