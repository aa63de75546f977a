"""The run and figures stages. Rendering and writing the site live in render.py and site.py.

Stages hand each other plain data on disk (results.json + arrays.npz, PNG bytes), so each one
can be run, cached and tested alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .config import ExperimentConfig
from .content import collect_experiments, read_post
from .project import Project
from .results import SavedResult, load_result, save_result


def declared_experiments(project: Project) -> dict[str, ExperimentConfig]:
    return collect_experiments([read_post(p) for p in project.post_files()])


def run_one(name: str, cfg: ExperimentConfig, out_dir: Path,
            progress_factory: Callable | None = None) -> SavedResult:
    """Train one experiment (imports torch) and save it under out_dir/name."""
    from .experiment import run_experiment  # torch is imported only when something trains

    if progress_factory is None:
        result = run_experiment(cfg)
    else:
        with progress_factory(name, cfg) as progress:
            result = run_experiment(cfg, progress=progress)
    save_result(out_dir / name, name, result)
    return load_result(out_dir / name)


def draw_figures(saved: SavedResult) -> dict[str, bytes]:
    """The six figures (1x and 2x) of one saved result: file name -> PNG bytes."""
    from .figures import render_figures

    return render_figures(saved.config, saved.arrays())


def results_stage(project: Project, *, frozen: bool = False, force: bool = False,
                  progress_factory: Callable | None = None,
                  explain: Callable[[str], None] | None = None) -> dict[str, SavedResult]:
    """Fresh results for every declared experiment, from content/_freeze or by training.

    frozen: never train; use content/_freeze only.  force: train even when results exist.
    explain: called with one line per experiment saying whether it ran or was reused, and why.
    (First version: reuses any saved result whose config equals the declared one.)
    """
    out: dict[str, SavedResult] = {}
    for name, cfg in declared_experiments(project).items():
        folder = project.freeze / name
        saved = None
        if not force and (folder / "results.json").is_file():
            saved = load_result(folder)
            if saved.config != cfg:
                saved = None
        if saved is None:
            if frozen:
                from .errors import ResultsError
                raise ResultsError(f"experiment '{name}' has no up-to-date frozen results",
                                   path=folder, hint="run `lora-site run` and commit content/_freeze")
            saved = run_one(name, cfg, project.freeze, progress_factory)
            if explain:
                explain(f"run {name}: ran")
        elif explain:
            explain(f"run {name}: reused")
        out[name] = saved
    return out


def figures_stage(project: Project, results: dict[str, SavedResult], *, force: bool = False,
                  explain: Callable[[str], None] | None = None) -> dict[str, dict[str, bytes]]:
    """experiment name -> {file name -> PNG bytes} for the six figures at 1x and 2x."""
    out = {}
    for name, saved in results.items():
        out[name] = draw_figures(saved)
        if explain:
            explain(f"figures {name}: drew")
    return out
