"""The `lora-site` command line. Commands are thin: each calls one function of the package.

Nothing heavy is imported at module level, so `lora-site --help` never loads torch or matplotlib.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from . import __version__
from .project import Project


def _project(root: str | None) -> Project:
    from .filehash import use_hash_memo

    project = Project(Path(root).resolve()) if root else Project.find()
    # Hashes of files unchanged since the last command are remembered in .cache (see fsio);
    # LoraSiteGroup.invoke saves what this command added.
    use_hash_memo(project.cache / "hashes.json")
    return project


def _show_progress(quiet: bool) -> bool:
    # A progress bar is for a person at a terminal; logs and pipes get none.
    return not quiet and sys.stderr.isatty()


def _progress_factory(quiet: bool):
    if not _show_progress(quiet):
        return None

    @contextlib.contextmanager
    def factory(name, cfg):
        with click.progressbar(length=cfg.max_steps, label=f"training {name}", file=sys.stderr,
                               show_pos=True, width=30) as bar:
            def progress(step: int, loss: float, p: float) -> None:
                bar.label = f"training {name} (p={p:.3f})"
                bar.update(1)
            yield progress
    return factory


root_option = click.option("--root", type=click.Path(file_okay=False), default=None,
                           help="Project folder (default: the nearest folder with content/).")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress display.")


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGHUP), raised like Ctrl-C's KeyboardInterrupt so the same cleanup runs: a
    BaseException, so no `except Exception` on the way can swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_interrupt():
    """While a command runs, SIGTERM and SIGHUP interrupt it as Ctrl-C does (their default
    would end the process on the spot, leaving temporary folders behind)."""
    import signal

    def handler(signum, frame):
        raise Interrupted(signum)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) != signal.SIG_DFL:
            continue                # ignored on purpose (nohup) or handled by an embedding app
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:          # not the main thread (an embedding application's worker)
            break
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class LoraSiteGroup(click.Group):
    """Every failure ends as one line on stderr and a non-zero exit, never a traceback, unless
    --debug: errors the user can fix are LoraSiteError (they name the file, field and fix); an
    interruption says nothing was left half-written; anything else is a bug, reported in one
    line with the advice to re-run with --debug."""

    def invoke(self, ctx: click.Context):
        import signal
        import traceback

        from .errors import LoraSiteError

        debug = bool(ctx.params.get("debug"))
        try:
            with _signals_interrupt():
                try:
                    return super().invoke(ctx)
                finally:
                    from .filehash import save_hash_memo, use_hash_memo

                    save_hash_memo()
                    use_hash_memo(None)
        except click.ClickException:
            if debug:
                traceback.print_exc()
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt as exc:
            if debug:
                raise
            signum = getattr(exc, "signum", signal.SIGINT)
            error = LoraSiteError(f"interrupted by {signal.Signals(signum).name}",
                                  hint="nothing was left half-written: site/ and the results are "
                                       "replaced only once complete")
            error.exit_code = 128 + signum
            raise error from None
        except OSError as exc:
            if debug:
                raise
            raise LoraSiteError(_one_line(exc.strerror or exc), path=exc.filename,
                                hint="check that it exists and is writable; run with --debug "
                                     "for the traceback") from None
        except Exception as exc:
            if debug:
                raise
            raise LoraSiteError(_one_line(f"unexpected error: {type(exc).__name__}: {exc}"),
                                hint="run with --debug for the traceback") from None


@click.group(cls=LoraSiteGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lora-site")
@click.option("--debug", is_flag=True, envvar="LORA_SITE_DEBUG",
              help="On an error, print the full traceback (also LORA_SITE_DEBUG=1).")
def main(debug: bool) -> None:
    """Build a reproducible article about LoRA and attention: run the experiments, draw the
    figures, render a Jekyll post and a static HTML site."""
    from .numerics import pin

    pin()           # before torch or numpy loads (run() did it already for the console script)


@main.command()
@root_option
@quiet_option
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for results (default: content/_freeze).")
@click.option("--only", "names", multiple=True, metavar="NAME",
              help="Run only this experiment (repeatable).")
def run(root, quiet, out, names) -> None:
    """Run the experiments the posts declare and save results.json + arrays.npz for each."""
    from .errors import ConfigError
    from .pipeline import declared_experiments, declaring_post, run_one

    project = _project(root)
    experiments = declared_experiments(project)
    for name in names:
        if name not in experiments:
            raise ConfigError(f"no experiment named '{name}'", field="--only",
                              hint=f"declared: {', '.join(experiments) or 'none'}")
    out_dir = Path(out) if out else project.freeze
    from .site import build_lock

    # The build's lock: a build reading content/_freeze never sees this run half-way.
    with build_lock(project):
        for name, cfg in experiments.items():
            if names and name not in names:
                continue
            outcomes: list = []
            saved = run_one(name, cfg, out_dir, _progress_factory(quiet),
                            source=declaring_post(project, name), settled=outcomes.append)
            if outcomes and outcomes[0].reported:
                _warn(f"{name}: {outcomes[0].detail}")
            elif outcomes and outcomes[0].detail and not quiet:
                click.echo(f"{name}: {outcomes[0].detail}")
            if out_dir == project.freeze:
                # Results in content/_freeze are only trusted with a manifest entry of their
                # inputs.
                from .freeze import record_run
                record_run(project, name, cfg)
            if not quiet:
                m = saved.metrics
                click.echo(f"{name}: {m['steps']} steps, target weight "
                           f"{m['target_weight_before']:.3f} -> "
                           f"{m['target_weight_after']:.3f} -> {saved.path}")


@main.command()
@root_option
@quiet_option
@click.option("--results", type=click.Path(file_okay=False), default=None,
              help="Folder holding <experiment>/results.json (default: content/_freeze).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the PNGs (default: .cache/lora-site/figures).")
def figures(root, quiet, results, out) -> None:
    """Draw the six figures of every saved experiment from its arrays (no torch)."""
    from .fsio import write_bytes_atomic
    from .pipeline import declared_experiments, draw_figures
    from .results import load_result

    project = _project(root)
    results_dir = Path(results) if results else project.freeze
    out_dir = Path(out) if out else project.cache / "figures"
    for name in declared_experiments(project):
        saved = load_result(results_dir / name)
        images = draw_figures(saved)
        for filename in sorted(images):
            write_bytes_atomic(out_dir / name / filename, images[filename])
        if not quiet:
            click.echo(f"{name}: {len(images)} images -> {out_dir / name}")


@main.command()
@root_option
@quiet_option
@click.option("--atol", type=float, default=1e-6, show_default=True,
              help="Absolute tolerance for arrays and numeric metrics.")
@click.option("--rtol", type=float, default=1e-6, show_default=True,
              help="Relative tolerance: a value passes when |re-run - frozen| <= atol + rtol*|frozen|.")
def verify(root, quiet, atol, rtol) -> None:
    """Re-run every experiment and the claims audit and compare them with content/_freeze."""
    from .errors import ResultsError
    from .freeze import verify as verify_frozen

    from .numerics import current, in_use

    report = verify_frozen(_project(root), atol=atol, rtol=rtol,
                           progress_factory=_progress_factory(quiet))
    env = in_use()
    where = current().describe() + (f", ATen {env['aten_capability']}"
                                     if env.get("aten_capability") else "")
    failed = []
    for name, found in report.items():
        for note in found["notes"]:
            click.echo(f"{name}: note: {note}")
        for diff in found["differences"]:
            click.echo(f"{name}: {diff}")
        if found["differences"]:
            failed.append(name)
        elif found["match"] == "bit-exact":
            click.echo(f"{name}: bit-exact match with the frozen results (numerics: {where})")
        else:
            click.echo(f"{name}: matches the frozen results within atol={atol:g}, rtol={rtol:g}, "
                       f"max |diff| {found['max_diff']:.3g} (numerics: {where})")
    if failed:
        count = sum(len(report[n]["differences"]) for n in failed)
        raise ResultsError(f"{count} difference(s) between re-run and frozen results in: "
                           f"{', '.join(failed)}", path="content/_freeze",
                           hint="if the change is intended, rebuild with --force and commit "
                                "content/_freeze")


@main.command()
@root_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; the default is reachable from this machine only.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0 picks a free one).")
@click.option("--interval", type=click.FloatRange(0.05, 10), default=0.5, show_default=True,
              help="Seconds between checks of content/, templates/ and generator/ for changes.")
def serve(root, host, port, interval) -> None:
    """Build, serve site/html, and rebuild and reload the page whenever a source changes."""
    from .serve import serve as run_preview

    run_preview(_project(root), host=host, port=port, interval=interval)


def _warn(line: str) -> None:
    click.echo(f"warning: {line}", err=True)


def _explainer(explain: bool):
    return (lambda line: click.echo(line, err=True)) if explain else None


def _report_build(report, quiet: bool) -> None:
    if quiet:
        return
    html = sum(1 for f in report.files if f.startswith("html/"))
    jekyll = sum(1 for f in report.files if f.startswith("jekyll/"))
    click.echo(f"built {len(report.posts)} post(s): {report.out / 'html'} ({html} files), "
               f"{report.out / 'jekyll'} ({jekyll} files)")


baseurl_option = click.option(
    "--baseurl", default=None, metavar="PATH",
    help="Serve the site under this path, e.g. /repo for a GitHub project page "
         "(overrides site.yml for this build).")
explain_option = click.option("--explain", is_flag=True,
                              help="Print, for each stage, whether it ran or was reused and why.")
# Not click.Path(file_okay=False): the build's own check says what to do in one line.
out_option = click.option("--out", type=click.Path(), default=None,
                          help="Output folder holding html/ and jekyll/ (default: site/).")


@main.command()
@root_option
@quiet_option
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
def build(root, quiet, frozen, force, refreeze, explain, baseurl, out) -> None:
    """Run every stage (experiments, figures, render) and write site/html and site/jekyll."""
    if frozen and (force or refreeze):
        raise click.UsageError(f"--frozen and {'--force' if force else '--refreeze'} "
                               "contradict each other; pick one")
    force = force or refreeze
    project = _project(root)
    say = _explainer(explain)
    # The no-op fast path: when no input changed and site/ is as the last build left it, stop
    # here, before yaml, Jinja, Markdown, numpy or torch are imported.
    from .cache import BuildFingerprint
    out_dir = Path(out).resolve() if out else project.site
    fingerprint = BuildFingerprint(project, out_dir, {"frozen": frozen, "baseurl": baseurl})
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
    from .site import build as build_site

    stages: list[str] = []

    def explain_and_note(line: str) -> None:
        stages.append(line.split(":", 1)[0])        # 'run main', 'figures main', 'render', ...
        if say:
            say(line)

    report = build_site(project, frozen=frozen, force=force, baseurl=baseurl,
                        explain=explain_and_note, progress_factory=_progress_factory(quiet),
                        out=Path(out) if out else None, refreeze=refreeze, warn=_warn)
    fingerprint.record(stages)
    _report_build(report, quiet)


@main.command()
@root_option
@quiet_option
@explain_option
@baseurl_option
@out_option
def render(root, quiet, explain, baseurl, out) -> None:
    """Re-render the site from saved results only (no training; fails if results are stale)."""
    from .site import build as build_site

    report = build_site(_project(root), frozen=True, baseurl=baseurl,
                        explain=_explainer(explain), out=Path(out) if out else None)
    _report_build(report, quiet)


@main.command()
@root_option
@quiet_option
@click.option("--seeds", type=click.IntRange(1, None), default=200, show_default=True,
              help="Seeds per setting (seeds 0..N-1); every claim is checked on each.")
@click.option("--sweeps", type=click.Choice(["all", "default"]), default="all",
              show_default=True,
              help="'all': the default setting and every sweep (rank, d_model, update site, "
                   "A init, token correlation); 'default': the default setting only.")
@click.option("--device", default="cpu", show_default=True,
              help="Torch device for training: cpu, or cuda where present.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Audit JSON path (default: content/_freeze/audit/audit.json); the per-run "
                   "statistics go beside it as .npz.")
@click.option("--strict", is_flag=True,
              help="Exit 1 unless every claim holds in the default setting.")
@click.option("--refreeze", is_flag=True,
              help="Write the audit into content/_freeze even where it matches the frozen one "
                   "within tolerance (which is otherwise kept).")
def audit(root, quiet, seeds, sweeps, device, out, strict, refreeze) -> None:
    """Check every claim of the reference article over many seeds and settings."""
    from .audit import format_table, min_seeds_to_hold, run_audit, save_audit

    project = _project(root)
    if seeds < min_seeds_to_hold() and not quiet:
        click.echo(f"note: with fewer than {min_seeds_to_hold()} seeds no claim can be shown "
                   "to hold at 95% confidence", err=True)
    json_path = Path(out) if out else project.freeze / "audit" / "audit.json"
    if _show_progress(quiet):
        with click.progressbar(length=1, label="auditing", file=sys.stderr, show_pos=True,
                               width=30) as bar:
            def progress(done: int, total: int) -> None:
                bar.length = total
                bar.update(done - bar.pos)
            result = run_audit(seeds, sweeps=sweeps, device=device, progress=progress)
    else:
        result = run_audit(seeds, sweeps=sweeps, device=device)
    if out:
        npz_path = save_audit(json_path, result)
    else:
        # content/_freeze/audit: recorded as the build's audit when it used the build's settings.
        from .audit_site import save_to_freeze
        npz_path, outcome = save_to_freeze(project, result, seeds=seeds, sweeps=sweeps,
                                           device=device, refreeze=refreeze)
        if outcome is not None and outcome.reported:
            _warn(f"audit: {outcome.detail}")
        elif outcome is not None and outcome.detail and not quiet:
            click.echo(f"audit: {outcome.detail}", err=True)
    if not quiet:
        click.echo(format_table(result))
        click.echo(f"audit of {seeds} seeds ({sweeps} sweeps) -> {json_path} and {npz_path.name}")
    failed = result.failed_default()
    if strict and failed:
        click.echo(f"claims that do not hold in the default setting: {', '.join(failed)}",
                   err=True)
        raise SystemExit(1)


def run() -> None:
    """The `lora-site` program (console script, ``python -m generator``): main() as the whole
    of a process, with the garbage collector set for a short run. Tests call main()."""
    import gc

    # A build creates many long-lived objects (modules, compiled templates, Markdown's
    # tables) and few reference cycles; at the default threshold (700) the collector walks
    # them over and over while they are created.
    gc.set_threshold(50_000, 20, 20)
    from .numerics import pin

    # First thing: every library that computes a stored number reads these variables when it
    # loads, and the processes this one starts inherit them (numerics.py says which and why).
    pin()
    try:
        main()
    finally:
        # At exit Python collects everything still alive just before freeing it all; nothing
        # relies on that pass (files are closed by with-blocks), and it costs ~40 ms of a
        # 0.5 s rebuild. Frozen objects are still freed, only not scanned for cycles.
        gc.freeze()
