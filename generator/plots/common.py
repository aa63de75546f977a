"""What every figure shares: deterministic PNG bytes at every scale in a light and a dark theme,
type sizes that read on a phone, and the figure registry.

Bytes are deterministic: the Agg backend, matplotlib's default style (not the user's rc) plus our
theme, fixed size and dpi, and no PNG metadata (matplotlib would otherwise stamp its version).
Each figure's bytes depend only on its own inputs, so drawing a subset (as parallel workers do)
gives the same bytes as drawing all.

Every figure is drawn twice, once per theme: <name>.png (light, the 1x file every output links)
and <name>-dark.png (the page's dark colour scheme), each with its @2x twin. A figure's builder
receives the Theme and takes every colour that is not data from it.

A kind's figures are one FigureRegistry: each figure is a function registered with its name
and alt text, so adding a figure is one decorated function in one module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

SIZE_IN = (5.6, 4.6)        # inches; at 100 dpi the 1x image is 560 x 460 pixels
DPI_1X = 100
SCALES = (1, 2)
# On a 375 px phone the 560 px image shows at about 0.6 of its size, so 11 pt ticks (15 px at
# 100 dpi) read as about 9 px there; matplotlib's 10 pt default and the 8 pt labels the figures
# once used read as 6 to 8 px.
TYPE_RC = {"font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12, "xtick.labelsize": 11,
           "ytick.labelsize": 11, "legend.fontsize": 11, "figure.titlesize": 13}


@dataclass(frozen=True)
class Theme:
    """The colours of one theme. bg and fg match the site's stylesheet (templates/assets/
    style.css) so a figure sits on the page like its text; the data colours keep their hue
    across themes and are lighter on dark."""

    name: str                  # "light" or "dark"
    bg: str
    fg: str
    muted: str                 # axes edges, reference lines, secondary text
    faint: str                 # grid lines, "does not apply" cells
    target: str                # the token, cell or series the training aims at
    other: str                 # everything else of the same kind
    accent: str                # a second data colour (the dot-product prediction, ...)
    diverging: str             # colour map for signed values: a light or a dark centre
    series: tuple[str, ...]    # distinct colours for several lines (colour-blind safe)

    @property
    def suffix(self) -> str:
        return "" if self.name == "light" else f"-{self.name}"

    def rc(self) -> dict[str, Any]:
        return {**TYPE_RC,
                "figure.facecolor": self.bg, "axes.facecolor": self.bg,
                "savefig.facecolor": self.bg, "savefig.edgecolor": self.bg,
                "text.color": self.fg, "axes.labelcolor": self.fg, "axes.titlecolor": self.fg,
                "axes.edgecolor": self.muted, "xtick.color": self.muted,
                "ytick.color": self.muted, "xtick.labelcolor": self.fg,
                "ytick.labelcolor": self.fg, "grid.color": self.faint,
                "legend.facecolor": self.bg, "legend.edgecolor": self.faint,
                "legend.labelcolor": self.fg, "patch.edgecolor": self.fg}


# Okabe-Ito colours (distinguishable with any common colour-vision deficiency).
LIGHT = Theme("light", bg="#ffffff", fg="#1b1f24", muted="#57606a", faint="#d0d7de",
              target="#d62728", other="#1f77b4", accent="#e69f00", diverging="RdBu_r",
              series=("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9"))
DARK = Theme("dark", bg="#0f1419", fg="#e6edf3", muted="#9ea7b3", faint="#30363d",
             target="#ff7b72", other="#79b8ff", accent="#f0b429", diverging="berlin",
             series=("#56b4e9", "#ff9e57", "#3ddc97", "#f08fc8", "#f0b429", "#b4d7ff"))
THEMES = (LIGHT, DARK)


def pyplot():
    """(matplotlib, pyplot) on the Agg backend, whatever the environment asks for."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return matplotlib, plt


def image_filename(name: str, scale: int, theme: Theme = LIGHT) -> str:
    return f"{name}{theme.suffix}.png" if scale == 1 else f"{name}{theme.suffix}@{scale}x.png"


def image_files(names) -> tuple[str, ...]:
    """The PNG file names of figures ``names`` at every scale, in every theme."""
    return tuple(image_filename(n, s, t) for n in names for t in THEMES for s in SCALES)


def is_light(filename: str) -> bool:
    """Whether a figure file is the light theme's drawing, at any scale (what a page without
    <picture> links: its image and the image's full-resolution view)."""
    stem = filename.rpartition(".")[0].partition("@")[0]
    return not any(stem.endswith(t.suffix) for t in THEMES if t.suffix)


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


def draw_every_scale(builders: Mapping[str, Callable[[Theme], object]],
                     names: tuple[str, ...]) -> dict[str, bytes]:
    """Figures ``names`` drawn by ``builders`` (name -> function of the Theme returning a
    Figure) in every theme at every scale: file name -> PNG bytes."""
    matplotlib, _ = pyplot()
    out: dict[str, bytes] = {}
    for theme in THEMES:
        # The default style, whatever the user's matplotlibrc says, so every machine draws the
        # same; then the theme's colours and type sizes.
        with matplotlib.rc_context(rc=matplotlib.rcParamsDefault):
            matplotlib.rcParams["svg.hashsalt"] = "lora-site"
            matplotlib.rcParams.update(theme.rc())
            for name in names:
                # One figure, saved at every scale: building it (and its tight layout) is half
                # the cost of drawing, and the layout is in inches, so the scales agree pixel
                # for pixel.
                fig = builders[name](theme)
                # tight_layout() leaves a placeholder layout engine, and with any engine set
                # savefig first draws the whole figure without output "to run the layout", for
                # nothing, as the layout is done. Without it the bytes are the same.
                fig.set_layout_engine(None)
                for i, scale in enumerate(SCALES):
                    out[image_filename(name, scale, theme)] = png_bytes(
                        fig, DPI_1X * scale, close=i == len(SCALES) - 1)
    return out


def outline_cell(ax, col: float, row: float) -> None:
    """A double outline (black outside, white inside) around one heat-map cell, which stays
    visible on any colour of any map."""
    from matplotlib.patches import Rectangle

    for color, width in (("black", 4.0), ("white", 1.6)):
        ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor=color,
                               linewidth=width, joinstyle="miter"))


@dataclass(frozen=True)
class FigureSpec:
    name: str
    alt: Callable[[Any], str]               # settings -> alt text
    build: Callable[[Any, Any, Theme], object]   # (settings, prepared data, theme) -> Figure


class FigureRegistry:
    """A kind's figures, in the order they were registered.

    ``prepare(settings, data)`` turns what a result holds into what the builders share (for
    instance one colour scale for a before/after pair); it runs once per drawing job."""

    def __init__(self, prepare: Callable[[Any, Any], Any] | None = None) -> None:
        self._specs: dict[str, FigureSpec] = {}
        self._prepare = prepare or (lambda settings, data: data)

    def register(self, name: str, *, alt: str | Callable[[Any], str]):
        """Decorator: ``@FIGURES.register("before_lora", alt="...")`` on ``build(settings,
        prepared, theme) -> Figure``. alt may depend on the settings (which projection is
        adapted)."""
        def deco(build: Callable[[Any, Any, Theme], object]):
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
        """The figures ``names`` (default: all) in every theme at every scale: file name -> PNG
        bytes."""
        names = self.names() if names is None else tuple(names)
        unknown = [n for n in names if n not in self._specs]
        if unknown:
            raise KeyError(f"no figure named {unknown[0]!r}")
        prepared = self._prepare(settings, data)
        return draw_every_scale(
            {n: (lambda theme, n=n: self._specs[n].build(settings, prepared, theme))
             for n in names}, names)
