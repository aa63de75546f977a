"""Drawing figures: the one draw-every-scale loop, and the claims audit's figures drawn by the
worker while the build goes on (stages.workers.Workers.draw_later), stored when they arrive."""
from __future__ import annotations

import io
import json
import shutil


from conftest import REPO, write_post
from generator.core.fsio import sha256_bytes
from generator.plots.audit_figures import FIGURE_NAMES as AUDIT_FIGURES
from generator.plots.common import DPI_1X, SCALES, SIZE_IN, draw_every_scale, image_filename
from generator.plots.common import pyplot as _pyplot
from generator.stages import run
from generator.stages.run import StageOptions
from generator.stages.workers import PendingFigures
from helpers import context, declared


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
    write_post(tmp_path, experiments="  audit: {kind: audit, seeds: 2}\n")
    shutil.copy(REPO / "content" / "site.yml", tmp_path / "content" / "site.yml")
    shutil.copy(REPO / "requirements.lock", tmp_path / "requirements.lock")
    said: list[str] = []
    opts = StageOptions(explain=said.append)
    with context(tmp_path) as ctx:
        d = declared(ctx)["audit"]
        store, workers = run.store_of(ctx), run.workers_of(ctx)
        folder = store.folder("audit")
        figs = run.figures_of(ctx, d, run.result_of(ctx, d, opts), opts)
        store.save()
        # The names at once (enough to render pages); the bytes, and their record, later.
        assert isinstance(figs, PendingFigures)
        assert sorted(figs) == sorted(image_filename(n, s) for n in AUDIT_FIGURES for s in SCALES)
        assert said[1].startswith("figures audit: drew (")
        assert not (folder / "figures").exists()
        manifest = json.loads((tmp_path / "content" / "_freeze" / "manifest.json").read_text())
        assert "figures" not in manifest["experiments"]["audit"]

        workers.finish_drawing()                # collects them, as the end of a build does
        assert workers.pending == [] and workers.pool is None
        # Staged as they arrive, committed by the next save (a build: with site/).
        assert not (folder / "figures").exists()
        store.save()
        stored = {p.name: p.read_bytes() for p in sorted((folder / "figures").iterdir())}
        assert stored == dict(figs)
        manifest = json.loads((tmp_path / "content" / "_freeze" / "manifest.json").read_text())
        assert manifest["experiments"]["audit"]["figures"]["files"] == {
            n: sha256_bytes(b) for n, b in stored.items()}
        # The worker's bytes are the ones this process draws (each figure depends on its
        # inputs only).
        some = ("audit_held_site", "audit_spectrum")
        here = d.kind.draw(folder, some)
        assert here == {f: stored[f] for f in here} and len(here) == len(some) * len(SCALES)

    said.clear()
    with context(tmp_path) as ctx:
        d = declared(ctx)["audit"]
        frozen = StageOptions(frozen=True, explain=said.append)
        assert run.figures_of(ctx, d, run.result_of(ctx, d, frozen), frozen) == stored
    assert said[0].startswith("run audit: reused frozen results")
    assert said[1].startswith("figures audit: reused")
