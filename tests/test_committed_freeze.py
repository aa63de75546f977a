"""The freeze committed with the content must match the code: publishing builds from it alone.

If this fails, an edit changed an input of an experiment (its settings, the engine's source, a
library version) without refreshing content/_freeze: run `make site` and commit content/_freeze.
"""
from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import REPO


def test_repository_freeze_is_fresh_and_builds_without_torch(tmp_path):
    for part in ("content", "templates"):
        shutil.copytree(REPO / part, tmp_path / part)
    code = ("import sys\nfrom generator.cli import main\n"
            f"sys.argv = ['lora-site', 'build', '--frozen', '--quiet', '--root', {str(tmp_path)!r}]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "assert 'torch' not in sys.modules, 'a frozen build imported torch'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    posts = sorted(p.name for p in (tmp_path / "site" / "jekyll" / "_posts").iterdir())
    assert posts == ["2026-01-11-lora-attention-geometry.md",
                     "2026-01-12-lora-attention-claims-audit.md",
                     "2026-01-13-lora-on-a-trained-transformer.md"]
