"""The run and figures stages. Rendering and writing the site live in render.py and site.py.

Stages hand each other plain data on disk (results.json + arrays.npz, PNG bytes), so each one
can be run, cached and tested alone.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Callable

from .config import ExperimentConfig
from .content import collect_experiments, read_post
from .project import Project
from .results import SavedResult, load_result


def declared_experiments(project: Project) -> dict[str, ExperimentConfig]:
    return collect_experiments([read_post(p) for p in project.post_files()])


def declaring_post(project: Project, name: str) -> Path | None:
    """The post whose front matter declares experiment ``name`` (for error messages)."""
    for path in project.post_files():
        if name in read_post(path).experiments:
            return path
    return None


def run_one(name: str, cfg: ExperimentConfig, out_dir: Path,
            progress_factory: Callable | None = None, *,
            source: Path | None = None, refreeze: bool = False,
            settled: Callable | None = None) -> SavedResult:
    """Train one experiment (imports torch) and save it under out_dir/name. A training failure
    (a non-finite loss) names ``source``, the post that declares the experiment.

    The fresh files are settled against what out_dir/name already holds (freeze.settle): a
    re-run that matches them within verify's tolerance keeps the bytes there. ``settled`` is
    told the outcome (freeze.Settled)."""
    from . import freeze
    from .errors import ExperimentError
    from .experiment import run_experiment  # torch is imported only when something trains
    from .fsio import write_bytes_atomic
    from .results import ARRAYS_NPZ, RESULTS_JSON, result_files

    try:
        if progress_factory is None:
            result = run_experiment(cfg)
        else:
            with progress_factory(name, cfg) as progress:
                result = run_experiment(cfg, progress=progress)
    except ExperimentError as exc:
        from .located import located

        raise located(exc, path=source, field=f"experiments.{name}") from None
    folder = out_dir / name
    files = result_files(name, result)
    outcome = freeze.settle(folder, files, freeze.compare_result_files, refreeze=refreeze)
    if outcome.write:
        # The arrays first: a results.json is only ever next to the archive it describes.
        write_bytes_atomic(folder / ARRAYS_NPZ, files[ARRAYS_NPZ])
        write_bytes_atomic(folder / RESULTS_JSON, files[RESULTS_JSON])
    if settled is not None:
        settled(outcome)
    return load_result(folder)


_pool = None          # the figure-drawing workers of this process (drawpool.DrawPool)


def start_draw_pool():
    """Start the figure workers now (idempotent): they import matplotlib while we do other work.
    None when drawing happens in this process (one core, or LORA_SITE_DRAW_WORKERS=0)."""
    global _pool
    if _pool is None:
        from .drawpool import DrawPool, worker_count

        n = worker_count()
        if n:
            import atexit

            _pool = DrawPool(n)
            atexit.register(close_draw_pool)
    return _pool


def close_draw_pool() -> None:
    """Collect every figure still being drawn, then end the workers."""
    global _pool
    for pending in list(_pending):
        pending.images()
    if _pool is not None:
        _pool.close()
        _pool = None


_pending: list["PendingFigures"] = []


class PendingFigures(Mapping):
    """file name -> PNG bytes of figures a worker is still drawing. The names are known at once
    (enough to render pages), the bytes arrive on first use, so the build goes on meanwhile
    (for instance training the claims audit on this core while the worker draws on the other)."""

    def __init__(self, names: tuple[str, ...], resolve: Callable[[], dict[str, bytes]]) -> None:
        self._names, self._resolve = tuple(names), resolve
        self._images: dict[str, bytes] | None = None
        _pending.append(self)

    def images(self) -> dict[str, bytes]:
        if self._images is None:
            self._images = self._resolve()
            # By identity: list.remove would compare with ==, which resolves the other pending
            # mappings it meets (Mapping equality reads their bytes).
            _pending[:] = [p for p in _pending if p is not self]
            if not _pending:
                close_draw_pool()           # nothing is being drawn any more
        return self._images

    def __getitem__(self, name: str) -> bytes:
        return self.images()[name]

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def draw_later(folder: Path, names: tuple[str, ...], drawer: str, *, files: tuple[str, ...],
               fallback: Callable[[], dict[str, bytes]],
               keep: Callable[[dict[str, bytes]], None],
               processes: int | None = None) -> Mapping[str, bytes]:
    """Figures ``names`` of ``folder``, drawn by the worker while the build goes on: a
    PendingFigures whose ``files`` are known at once and whose bytes arrive on first use, then
    passed to ``keep`` (to store them). Without a worker, or if it fails, ``fallback`` draws
    them here."""
    pool = start_draw_pool()
    if pool is None:
        images = fallback()
        keep(images)
        return images
    ticket = pool.submit(folder, names, drawer, processes=processes)

    def resolve() -> dict[str, bytes]:
        images = pool.result(ticket)
        if images is None:
            images = fallback()
        keep(images)
        return images
    return PendingFigures(files, resolve)


def draw_figures(saved: SavedResult) -> dict[str, bytes]:
    """The six figures (1x and 2x) of one saved result: file name -> PNG bytes.

    Drawn by the worker pool, in parallel, when there is one; in this process otherwise, or if
    a worker fails (so a plotting error shows its own traceback here)."""
    from .figures import FIGURE_NAMES, render_figures

    images = draw_with_pool(saved.path, FIGURE_NAMES, "generator.drawpool:draw_saved_result")
    if images is not None:
        return images
    return render_figures(saved.config, saved.arrays())


def draw_with_pool(folder: Path, names: tuple[str, ...], drawer: str) -> dict[str, bytes] | None:
    """Figures drawn in parallel by the worker pool (see drawpool.DrawPool.draw), or None when
    there is no pool or it failed: the caller then draws in this process."""
    pool = start_draw_pool()
    if pool is None:
        return None
    images = pool.draw(folder, names, drawer)
    if images is None:
        close_draw_pool()
    return images


def _short(key: str) -> str:
    return key[:12]


def results_stage(project: Project, *, frozen: bool = False, force: bool = False,
                  progress_factory: Callable | None = None,
                  explain: Callable[[str], None] | None = None, refreeze: bool = False,
                  warn: Callable[[str], None] | None = None) -> dict[str, SavedResult]:
    """Fresh results for every declared experiment, from content/_freeze or by training.

    A frozen result is reused when content/_freeze/manifest.json records exactly the current
    inputs (freeze.run_inputs) and the files' hashes still match; otherwise it is re-run and the
    manifest updated. frozen: never train; a missing, stale or damaged result is an error naming
    the experiment. force: train every experiment. explain: gets one line per experiment saying
    whether it ran or was reused, and why, and how the re-run compares with the freeze
    (freeze.settle: a match within tolerance keeps the committed bytes). refreeze: train every
    experiment and write its bytes whatever the freeze holds. warn: told about a re-run that
    differs from the freeze beyond tolerance.

    Being the build's first stage, it also starts the claims audit in a second process when a
    post reads it and it must be recomputed (audit_site.start_early): the audit trains on one
    core while this process trains the experiments; audit_stage collects it.
    """
    from . import freeze
    from .errors import ConfigError, ResultsError

    if frozen and (force or refreeze):
        raise ConfigError("--frozen and --force contradict each other", field="--force",
                          hint="--frozen never trains; drop one of them")
    force = force or refreeze
    if not frozen and reads_audit(project):
        from .audit_site import start_early

        start_early(project, force=force)
    say = explain or (lambda line: None)
    lock = project.root / "requirements.lock"
    manifest = freeze.Manifest.read(project.freeze)
    out: dict[str, SavedResult] = {}
    dirty = False
    for name, cfg in declared_experiments(project).items():
        folder = project.freeze / name
        inputs = freeze.run_inputs(cfg, lock=lock)
        state = freeze.check(name, inputs, manifest, project.freeze)
        if frozen:
            if not state.fresh:
                where = state.bad_file or folder
                raise ResultsError(f"frozen results of experiment '{name}' are stale: "
                                   f"{'; '.join(state.reasons)}", path=where,
                                   hint="rebuild without --frozen where torch is installed, "
                                        "then commit content/_freeze")
            say(f"run {name}: reused frozen results (inputs unchanged, key {_short(state.key)})")
            out[name] = load_result(folder)
            continue
        if state.fresh and not force:
            say(f"run {name}: reused (inputs unchanged, key {_short(state.key)})")
            out[name] = load_result(folder)
            continue
        why = "--force" if force else "; ".join(state.reasons)
        # New results mean new figures: let the drawing workers import matplotlib on the other
        # core while this one imports torch and trains.
        start_draw_pool()
        outcomes: list = []
        saved = run_one(name, cfg, project.freeze, progress_factory,
                        source=declaring_post(project, name), refreeze=refreeze,
                        settled=outcomes.append)
        manifest.record(name, inputs, folder)
        dirty = True
        detail = f"; {outcomes[0].detail}" if outcomes and outcomes[0].detail else ""
        say(f"run {name}: ran ({why}; key {_short(state.key)}){detail}")
        if outcomes and outcomes[0].reported and warn is not None:
            warn(f"run {name}: {outcomes[0].detail}")
        out[name] = saved
    if dirty:
        manifest.write()
    return out


def figures_stage(project: Project, results: dict[str, SavedResult], *, force: bool = False,
                  explain: Callable[[str], None] | None = None,
                  frozen: bool = False) -> dict[str, dict[str, bytes]]:
    """experiment name -> {file name -> PNG bytes} for the six figures at 1x and 2x.

    Figures are keyed by the arrays' hash, the config, the plotting source and the plotting
    libraries' versions (freeze.figure_inputs). They are looked up in .cache/lora-site/figures/
    <key>/, then in content/_freeze/<name>/figures/ (frozen with the results, so a clean
    checkout builds without matplotlib), and drawn only when neither holds them. A hit reads PNG
    bytes without importing matplotlib or numpy. frozen: a frozen figure whose bytes no longer
    match the manifest is an error naming the file (as for frozen results), not redrawn.
    """
    from . import cache, freeze
    from .errors import ResultsError

    say = explain or (lambda line: None)
    lock = project.root / "requirements.lock"
    manifest = freeze.Manifest.read(project.freeze)
    dirty = False
    out = {}
    for name, saved in results.items():
        inputs = freeze.figure_inputs(saved.config, saved.arrays_sha256, lock=lock)
        key = freeze.digest(inputs)
        frozen_images, stale = freeze.load_frozen_figures(name, inputs, manifest, project.freeze)
        damaged = [r for r in stale if r.startswith(f"{freeze.FIGURES_DIR}/")]
        if frozen and damaged:
            bad, _, what = damaged[0].partition(" ")
            raise ResultsError(f"frozen figure of experiment '{name}' {what}",
                               path=project.freeze / name / bad,
                               hint="rebuild without --frozen, then commit content/_freeze")
        images = None if force else cache.load_figures(project.cache, key)
        if images is not None:
            say(f"figures {name}: reused (inputs unchanged, key {_short(key)})")
        elif frozen_images is not None and not force:
            images = frozen_images
            say(f"figures {name}: reused frozen figures (inputs unchanged, key {_short(key)})")
            cache.store_figures(project.cache, key, images)
        else:
            why = "--force" if force else "; ".join(freeze.changed_inputs(
                cache.last_inputs(project.cache, "figures", name) or
                manifest.experiments.get(name, {}).get("figures", {}).get("inputs"), inputs))
            say(f"figures {name}: drew ({why or 'not in the cache'}; key {_short(key)})")
            if start_draw_pool() is not None:
                # Stored (cache, freeze, manifest) when they arrive; the build goes on meanwhile,
                # keeping one core busy (training the audit, rendering): leave it that.
                from .figures import FIGURE_NAMES

                out[name] = draw_later(
                    saved.path, FIGURE_NAMES, "generator.drawpool:draw_saved_result",
                    files=_figure_files(), fallback=functools.partial(_draw_here, saved),
                    keep=functools.partial(_keep_drawn, project, name, inputs, key,
                                           frozen_images),
                    processes=max(1, start_draw_pool().processes - 1))
                if cache.last_inputs(project.cache, "figures", name) != inputs:
                    cache.remember_inputs(project.cache, "figures", name, inputs)
                continue
            images = draw_figures(saved)
            cache.store_figures(project.cache, key, images)
        if frozen_images != images:
            # Freeze what the site shows, so a checkout builds the same pages without drawing.
            freeze.store_frozen_figures(name, images, project.freeze)
            manifest.record_figures(name, inputs, images)
            dirty = True
        if cache.last_inputs(project.cache, "figures", name) != inputs:
            cache.remember_inputs(project.cache, "figures", name, inputs)
        out[name] = images
    if dirty:
        manifest.write()
    return out


def _draw_here(saved: SavedResult) -> dict[str, bytes]:
    from .figures import render_figures

    return render_figures(saved.config, saved.arrays())


def _figure_files() -> tuple[str, ...]:
    from .figures import FIGURE_NAMES, SCALES, image_filename

    return tuple(image_filename(n, s) for n in FIGURE_NAMES for s in SCALES)


def _keep_drawn(project: Project, name: str, inputs: dict, key: str,
                frozen_images: dict[str, bytes] | None, images: dict[str, bytes]) -> None:
    """Figures that arrived from the worker: into the cache and the freeze, as drawn ones are."""
    from . import cache, freeze

    cache.store_figures(project.cache, key, images)
    if frozen_images != images:
        freeze.store_frozen_figures(name, images, project.freeze)
        manifest = freeze.Manifest.read(project.freeze)
        manifest.record_figures(name, inputs, images)
        manifest.write()


def audit_stage(project: Project, results: dict[str, SavedResult], *, frozen: bool = False,
                force: bool = False, explain: Callable[[str], None] | None = None,
                refreeze: bool = False, warn: Callable[[str], None] | None = None
                ) -> dict[str, Mapping[str, bytes]]:
    """{'audit': {file: PNG bytes}} when a post reads data.audit, else {} (nothing imported).

    The claims audit is reused from content/_freeze/audit while fresh, else recomputed (see
    audit_site.audit_stage); its figures join the experiments' under the name 'audit'.
    """
    return _audit_stage(project, results, frozen=frozen, force=force, explain=explain,
                        refreeze=refreeze, warn=warn)


def reads_audit(project: Project) -> bool:
    """Whether a post lists the claims audit under ``data:`` (reads data.audit)."""
    return any("audit" in (read_post(p).meta.get("data") or []) for p in project.post_files())


def _audit_stage(project: Project, results: dict[str, SavedResult], *, frozen: bool,
                 force: bool, explain: Callable[[str], None] | None, refreeze: bool = False,
                 warn: Callable[[str], None] | None = None
                 ) -> dict[str, Mapping[str, bytes]]:
    if not reads_audit(project):
        return {}
    from .audit_site import SET_NAME, audit_stage as run_audit_stage
    from .errors import ConfigError

    if SET_NAME in results:
        raise ConfigError(f"experiment name '{SET_NAME}' is taken by the claims audit",
                          path=declaring_post(project, SET_NAME), field=f"experiments.{SET_NAME}",
                          hint="rename the experiment")
    return {SET_NAME: run_audit_stage(project, frozen=frozen, force=force, explain=explain,
                                      refreeze=refreeze, warn=warn)}
