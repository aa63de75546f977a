"""The warm build: one build context kept across the preview's rebuilds.

The context holds what a rebuild would otherwise redo: the imported libraries and kinds, the
parsed posts (re-parsed only when their bytes change), the compiled body and page templates,
the Markdown converter and its highlighted code, the hashes of unchanged files, and the figure
worker between builds. What one build reads once (the freeze manifest, the kinds site.yml
names, the post cache's count) is renewed by the context when the next build starts
(core.context), so a warm rebuild writes exactly the bytes a cold `lora-site build` writes.

Only the build's own code cannot be taken in by a warm process: an edit to it restarts the
process this runs in (serve/worker.py).
"""
from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..core.context import BuildContext
from ..core.errors import LoraSiteError, one_line
from ..core.project import Project

HTML = "html/"                  # the output the preview serves, as its paths in a build start


@dataclass
class Outcome:
    """One build, as the server needs it."""

    ok: bool
    error: str | None = None                     # the one-line message of a failed build
    changed: bool = False                        # site/ now differs from before the build
    log: list[str] = field(default_factory=list)     # what ran, and why (--explain's lines)
    seconds: float = 0.0
    code: list[str] = field(default_factory=list)    # source files of kinds outside the package

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": self.error, "changed": self.changed, "log": self.log,
                "seconds": self.seconds, "code": self.code}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "Outcome":
        return cls(ok=bool(doc["ok"]), error=doc.get("error"), changed=bool(doc["changed"]),
                   log=list(doc.get("log", [])), seconds=float(doc.get("seconds", 0.0)),
                   code=list(doc.get("code", [])))


class WarmBuilder:
    """Builds the project again and again in one context. ``debug``: a failure that is not
    the input's fault prints its traceback to stderr."""

    def __init__(self, project: Project, *, baseurl: str | None = None, frozen: bool = False,
                 drafts: bool = False, debug: bool = False) -> None:
        self.project = project
        self.baseurl, self.frozen, self.drafts, self.debug = baseurl, frozen, drafts, debug
        self.ctx = BuildContext(project)
        self._last: dict[str, bytes] | None = None      # what the last good build wrote
        self._stages: list[str] = []
        self._built_at: int | None = None               # when the last good build began
        self._inputs = None                             # what its pages were rendered from

    def build(self, on_pages: Callable[[dict[str, bytes | None]], None] | None = None,
              changed: Iterable[str] | None = None) -> Outcome:
        """One build. on_pages: told, as soon as every page is rendered and before site/ is
        written, which files of site/html changed since the last good build (path below
        site/html -> bytes, None for a file that is gone); not told on the first build.
        changed: the files whose change this build is for, when known. When they are post
        bodies only, the pages of those posts are rendered and told first (publish.early),
        before the rest of the build; on_pages is then told again only if the full build's
        pages differ from what it was told."""
        from ..publish.build import build
        from ..stages.run import StageOptions

        log: list[str] = []
        self._stages = []
        self._built_at = None
        began = time.time_ns()

        def explain(line: str) -> None:
            self._stages.append(line.split(":", 1)[0])
            log.append(line)

        opts = StageOptions(frozen=self.frozen, explain=explain,
                            warn=lambda line: log.append(f"warning: {line}"))
        extra = {"drafts": self.drafts}
        last = self._last
        started = time.perf_counter()
        if on_pages is not None and changed is not None:
            early = self._early(changed)
            if early:
                pages = {rel[len(HTML):]: data for rel, data in early.items()
                         if rel.startswith(HTML) and last.get(rel) != data}
                log.append(f"early: {', '.join(sorted(pages)) or 'nothing new'} told after "
                           f"{(time.perf_counter() - started) * 1000:.0f} ms, before the "
                           "full build")
                if pages:
                    on_pages(pages)
                    last = {**last, **early}        # what the pages have been told

        def rendered(files: Mapping[str, bytes]) -> None:
            if on_pages is None or last is None:
                return
            pages = {rel[len(HTML):]: data for rel, data in files.items()
                     if rel.startswith(HTML) and last.get(rel) != data}
            pages.update({rel[len(HTML):]: None for rel in last
                          if rel.startswith(HTML) and rel not in files})
            if pages:
                on_pages(pages)

        # Until this build succeeds, what the last one rendered with may no longer be what the
        # sources say (this build's other changes, a setting, a result): no early page.
        self._inputs = None
        try:
            report = build(self.ctx, baseurl=self.baseurl, opts=opts, on_rendered=rendered,
                           **extra)
        except LoraSiteError as exc:
            return Outcome(False, exc.format_message(), log=log,
                           seconds=time.perf_counter() - started, code=self.code_files())
        except Exception as exc:                    # a bug: one line here, the rest on stderr
            if self.debug:
                traceback.print_exc(file=sys.stderr)
            return Outcome(False, one_line(f"unexpected error: {type(exc).__name__}: {exc}"
                                           " (run `lora-site --debug serve` for the "
                                           "traceback)"), log=log,
                           seconds=time.perf_counter() - started, code=self.code_files())
        seconds = time.perf_counter() - started
        written = dict(report.contents or {})
        differs = written != self._last
        self._last = written
        self._inputs = report.inputs
        self._built_at = began
        return Outcome(True, changed=differs, log=log, seconds=seconds, code=self.code_files())

    def _early(self, changed: Iterable[str]) -> dict[str, bytes] | None:
        """The early pages of publish.early for these changes, or None (also for a bug in it:
        the full build that follows is the judge, and meets it too)."""
        from ..publish.early import early_pages

        if self._inputs is None or self._last is None:
            return None
        try:
            return early_pages(self.ctx, self._inputs, self._last, changed)
        except Exception:
            if self.debug:
                traceback.print_exc(file=sys.stderr)
            return None

    def record(self) -> None:
        """Remember the last good build as `lora-site build` does (publish.fingerprint), so a
        build after the preview has nothing to do; called once the page has been told, so it
        costs the reader nothing. An input changed since the build began may not be in it:
        then nothing is recorded (the next build will be)."""
        from ..publish.fingerprint import (BuildFingerprint, build_options,
                                           sources_changed_since)

        if self._built_at is not None and not sources_changed_since(self.project,
                                                                    self._built_at):
            BuildFingerprint(self.ctx, self.project.site,
                             build_options(frozen=self.frozen, baseurl=self.baseurl,
                                           drafts=self.drafts)).record(self._stages)
        self._built_at = None
        self.ctx.hashes.save()

    def code_files(self) -> list[str]:
        """The source files of the kind modules site.yml names from outside the package."""
        if not self.ctx.has_state("kinds"):
            return []
        from ..authoring.posts import kinds_of

        out = []
        for module in kinds_of(self.ctx).extra_modules:
            path = getattr(sys.modules.get(module), "__file__", None)
            if path:
                out.append(str(Path(path).resolve()))
        return sorted(out)

    def close(self) -> None:
        self.ctx.close()
