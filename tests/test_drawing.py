"""Drawing figures: the one draw-every-scale loop, and the claims audit's figures drawn by the
worker while the build goes on (pipeline.draw_later), stored when they arrive."""
from __future__ import annotations

import io
import json
import shutil

import pytest

from conftest import REPO
from generator import audit_site, pipeline
from generator.audit_figures import FIGURE_NAMES as AUDIT_FIGURES
from generator.figures import DPI_1X, SCALES, SIZE_IN, _pyplot, draw_every_scale, image_filename
from generator.fsio import sha256_bytes
from generator.project import Project


@pytest.fixture(autouse=True)
def no_pool_left():
    yield
    pipeline.close_draw_pool()


def _tight_figure():
    _, plt = _pyplot()
    fig, ax = plt.subplots(figsize=SIZE_IN)
    ax.plot([1, 2, 3], [3.0, 0.1, 2.0], "o-", label=r"$\Vert x_0 \Vert$")
    ax.set_yscale("log")                      # mathtext tick labels, as the audit's figures have
    ax.set_title(r"Scores $QK^\top/\sqrt{d}$")
    ax.legend()
    fig.tight_layout()
    return fig


def test_every_scale_is_drawn_once_with_the_bytes_of_a_plain_savefig(monkeypatch):
    """tight_layout() leaves a placeholder layout engine that makes savefig draw the figure an
    extra time; draw_every_scale drops it, and the PNGs must not change."""
    matplotlib, plt = _pyplot()
    from matplotlib.figure import Figure

    draws: list[int] = []
    real_draw = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, r: draws.append(1) or real_draw(self, r))
    ours = draw_every_scale({"f": _tight_figure}, ("f",))
    assert len(draws) == len(SCALES)
    draws.clear()
    plain = {}
    with matplotlib.rc_context(rc=matplotlib.rcParamsDefault):
        matplotlib.rcParams["svg.hashsalt"] = "lora-site"
        fig = _tight_figure()
        assert fig.get_layout_engine() is not None
        for scale in SCALES:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=DPI_1X * scale, metadata={"Software": None})
            plain[image_filename("f", scale)] = buf.getvalue()
        plt.close(fig)
    assert len(draws) == 2 * len(SCALES)
    assert sorted(ours) == ["f.png", "f@2x.png"] and ours == plain


def test_audit_figures_from_the_worker_arrive_after_the_stage_and_are_then_frozen(
        tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_SITE_DRAW_WORKERS", "2")
    monkeypatch.setattr(audit_site, "BUILD_SEEDS", 2)
    (tmp_path / "content" / "posts").mkdir(parents=True)
    shutil.copy(REPO / "content" / "site.yml", tmp_path / "content" / "site.yml")
    shutil.copy(REPO / "requirements.lock", tmp_path / "requirements.lock")
    project = Project(tmp_path)
    folder = audit_site.audit_dir(project)

    said: list[str] = []
    figs = audit_site.audit_stage(project, explain=said.append)
    # The names at once (enough to render pages); the bytes, and their record, later.
    assert isinstance(figs, pipeline.PendingFigures)
    assert sorted(figs) == sorted(image_filename(n, s) for n in AUDIT_FIGURES for s in SCALES)
    assert said[1].startswith("audit figures: drew (")
    assert not (folder / "figures").exists()
    assert "figures" not in json.loads((folder / "record.json").read_text())

    pipeline.close_draw_pool()                  # collects them, as the end of a build does
    assert pipeline._pending == [] and pipeline._pool is None
    stored = {p.name: p.read_bytes() for p in sorted((folder / "figures").iterdir())}
    assert stored == dict(figs)
    record = json.loads((folder / "record.json").read_text())
    assert record["figures"]["files"] == {n: sha256_bytes(b) for n, b in stored.items()}
    # The worker's bytes are the ones this process draws (each figure depends on its inputs only).
    some = ("audit_held_site", "audit_spectrum")
    here = audit_site.draw_figures(folder, some)
    assert here == {f: stored[f] for f in here} and len(here) == len(some) * len(SCALES)

    said.clear()
    assert audit_site.audit_stage(project, frozen=True, explain=said.append) == stored
    assert said == ["audit: reused", "audit figures: reused"]
