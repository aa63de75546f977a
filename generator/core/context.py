"""The build context: the one owner of run-time state.

Everything a build keeps while it runs (the figure workers and the child processes computing
results, the posts parsed so far, the compiled templates, the highlighted code, the file-hash
memo) belongs to one BuildContext, created by the command that builds and passed down. Nothing
lives in module globals, so two contexts never share state, a test gets a fresh one, and the
preview server keeps one warm across rebuilds.

Each layer keeps its own state in a slot: ``ctx.state("workers", Workers)`` creates the
layer's object on first use (calling the factory with the context) and returns the same object
afterwards; ``close()`` ends whatever the slots registered with ``on_close`` (workers first:
the order is reversed), then saves the hash memo.
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
        self._closers: list[Callable[[], None]] = []

    def state(self, name: str, factory: Callable[["BuildContext"], T]) -> T:
        """The state ``name`` of this context, made by ``factory(ctx)`` on first use."""
        if name not in self._slots:
            self._slots[name] = factory(self)
        return self._slots[name]

    def has_state(self, name: str) -> bool:
        return name in self._slots

    def on_close(self, fn: Callable[[], None]) -> None:
        self._closers.append(fn)

    def close(self) -> None:
        """End the workers and children this context started, then save the hash memo."""
        closers, self._closers = self._closers, []
        try:
            for fn in reversed(closers):
                fn()
        finally:
            self._slots.clear()
            self.hashes.save()

    def __enter__(self) -> "BuildContext":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
