"""The commands that compute and check results: run, figures, verify, audit."""
from __future__ import annotations

from pathlib import Path

import click

from . import common


@click.command(name="run")
@common.root_option
@common.quiet_option
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for results (default: content/_freeze, recorded in its manifest).")
@click.option("--only", "names", multiple=True, metavar="NAME",
              help="Run only this experiment (repeatable).")
def run_command(root, quiet, out, names) -> None:
    """Compute the experiments the posts declare and save their results (content/_freeze)."""
    from ..core.errors import ConfigError
    from ..core.fsio import write_bytes_atomic
    from ..publish.lock import build_lock
    from ..stages.run import (StageOptions, compute_here, in_order, run_inputs, save_result,
                              store_of)
    from ..stages.store import recover_freeze

    ctx = common.context(root)
    declared = common.declared(ctx)
    for name in names:
        if name not in declared:
            raise ConfigError(f"no experiment named '{name}'", field="--only",
                              hint=f"declared: {', '.join(declared) or 'none'}")
    opts = StageOptions(progress=common.progress_factory(quiet), warn=common.warn)
    written: dict[str, Path] = {}           # what this run wrote outside the freeze
    # The build's lock: a build reading content/_freeze never sees this run half-way.
    with build_lock(ctx.project):
        recover_freeze(ctx)
        said: list[str] = []
        for d in in_order(declared):
            name = d.name
            if names and name not in names:
                continue
            # A result it reads: as this run wrote it, else as frozen.
            upstream = {u.name: u.kind.load(written.get(u.name, store_of(ctx).folder(u.name)),
                                            u.name) for u in d.upstream}
            files = compute_here(d, opts, upstream) if d.upstream else compute_here(d, opts)
            if out:
                folder = written[name] = Path(out) / name
                for filename in d.kind.result_files:
                    write_bytes_atomic(folder / filename, files[filename])
                outcome = None
            else:
                outcome = save_result(ctx, d, files, run_inputs(ctx, d), opts)
                folder = store_of(ctx).folder(name)        # staged until the commit below
            said.append(f"{d.kind.summary(name, d.kind.load(folder, name))} -> "
                        f"{Path(out) / name if out else store_of(ctx).frozen_folder(name)}")
            if outcome is not None and outcome.detail and not outcome.reported:
                said.append(f"{name}: {outcome.detail}")
        # Every result, or none: an experiment that fails leaves content/_freeze as it was.
        store_of(ctx).save()
    if not quiet:
        for line in said:
            click.echo(line)


@click.command()
@common.root_option
@common.quiet_option
@click.option("--results", type=click.Path(file_okay=False), default=None,
              help="Folder holding <experiment>/<result files> (default: content/_freeze).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the PNGs (default: .cache/lora-site/figures).")
def figures(root, quiet, results, out) -> None:
    """Draw the figures of every saved experiment from its results (no torch)."""
    from ..core.fsio import write_bytes_atomic

    ctx = common.context(root)
    results_dir = Path(results) if results else ctx.project.freeze
    out_dir = Path(out) if out else ctx.project.cache / "figures"
    for name, d in common.declared(ctx).items():
        names = tuple(d.kind.figures(d.settings))
        images = d.kind.draw(results_dir / name, names) if names else {}
        for filename in sorted(images):
            write_bytes_atomic(out_dir / name / filename, images[filename])
        if not quiet:
            click.echo(f"{name}: {len(images)} images -> {out_dir / name}")


def _tolerance(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """A tolerance is a finite number >= 0: a negative one fails every value (|diff| >= 0),
    an infinite or NaN one passes or fails everything."""
    import math

    if not (math.isfinite(value) and value >= 0):
        from ..core.errors import ConfigError

        raise ConfigError(f"must be a finite number >= 0, got {value!r}", field=f"--{param.name}",
                          hint="the default is 1e-06; 0 asks for bit-exact results")
    return value


@click.command()
@common.root_option
@common.quiet_option
@click.option("--atol", type=float, default=1e-6, show_default=True, callback=_tolerance,
              help="Absolute tolerance for arrays and numeric metrics.")
@click.option("--rtol", type=float, default=1e-6, show_default=True, callback=_tolerance,
              help="Relative tolerance: a value passes when |re-run - frozen| <= atol + rtol*|frozen|.")
def verify(root, quiet, atol, rtol) -> None:
    """Re-run every experiment (the claims audit too) and compare it with content/_freeze."""
    from ..core.errors import ResultsError
    from ..core.numerics import current, in_use
    from ..stages.run import StageOptions
    from ..stages.verify import verify as verify_frozen

    ctx = common.context(root)
    # A draft's experiments are frozen only by a build with --drafts: not checked here.
    report = verify_frozen(ctx, common.declared(ctx, drafts=False), atol=atol, rtol=rtol,
                           opts=StageOptions(progress=common.progress_factory(quiet)))
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


@click.command()
@common.root_option
@common.quiet_option
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
    from ..core.errors import ExperimentError
    from ..core.fsio import write_bytes_atomic
    from ..core.located import located
    from ..kinds.base import Declared
    from ..kinds.claims_audit import AUDIT_JSON, AUDIT_NPZ, KIND
    from ..publish.lock import build_lock
    from ..science.audit import format_table, min_seeds_to_hold
    from ..stages.run import StageOptions, compute_here, run_inputs, save_result, store_of
    from ..stages.store import recover_freeze

    ctx = common.context(root)
    if seeds < min_seeds_to_hold() and not quiet:
        click.echo(f"note: with fewer than {min_seeds_to_hold()} seeds no claim can be shown "
                   "to hold at 95% confidence", err=True)
    settings = KIND.parse({"seeds": seeds, "sweeps": sweeps, "device": device}, prefix="--")
    declared = {n: d for n, d in common.declared(ctx).items() if d.kind is KIND}
    name = next(iter(declared), "audit")
    d = Declared(name, KIND, settings, declared[name].source if name in declared else None)
    opts = StageOptions(progress=common.progress_factory(quiet), refreeze=refreeze, warn=common.warn)
    try:
        files = compute_here(d, opts)
    except ExperimentError as exc:
        if not (exc.field or "").endswith(".device"):
            raise
        raise located(exc, path=None, field="--device", hint="use --device cpu") from None
    if out:
        json_path = Path(out)
        write_bytes_atomic(json_path.with_suffix(".npz"), files[AUDIT_NPZ])
        write_bytes_atomic(json_path, files[AUDIT_JSON])
        npz_name = json_path.with_suffix(".npz").name
    else:
        # content/_freeze/<name>: recorded as the build's result only when these are the
        # settings a post declares (otherwise the next build recomputes it).
        matches = name in declared and declared[name].settings == settings
        with build_lock(ctx.project):
            recover_freeze(ctx)
            outcome = save_result(ctx, d, files, run_inputs(ctx, d) if matches else None, opts)
            store_of(ctx).save()
        if outcome.detail and not outcome.reported and not quiet:
            click.echo(f"audit: {outcome.detail}", err=True)
        json_path = store_of(ctx).folder(name) / AUDIT_JSON
        npz_name = AUDIT_NPZ
    import json

    summary = json.loads(files[AUDIT_JSON])
    if not quiet:
        click.echo(format_table(summary))
        click.echo(f"audit of {seeds} seeds ({sweeps} sweeps) -> {json_path} and {npz_name}")
    failed = [row["claim"] for row in summary["table"] if row["verdict"] != "holds"]
    if strict and failed:
        click.echo(f"claims that do not hold in the default setting: {', '.join(failed)}",
                   err=True)
        raise SystemExit(1)


