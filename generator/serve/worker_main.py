"""The build worker's end of serve/worker.py's protocol: read ``{"build": N, "changed": [...]}``
lines (changed: the files the build is for, or null), build in one warm context
(serve/warm.py), and answer each with
  ``{"pages": [[path, size], ...]}`` and those bytes (size -1: the file is gone), as soon as
  every page is rendered and only when pages of site/html changed (first for the edited
  posts' pages alone, when an edit to their bodies allows it: publish.early), then
  the build's outcome (serve.warm.Outcome) as one JSON line.

    python -m generator.serve.worker_main --root DIR [--baseurl P] [--frozen] [--drafts] [--debug]
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

from ..core.project import Project


def _answer(out: BinaryIO, doc: dict[str, Any]) -> None:
    out.write((json.dumps(doc) + "\n").encode("utf-8"))
    out.flush()


def _pages(out: BinaryIO, pages: dict[str, bytes | None]) -> None:
    names = sorted(pages)
    header = {"pages": [[n, -1 if pages[n] is None else len(pages[n])] for n in names]}
    out.write((json.dumps(header) + "\n").encode("utf-8"))
    for n in names:
        if pages[n] is not None:
            out.write(pages[n])
    out.flush()


def main(argv: list[str] | None = None) -> int:
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m generator.serve.worker_main")
    parser.add_argument("--root", required=True)
    parser.add_argument("--baseurl", default=None)
    parser.add_argument("--frozen", action="store_true")
    parser.add_argument("--drafts", action="store_true")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)

    from ..core import numerics

    numerics.pin()              # before torch or numpy loads, as in every lora-site process
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)               # whatever else writes to stdout goes to stderr

    def interrupted(signum, frame):
        raise KeyboardInterrupt(signum)
    signal.signal(signal.SIGTERM, interrupted)

    from .warm import WarmBuilder

    builder = WarmBuilder(Project(Path(args.root).resolve()), baseurl=args.baseurl,
                          frozen=args.frozen, drafts=args.drafts, debug=args.debug)
    import gc

    # A build makes many long-lived objects and few cycles (as in cli.run); what the first
    # build leaves (modules, templates, parsed posts) is then kept out of every collection.
    gc.set_threshold(50_000, 20, 20)
    first = True
    try:
        for line in sys.stdin.buffer:
            request = json.loads(line)
            if "build" not in request:
                continue
            outcome = builder.build(on_pages=lambda pages: _pages(answers, pages),
                                    changed=request.get("changed"))
            _answer(answers, outcome.to_json())
            if outcome.ok:
                builder.record()
            if first:
                gc.collect()
                gc.freeze()
                first = False
    except KeyboardInterrupt:
        return 130
    finally:
        # Ending the children must not be cut short by a second signal.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        builder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
