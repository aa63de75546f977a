"""The run and figures stages, for every declared experiment of any kind.

run:      results reused from content/_freeze while the manifest records exactly the current
          inputs, else computed (in this process, or in a child for a heavy kind) and settled
          against the freeze (store.settle).
figures:  PNGs looked up in .cache/lora-site/figures/<key>/, then in the freeze, and drawn
          (by the figure worker while the build goes on) only when neither holds them.

Stages hand each other plain data on disk (result files, PNG bytes), so each one can be run,
cached and tested alone. Nothing here knows a kind by name.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..core.context import BuildContext
from ..core.errors import ConfigError, ExperimentError, ResultsError
from ..core.keys import changed_inputs, digest, stage_inputs
from ..kinds.base import Declared
from .figcache import FigureCache
from .store import Store, settle

Say = Callable[[str], None]


@dataclass(frozen=True)
class StageOptions:
    """How the stages run. frozen: never compute, use content/_freeze only, and fail naming a
    stale result. force: recompute every result and redraw every figure. refreeze: force, and
    write every re-run even where it matches the freeze within tolerance. explain: told one line
    per stage and experiment. warn: told of a re-run that differs from the freeze. progress:
    progress(name, kind) -> a context manager yielding progress(done, total, note), or None."""

    frozen: bool = False
    force: bool = False
    refreeze: bool = False
    explain: Say | None = None
    warn: Say | None = None
    progress: Callable | None = None

    def __post_init__(self) -> None:
        if self.frozen and (self.force or self.refreeze):
            raise ConfigError("--frozen and --force contradict each other", field="--force",
                              hint="--frozen never trains; drop one of them")

    @property
    def recompute(self) -> bool:
        return self.force or self.refreeze

    def say(self, line: str) -> None:
        if self.explain is not None:
            self.explain(line)


def _short(key: str) -> str:
    return key[:12]


def store_of(ctx: BuildContext) -> Store:
    # Read once per build: another command (run, audit, a checkout) may change the freeze
    # between two builds of one context.
    return ctx.state("store", Store, renew=True)


def workers_of(ctx: BuildContext):
    """The context's stages.workers.Workers (imported when a build first needs a process)."""
    from .workers import Workers

    return ctx.state("workers", Workers)


def _import_memo(ctx: BuildContext) -> dict:
    """Each source file's imports, read once per context (core.keys.module_closure)."""
    return ctx.state("import-memo", lambda ctx: {})


def outside_sources(ctx: BuildContext, d: Declared) -> dict[str, Any]:
    """A kind defined outside the package (site.yml's `kinds:`) is keyed by its own file too."""
    if d.kind.module.startswith("generator."):
        return {}
    import sys

    from ..kinds.base import SOURCE_HASH

    module = sys.modules.get(d.kind.module)
    path = getattr(module, "__file__", None)
    # The source that was imported (and so computes), not the file as it is now.
    sha = getattr(module, SOURCE_HASH, None) or (ctx.hashes.sha256(path) if path else None)
    return {"kind-module": {d.kind.module: sha}}


def _upstream_files(ctx: BuildContext, d: Declared) -> dict[str, Any]:
    """The results ``d`` reads (Kind.needs) enter its key by their files' hashes as they now
    stand in the freeze (settled first: stages run them before ``d``)."""
    if not d.upstream:
        return {}
    store = store_of(ctx)
    out = {}
    for u in d.upstream:
        folder = store.folder(u.name)
        out[u.name] = {f: ctx.hashes.sha256(folder / f) if (folder / f).is_file() else None
                       for f in u.kind.result_files}
    return {"upstream": out}


def run_inputs(ctx: BuildContext, d: Declared) -> dict[str, Any]:
    """Everything that decides the results of ``d`` (core.keys.stage_inputs), the results it
    reads included; computed once per build (a heavy kind's child is started with them, then its
    result checked) while the files it reads stay the same."""
    memo = ctx.state("run-inputs", lambda ctx: {}, renew=True)
    upstream = _upstream_files(ctx, d)
    key = (d.name, d.key(), d.kind.module, repr(upstream))
    if key not in memo:
        memo[key] = stage_inputs(settings=d.kind.settings_dict(d.settings),
                                 roots=d.kind.run_roots, libraries=d.kind.run_libraries,
                                 sha256=ctx.hashes.sha256,
                                 lock=ctx.project.root / "requirements.lock",
                                 extra={**outside_sources(ctx, d), **upstream},
                                 memo=_import_memo(ctx))
    return memo[key]


def upstream_results(ctx: BuildContext, d: Declared) -> dict[str, Any]:
    """name -> the loaded result of each experiment ``d`` reads, as it now stands (staged by
    this build, else in the freeze)."""
    store = store_of(ctx)
    return {u.name: _load(ctx, u, store.folder(u.name)) for u in d.upstream}


def figure_inputs(ctx: BuildContext, d: Declared, folder: Path) -> dict[str, Any]:
    """Everything that decides the figures of ``d``: the settings (titles and the outlined
    cell use them), the hashes of the result files they are drawn from, the plotting source
    and libraries."""
    results = {f: ctx.hashes.sha256(folder / f) for f in d.kind.figure_input_files}
    return stage_inputs(settings=d.kind.settings_dict(d.settings), roots=d.kind.figure_roots,
                        libraries=d.kind.figure_libraries, sha256=ctx.hashes.sha256,
                        lock=ctx.project.root / "requirements.lock",
                        extra={"results": results, **outside_sources(ctx, d)},
                        memo=_import_memo(ctx))


def say_outcome(progress: Any, d: Declared, files: dict[str, bytes]) -> None:
    """End a progress display with how the computation ended, when both can say so."""
    finish = getattr(progress, "finish", None)
    how = d.kind.outcome(d.settings, files) if finish is not None else None
    if how:
        finish(how)


def _not_installed(exc: ImportError, d: Declared, libraries, what: str) -> BaseException:
    """The error for a library ``d``'s kind needs (one of ``libraries``) missing: how to build
    without it; any other import failure is returned as it was (a bug, not a missing install)."""
    missing = (exc.name or "").split(".")[0]
    if missing not in libraries:
        return exc
    return ResultsError(f"{what}, and {missing} is not installed", path=d.source,
                        field=f"experiments.{d.name}",
                        hint=f"install it with pip install -r requirements.lock, or build with "
                             f"--frozen from a content/_freeze made where {missing} is")


def compute_here(d: Declared, opts: StageOptions,
                 upstream: Mapping[str, Any] | None = None) -> dict[str, bytes]:
    """Compute ``d`` in this process (``upstream``: the loaded results it reads, for a kind
    with needs); a failure the settings can fix names the post that declares it (and the
    setting, when the kind says which); a library the kind computes with that is not installed
    says how to build without it."""
    extra = {} if upstream is None else {"upstream": upstream}
    try:
        if opts.progress is None:
            return d.kind.compute(d.name, d.settings, **extra)
        with opts.progress(d.name, d.kind) as progress:
            files = d.kind.compute(d.name, d.settings, progress, **extra)
            say_outcome(progress, d, files)
            return files
    except ExperimentError as exc:
        from ..core.located import located

        field = f"experiments.{d.name}"
        if exc.field and exc.field != "experiment":
            field += f".{exc.field}"
        raise located(exc, path=d.source, field=field) from None
    except ImportError as exc:
        raise _not_installed(exc, d, d.kind.run_libraries,
                             f"experiment '{d.name}' must be computed") from None


# content/_freeze is committed: GitHub warns about a file over 50 MB and refuses one over 100 MB.
WARN_FILE_BYTES = 50_000_000
MAX_FILE_BYTES = 100_000_000


def _size(n: int) -> str:
    """A file size as people read it: 812 bytes, 5.2 kB, 134.2 MB."""
    if n < 1000:
        return f"{n} bytes"
    return f"{n / 1000:.1f} kB" if n < 1_000_000 else f"{n / 1_000_000:.1f} MB"


def check_sizes(d: Declared, files: Mapping[str, bytes], opts: StageOptions) -> None:
    """Refuse a result file too large for the repository; warn about one GitHub warns about."""
    for name in sorted(files):
        size = len(files[name])
        if size > MAX_FILE_BYTES:
            raise ResultsError(f"the result file {name} of experiment '{d.name}' would be "
                               f"{_size(size)}, over the {_size(MAX_FILE_BYTES)} GitHub accepts",
                               path=d.source, field=f"experiments.{d.name}",
                               hint="make the experiment smaller: content/_freeze is committed")
        if size > WARN_FILE_BYTES and opts.warn is not None:
            opts.warn(f"run {d.name}: {name} is {_size(size)}; GitHub warns about files over "
                      f"{_size(WARN_FILE_BYTES)} and refuses them over {_size(MAX_FILE_BYTES)}")


def compute_declared(ctx: BuildContext, d: Declared, opts: StageOptions) -> dict[str, bytes]:
    """compute_here, with the results ``d`` reads loaded from the freeze."""
    if d.upstream:
        return compute_here(d, opts, upstream_results(ctx, d))
    return compute_here(d, opts)


def save_result(ctx: BuildContext, d: Declared, files: dict[str, bytes], inputs: dict | None,
                opts: StageOptions):
    """Settle fresh files against the freeze, write what must be written, record the inputs.
    Returns the store.Settled outcome."""
    store = store_of(ctx)
    check_sizes(d, files, opts)
    outcome = settle(store.frozen_folder(d.name), files, d.kind.compare,
                     refreeze=opts.refreeze)
    if inputs is None:
        # Not the declared settings (a command-line override): written, never recorded.
        if outcome.write:
            store.put_result(d.name, d.kind, files, {})
        store.forget(d.name)
    else:
        store.put_result(d.name, d.kind, files if outcome.write else None, inputs)
    if outcome.reported and opts.warn is not None:
        opts.warn(f"run {d.name}: {outcome.detail}")
    return outcome


def start_children(ctx: BuildContext, declared: Mapping[str, Declared],
                   opts: StageOptions) -> None:
    """Start a child for each stale result of a heavy kind, so it computes while this process
    trains the rest and has their figures drawn."""
    if opts.frozen:
        return
    store = store_of(ctx)
    for d in declared.values():
        if not d.kind.heavy:
            continue
        # What it reads must be settled already: else it waits for its turn in this process.
        if d.upstream and (opts.recompute or not all(
                store.check(u.name, u.kind, run_inputs(ctx, u)).fresh for u in d.upstream)):
            continue
        inputs = run_inputs(ctx, d)
        if opts.recompute or not store.check(d.name, d.kind, inputs).fresh:
            workers_of(ctx).start_compute(d.name, d.kind, d.settings, digest(inputs),
                                          upstream={u.name: (u.kind.module, store.folder(u.name))
                                                    for u in d.upstream})


def collect_child(workers, d: Declared, key: str, opts: StageOptions) -> dict[str, bytes] | None:
    """The files of the child computing ``d`` (None if it failed), its progress shown as it
    reports it (what it reported while this process was busy comes at once)."""
    if opts.progress is None:
        return workers.collect(d.name, key)
    with opts.progress(d.name, d.kind) as progress:
        files = workers.collect(d.name, key, progress=progress)
        if files is not None:
            say_outcome(progress, d, files)
        return files


def _load(ctx: BuildContext, d: Declared, folder: Path) -> Any:
    """The kind's loaded result in ``folder``, kept in the context while the result files'
    hashes stay the same (a warm context loads it once, not once per build)."""
    memo = ctx.state("loaded", lambda ctx: {})
    try:
        key = (d.kind.name, tuple(ctx.hashes.sha256(folder / f) for f in d.kind.result_files))
    except OSError:
        return d.kind.load(folder, d.name)          # which says what is missing
    seen = memo.get((d.name, str(folder)))
    if seen is not None and seen[0] == key:
        return seen[1]
    loaded = d.kind.load(folder, d.name)
    memo[(d.name, str(folder))] = (key, loaded)
    return loaded


def result_of(ctx: BuildContext, d: Declared, opts: StageOptions) -> Any:
    """The fresh result of ``d``: reused, collected from its child, or computed here."""
    store = store_of(ctx)
    inputs = run_inputs(ctx, d)
    state = store.check(d.name, d.kind, inputs)
    folder = store.folder(d.name)
    if opts.frozen:
        if not state.fresh:
            raise ResultsError(f"frozen results of experiment '{d.name}' are stale: "
                               f"{'; '.join(state.reasons)}", path=state.bad_file or folder,
                               hint="rebuild without --frozen where torch is installed, "
                                    "then commit content/_freeze")
        opts.say(f"run {d.name}: reused frozen results (inputs unchanged, key "
                 f"{_short(state.key)})")
        return _load(ctx, d, folder)
    if state.fresh and not opts.recompute:
        if ctx.has_state("workers"):
            workers_of(ctx).stop(d.name)
        opts.say(f"run {d.name}: reused (inputs unchanged, key {_short(state.key)})")
        return _load(ctx, d, folder)
    why = "--force" if opts.recompute else "; ".join(state.reasons)
    # New results mean new figures: the figure worker imports matplotlib on the other core
    # while this one trains.
    workers = workers_of(ctx)
    workers.start_pool()
    files = None if opts.recompute else store.cached_result(d.kind, state.key)
    ran = "ran" if files is None else "reused the results of a build that failed later"
    where = ""
    if files is None and workers.computing(d.name):
        files = collect_child(workers, d, state.key, opts)
        where = "" if files is None else "; computed by a second process"
    workers.stop(d.name)
    if files is None:
        files = compute_declared(ctx, d, opts)
    outcome = save_result(ctx, d, files, inputs, opts)
    detail = f"; {outcome.detail}" if outcome.detail else ""
    opts.say(f"run {d.name}: {ran} ({why}; key {_short(state.key)}{where}){detail}")
    return _load(ctx, d, store.folder(d.name))


def draw_here(d: Declared, folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """Draw the figures ``names`` of ``d`` in this process; a plotting library that is not
    installed says how to build without it."""
    try:
        return d.kind.draw(folder, names)
    except ImportError as exc:
        raise _not_installed(exc, d, d.kind.figure_libraries,
                             f"the figures of experiment '{d.name}' must be drawn") from None


def figures_of(ctx: BuildContext, d: Declared, loaded: Any,
               opts: StageOptions) -> Mapping[str, bytes]:
    """file name -> PNG bytes of the figures of ``d`` (a PendingFigures when the worker is
    still drawing them). A frozen build refuses a damaged frozen figure rather than redraw it."""
    from ..plots.common import image_files

    names = tuple(d.kind.figures(d.settings))
    if not names:
        return {}
    store = store_of(ctx)
    cache = FigureCache(ctx.project.cache, hashes=ctx.hashes)
    folder = store.folder(d.name)
    inputs = figure_inputs(ctx, d, folder)
    key = digest(inputs)
    frozen_images, stale = store.figures(d.name, inputs)
    damaged = [r for r in stale if r.startswith("figures/")]
    if opts.frozen and damaged:
        bad, _, what = damaged[0].partition(" ")
        raise ResultsError(f"frozen figure of experiment '{d.name}' {what}",
                           path=folder / bad,
                           hint="rebuild without --frozen, then commit content/_freeze")
    images = None if opts.recompute else cache.load(key)
    if images is not None:
        opts.say(f"figures {d.name}: reused (inputs unchanged, key {_short(key)})")
    elif frozen_images is not None and not opts.recompute:
        images = frozen_images
        opts.say(f"figures {d.name}: reused frozen figures (inputs unchanged, key "
                 f"{_short(key)})")
        cache.store(key, images)
    else:
        last = cache.last_inputs("figures", d.name) or \
            store.entries.get(d.name, {}).get("figures", {}).get("inputs")
        why = "--force" if opts.recompute else "; ".join(changed_inputs(last, inputs))
        opts.say(f"figures {d.name}: drew ({why or 'not in the cache'}; key {_short(key)})")
        cache.remember_inputs("figures", d.name, inputs)

        def keep(drawn: dict[str, bytes]) -> None:
            cache.store(key, drawn)
            if frozen_images != drawn:
                # Freeze what the site shows, so a checkout builds the same pages undrawn:
                # staged, and committed with everything else once the build has succeeded.
                store.put_figures(d.name, drawn, inputs)
        return workers_of(ctx).draw_later(
            d.kind, folder, names, image_files(names),
            fallback=functools.partial(draw_here, d, folder, names), keep=keep)
    if frozen_images != images:
        store.put_figures(d.name, images, inputs)
    cache.remember_inputs("figures", d.name, inputs)
    return images


def _in_order(declared: Mapping[str, Declared], ctx: BuildContext) -> list[Declared]:
    """Light results first, heavy ones (perhaps computing in a child) last: the figures of the
    first can be drawn while the others compute. An experiment comes after those it reads."""
    started = ctx.has_state("workers")
    return in_order(declared, key=lambda d: (
        d.kind.heavy, started and workers_of(ctx).computing(d.name), d.name))


def in_order(declared: Mapping[str, Declared],
             key: Callable[[Declared], Any] = lambda d: d.name) -> list[Declared]:
    """The experiments sorted by ``key``, each moved after the experiments it reads."""
    preferred = sorted(declared.values(), key=key)
    out: list[Declared] = []
    placed: set[str] = set()

    def place(d: Declared) -> None:
        if d.name in placed:
            return
        placed.add(d.name)              # the graph is acyclic (authoring.posts.resolve_needs)
        for u in d.upstream:
            place(declared.get(u.name, u))
        out.append(d)
    for d in preferred:
        place(d)
    return out


def results_stage(ctx: BuildContext, declared: Mapping[str, Declared],
                  opts: StageOptions = StageOptions()) -> dict[str, Any]:
    """Fresh results for every declared experiment: name -> the kind's loaded result."""
    start_children(ctx, declared, opts)
    out = {d.name: result_of(ctx, d, opts) for d in _in_order(declared, ctx)}
    store_of(ctx).save()
    return {name: out[name] for name in sorted(out)}


def figures_stage(ctx: BuildContext, declared: Mapping[str, Declared], results: Mapping[str, Any],
                  opts: StageOptions = StageOptions()) -> dict[str, Mapping[str, bytes]]:
    """experiment name -> {file name -> PNG bytes} for every declared experiment."""
    out = {name: figures_of(ctx, declared[name], results[name], opts) for name in sorted(results)}
    store_of(ctx).save()
    return out


def experiments(ctx: BuildContext, declared: Mapping[str, Declared],
                opts: StageOptions = StageOptions()) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both stages, experiment by experiment: each one's figures go to the worker as soon as
    its results are there, while the next result trains or its child finishes. New results
    and figures are staged, not committed: the build commits them with site/ (publish.build),
    and results_stage and figures_stage, run alone, at their end."""
    start_children(ctx, declared, opts)
    results: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    for d in _in_order(declared, ctx):
        results[d.name] = result_of(ctx, d, opts)
        figures[d.name] = figures_of(ctx, d, results[d.name], opts)
    return ({n: results[n] for n in sorted(results)}, {n: figures[n] for n in sorted(figures)})
