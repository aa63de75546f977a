"""What every figure shares: deterministic PNG bytes at every scale, and the figure registry.

Bytes are deterministic: the Agg backend, matplotlib's default style (not the user's rc), fixed
size and dpi, and no PNG metadata (matplotlib would otherwise stamp its version). Each figure's
bytes depend only on its own inputs, so drawing a subset (as parallel workers do) gives the same
bytes as drawing all.

A kind's figures are one FigureRegistry: each figure is a function registered with its name
and alt text, so adding a figure is one decorated function in one module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

SIZE_IN = (5.6, 4.6)        # inches; at 100 dpi the 1x image is 560 x 460 pixels
DPI_1X = 100
SCALES = (1, 2)


def pyplot():
    """(matplotlib, pyplot) on the Agg backend, whatever the environment asks for."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return matplotlib, plt


def image_filename(name: str, scale: int) -> str:
    return f"{name}.png" if scale == 1 else f"{name}@{scale}x.png"


def image_files(names) -> tuple[str, ...]:
    """The PNG file names of figures ``names`` at every scale."""
    return tuple(image_filename(n, s) for n in names for s in SCALES)


def image_size(scale: int = 1) -> tuple[int, int]:
    """Pixel width and height of a figure at the given scale."""
    return round(SIZE_IN[0] * DPI_1X * scale), round(SIZE_IN[1] * DPI_1X * scale)


def png_bytes(fig, dpi: int, *, close: bool = True) -> bytes:
    import io
    _, plt = pyplot()
    buf = io.BytesIO()
    # metadata None drops the 'Software' text chunk; no other chunk carries time or version.
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    if close:
        plt.close(fig)
    return buf.getvalue()


def draw_every_scale(builders: Mapping[str, Callable[[], object]],
                     names: tuple[str, ...]) -> dict[str, bytes]:
    """Figures ``names`` drawn by ``builders`` (name -> function returning a Figure) at every
    scale: file name -> PNG bytes."""
    matplotlib, _ = pyplot()
    out: dict[str, bytes] = {}
    # The default style, whatever the user's matplotlibrc says, so every machine draws the same.
    with matplotlib.rc_context(rc=matplotlib.rcParamsDefault):
        matplotlib.rcParams["svg.hashsalt"] = "lora-site"
        for name in names:
            # One figure, saved at every scale: building it (and its tight layout) is half the
            # cost of drawing, and the layout is in inches, so the scales agree pixel for pixel.
            fig = builders[name]()
            # tight_layout() leaves a placeholder layout engine, and with any engine set savefig
            # first draws the whole figure without output "to run the layout", for nothing, as
            # the layout is done. Without it the bytes are the same.
            fig.set_layout_engine(None)
            for i, scale in enumerate(SCALES):
                out[image_filename(name, scale)] = png_bytes(fig, DPI_1X * scale,
                                                             close=i == len(SCALES) - 1)
    return out


@dataclass(frozen=True)
class FigureSpec:
    name: str
    alt: Callable[[Any], str]               # settings -> alt text
    build: Callable[[Any, Any], object]     # (settings, prepared data) -> matplotlib Figure


class FigureRegistry:
    """A kind's figures, in the order they were registered.

    ``prepare(settings, data)`` turns what a result holds into what the builders share (for
    instance one colour scale for a before/after pair); it runs once per drawing job."""

    def __init__(self, prepare: Callable[[Any, Any], Any] | None = None) -> None:
        self._specs: dict[str, FigureSpec] = {}
        self._prepare = prepare or (lambda settings, data: data)

    def register(self, name: str, *, alt: str | Callable[[Any], str]):
        """Decorator: ``@FIGURES.register("before_lora", alt="...")`` on ``build(settings,
        prepared) -> Figure``. alt may depend on the settings (which projection is adapted)."""
        def deco(build: Callable[[Any, Any], object]):
            if name in self._specs:
                raise ValueError(f"figure {name!r} registered twice")
            self._specs[name] = FigureSpec(name, alt if callable(alt) else (lambda s, a=alt: a),
                                           build)
            return build
        return deco

    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def alt_texts(self, settings: Any) -> dict[str, str]:
        return {name: spec.alt(settings) for name, spec in self._specs.items()}

    def draw(self, settings: Any, data: Any, names: tuple[str, ...] | None = None
             ) -> dict[str, bytes]:
        """The figures ``names`` (default: all) at every scale: file name -> PNG bytes."""
        names = self.names() if names is None else tuple(names)
        unknown = [n for n in names if n not in self._specs]
        if unknown:
            raise KeyError(f"no figure named {unknown[0]!r}")
        prepared = self._prepare(settings, data)
        return draw_every_scale({n: (lambda n=n: self._specs[n].build(settings, prepared))
                                 for n in names}, names)
