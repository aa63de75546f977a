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
