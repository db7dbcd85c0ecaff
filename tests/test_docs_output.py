"""The example output in the docs is real: scripts/gen_docs.py --check reruns every
`<!-- gen: ... -->` block and fails when a block's exit code or (masked) output changed.

Regenerate with `.venv/bin/python scripts/gen_docs.py` after changing what the CLI prints.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_docs_output_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_docs.py"), "--check"],
        cwd=REPO, capture_output=True, text=True, timeout=240,  # every doc file, docs/security.md too
    )
    assert proc.returncode == 0, (
        "docs are stale; run `.venv/bin/python scripts/gen_docs.py` and review the diff\n" + proc.stderr
    )
