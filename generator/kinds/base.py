"""What an experiment kind declares, and the registry of kinds.

A kind is everything the stages need to know about one sort of experiment, declared as data
and a few functions (as doit declares tasks): how its settings are read from front matter,
which source and libraries key its results, how it computes (torch imported lazily, nothing
written: it returns its files' bytes), its figures, how a re-run is compared with a frozen
result, and what a post body sees. Caching, the freeze, ``--frozen``, ``--explain``,
``verify``, figure markup and the output trees iterate over kinds with no special case.

A new kind is one module in this package that sets ``KIND = YourKind()`` (or a module named in
site.yml's ``kinds:`` list, for a project's own kinds); the registry finds it.

One experiment may read another's result (the steering experiment reads the trained model):
its kind declares ``needs(settings)``, the experiments it reads, each named by one of its
settings. The posts' experiments are then resolved into a graph (authoring.posts); the stages
settle what is needed first, key the reader's result by the hashes of the needed result files,
and hand the loaded results to ``compute(..., upstream=...)``. Nothing else changes: a change
to the reader's settings never recomputes what it reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..core.errors import ConfigError

if TYPE_CHECKING:
    from ..core.compare import Comparison

# progress(done, total, note): the CLI draws it; a kind calls it as work advances.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Need:
    """An experiment whose result another one reads."""

    field: str          # the setting that names it (an error points there)
    name: str           # the experiment's name
    kind: str           # the kind it must be


class Kind:
    """Base class of experiment kinds. Class attributes declare; methods compute."""

    name: str = ""                          # what front matter's `kind:` names
    description: str = ""                   # one line for `lora-site list`
    result_files: tuple[str, ...] = ()      # the files of one result, in write order
    figure_input_files: tuple[str, ...] = ()   # the result files the figures are drawn from
    run_roots: tuple[str, ...] = ()         # modules (as 'science.experiment') whose imports key
    run_libraries: tuple[str, ...] = ()     # ...the results, with these libraries' versions
    figure_roots: tuple[str, ...] = ()
    figure_libraries: tuple[str, ...] = ()
    heavy: bool = False                     # worth a process of its own when cores allow
    data_name: str | None = None            # `data: [<name>]` declares this kind by default
    example_listing: tuple[str, str] | None = None   # what `lora-site new` shows of its code

    @property
    def module(self) -> str:
        """The module that defines this kind (a worker process imports it to draw)."""
        return type(self).__module__

    # ---- settings
    def defaults(self) -> Any:
        return self.parse({})

    def parse(self, mapping: Mapping[str, Any] | None, *, source: object | None = None,
              prefix: str = "") -> Any:
        """Settings from front matter; a bad value is a ConfigError naming source and field."""
        raise NotImplementedError

    def settings_dict(self, settings: Any) -> dict[str, Any]:
        return settings.to_dict()

    def needs(self, settings: Any) -> tuple[Need, ...]:
        """The experiments whose results this one reads (none by default)."""
        return ()

    # ---- results
    def compute(self, name: str, settings: Any,
                progress: Progress | None = None) -> dict[str, bytes]:
        """The result files' bytes (file name -> bytes) of experiment ``name``. Pure: reads
        and writes nothing (the stages write). A kind with ``needs`` takes a fourth argument,
        ``upstream``: experiment name -> its loaded result (what ``load`` returns)."""
        raise NotImplementedError

    def load(self, folder: Path, name: str) -> Any:
        """The result saved in ``folder``, as the figures and the body read it. Must not
        import torch; a damaged result is a ResultsError naming the file."""
        raise NotImplementedError

    def check(self, loaded: Any) -> None:
        """Read everything the result holds (its arrays too): a damaged file is a ResultsError
        naming it."""

    def settings_of(self, loaded: Any) -> Any:
        """The settings a loaded result was computed with (None: not recorded)."""
        return None

    def compare(self, files: dict[str, bytes], folder: Path, atol: float,
                rtol: float) -> Comparison | None:
        """Fresh files against the result frozen in ``folder``; None when they cannot be
        compared (missing, damaged, other settings)."""
        raise NotImplementedError

    def exact(self, files: dict[str, bytes], folder: Path) -> bool:
        """Whether every number of the fresh files equals the frozen one bit for bit (their
        provenance may differ)."""
        raise NotImplementedError

    def summary(self, name: str, loaded: Any) -> str:
        """One line after `lora-site run`."""
        return f"{name}: computed"

    def outcome(self, settings: Any, files: dict[str, bytes]) -> str | None:
        """How the computation that made ``files`` ended, for the last line of its progress
        display ("target reached at step 37"); None: nothing to say."""
        return None

    # ---- figures
    def figures(self, settings: Any) -> dict[str, str]:
        """Figure name -> alt text, in order (the alt text may follow the settings)."""
        return {}

    def draw(self, folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
        """The figures ``names`` of the result in ``folder`` at every scale (matplotlib)."""
        raise NotImplementedError

    # ---- what a post body sees
    def view(self, name: str, loaded: Any) -> Any:
        """The body variable ``<name>`` (main.metrics.steps, ...)."""
        return loaded

    def data(self, loaded: Any) -> Any:
        """``data.<name>`` for a post that lists the experiment under ``data:``."""
        return self.view("", loaded)

    def listing(self, loaded: Any) -> dict[str, list[str]]:
        """What `lora-site list` shows: section -> names (metrics, figures, ...)."""
        return {}

    # ---- what readers can download
    def downloads(self, settings: Any) -> tuple[str, ...]:
        """The files published with the site under assets/data/<experiment>/, which every
        figure of the experiment links to: by default the result files, as stored."""
        return self.result_files

    def explorers(self, settings: Any) -> dict[str, str]:
        """Figure name -> the data file (one of download_bytes') its interactive version reads
        (``figure(name, explore=True)``; assets/figures.js draws it)."""
        return {}

    def download_bytes(self, folder: Path, loaded: Any) -> dict[str, bytes]:
        """The bytes of each of ``downloads``: file name -> bytes (the result files are
        read from ``folder``; a kind derives any other file from ``loaded``)."""
        return {f: (Path(folder) / f).read_bytes() for f in self.result_files}

    def listings(self) -> dict[str, list[str]]:
        """What ``{{ listing(module, name) }}`` can show of this kind's computation: module
        (dotted, inside the package) -> its top-level classes and functions, for the modules
        its results are computed with (run_roots and what they import), the package's core
        and __init__ modules left out."""
        import ast

        from ..core.keys import module_closure, package_dir

        out: dict[str, list[str]] = {}
        for rel in module_closure(self.run_roots):
            parts = rel.split("/")[1:]                  # 'generator/science/lora.py'
            if parts[0] == "core" or parts[-1] == "__init__.py":
                continue
            tree = ast.parse((package_dir().joinpath(*parts)).read_text(encoding="utf-8"))
            names = [node.name for node in tree.body if isinstance(
                node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
            if names:
                out[".".join(parts)[:-3]] = names
        return out


@dataclass(frozen=True)
class Declared:
    """One experiment a post declares: its name, kind and settings, the post (for errors),
    and, once the posts' experiments are resolved, those it reads (Kind.needs), in the
    order of its needs."""

    name: str
    kind: Kind
    settings: Any
    source: Path | None = None
    upstream: tuple["Declared", ...] = ()

    def key(self) -> tuple:
        return (self.kind.name, repr(self.settings))


DEFAULT_KIND = "lora"
BASE_MODULES = ("base", "json_npz", "lora_results")
# A project's own kind module carries the hash of its source as it was imported: its results
# are keyed by the code that computed them, even when the file is edited while a warm process
# (lora-site serve) still runs the version it imported.
SOURCE_HASH = "__lora_site_source_sha256__"


def _remember_source(module) -> None:
    import hashlib

    path = getattr(module, "__file__", None)
    if path and SOURCE_HASH not in vars(module):
        try:
            with open(path, "rb") as fh:
                setattr(module, SOURCE_HASH, hashlib.sha256(fh.read()).hexdigest())
        except OSError:
            pass


class Kinds:
    """The registry: the kinds of this package, and those of modules named in site.yml."""

    def __init__(self, extra_modules: tuple[str, ...] = ()) -> None:
        import importlib
        import os

        self._kinds: dict[str, Kind] = {}
        self.extra_modules = tuple(extra_modules)
        self.read_from: object = None           # what its owner read extra_modules from
        here = os.path.dirname(os.path.abspath(__file__))
        modules = [f"{__package__}.{f[:-3]}" for f in sorted(os.listdir(here))
                   if f.endswith(".py") and f[:-3] not in BASE_MODULES and not f.startswith("_")]
        for module in (*modules, *extra_modules):
            try:
                imported = importlib.import_module(module)
                if module in extra_modules:
                    _remember_source(imported)
                kind = getattr(imported, "KIND", None)
            except ImportError as exc:
                raise ConfigError(f"cannot import the kind module {module!r}: {exc}",
                                  field="kinds", hint="check the module name in site.yml "
                                  "and that it is importable") from None
            except Exception as exc:        # noqa: BLE001 (a project's own module failing)
                if module not in extra_modules:
                    raise                   # one of ours: a bug, reported as such
                where = ""
                if isinstance(exc, SyntaxError) and exc.filename:
                    where = f" ({exc.filename}:{exc.lineno})"
                raise ConfigError(f"the kind module {module!r} fails when imported: "
                                  f"{type(exc).__name__}: {exc}{where}", field="kinds",
                                  hint="fix that module, or remove it from kinds: in site.yml"
                                  ) from None
            if isinstance(kind, Kind):
                self.register(kind)
            elif module in extra_modules:
                raise ConfigError(f"module {module!r} defines no KIND", field="kinds",
                                  hint="set KIND = YourKind() in it (see generator/kinds/"
                                       "base.py)")

    def register(self, kind: Kind) -> Kind:
        if not kind.name:
            raise ValueError(f"{type(kind).__name__} has no name")
        if kind.name in self._kinds and self._kinds[kind.name] is not kind:
            raise ConfigError(f"two experiment kinds are named {kind.name!r}", field="kinds")
        self._kinds[kind.name] = kind
        return kind

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def __iter__(self):
        return iter(self._kinds[n] for n in self.names())

    def get(self, name: str, *, source: object | None = None, field: str | None = None) -> Kind:
        if name not in self._kinds:
            raise ConfigError(f"no experiment kind named {name!r}", path=source, field=field,
                              hint=f"known kinds: {', '.join(self.names())}")
        return self._kinds[name]

    def for_data(self, name: str) -> Kind | None:
        """The kind a `data: [name]` entry declares when no experiment has that name."""
        return next((k for k in self if k.data_name == name), None)
