"""The build context: the one owner of run-time state.

Everything a build keeps while it runs (the figure workers and the child processes computing
results, the posts parsed so far, the compiled templates, the highlighted code, the file-hash
memo) belongs to one BuildContext, created by the command that builds and passed down. Nothing
lives in module globals, so two contexts never share state, a test gets a fresh one, and the
preview server's build worker keeps one warm across rebuilds.

Each layer keeps its own state in a slot: ``ctx.state("workers", Workers)`` creates the
layer's object on first use (calling the factory with the context) and returns the same object
afterwards; ``close()`` ends whatever the slots registered with ``on_close`` (workers first:
the order is reversed), then saves the hash memo.

A context may run several builds (the warm preview does). What a slot reads once per build
(the freeze manifest, the registry of kinds named in site.yml) would then be stale: such a slot
says so with ``renew`` and is made anew when the next build starts (``new_build``, which
``publish.build.build`` calls first thing); a slot that only needs trimming between builds
registers a hook with ``on_new_build``. A first build finds nothing to renew, so a command that
builds once behaves exactly as before.
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from .filehash import HashMemo
from .project import Project

T = TypeVar("T")


class BuildContext:
    def __init__(self, project: Project, *, remember_hashes: bool = True) -> None:
        self.project = project
        self.hashes = HashMemo(project.cache / "hashes.json" if remember_hashes else None)
        self._slots: dict[str, Any] = {}
        self._renew: dict[str, Callable[[Any], bool]] = {}
        self._closers: list[Callable[[], None]] = []
        self._build_hooks: list[Callable[[], None]] = []
        self.builds = 0                 # builds started in this context

    def state(self, name: str, factory: Callable[["BuildContext"], T], *,
              renew: bool | Callable[[T], bool] = False) -> T:
        """The state ``name`` of this context, made by ``factory(ctx)`` on first use.

        renew: True for state that holds one build's reading (made anew for every build), or
        a function of the state saying whether it is out of date when a new build starts (it
        may raise: then the state is made anew and the build meets the error itself)."""
        if name not in self._slots:
            self._slots[name] = factory(self)
            if renew:
                self._renew[name] = (lambda value: True) if renew is True else renew
        return self._slots[name]

    def has_state(self, name: str) -> bool:
        return name in self._slots

    def drop(self, name: str) -> None:
        """Forget the state ``name``: the next ``state(name, ...)`` makes it anew."""
        self._slots.pop(name, None)
        self._renew.pop(name, None)

    def on_close(self, fn: Callable[[], None]) -> None:
        self._closers.append(fn)

    def on_new_build(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` whenever a later build starts in this context (to trim what the
        previous build left)."""
        self._build_hooks.append(fn)

    def new_build(self) -> None:
        """A build starts: renew the slots that are out of date (none before the first)."""
        self.builds += 1
        if self.builds == 1:
            return
        for name, stale in list(self._renew.items()):
            try:
                out_of_date = stale(self._slots[name])
            except Exception:
                out_of_date = True
            if out_of_date:
                self.drop(name)
        for fn in list(self._build_hooks):
            fn()

    def close(self) -> None:
        """End the workers and children this context started, then save the hash memo."""
        closers, self._closers = self._closers, []
        try:
            for fn in reversed(closers):
                fn()
        finally:
            self._slots.clear()
            self._renew.clear()
            self._build_hooks.clear()
            self.hashes.save()

    def __enter__(self) -> "BuildContext":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
