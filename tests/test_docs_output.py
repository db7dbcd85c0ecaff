"""The example output in the docs is real: scripts/gen_docs.py --check reruns a file's
`<!-- gen: ... -->` blocks and fails when a block's exit code or (masked) output changed.

One test per documentation file, so a failure names the file. What the key flows must do is
tested on its own in tests/e2e (test_documented_flows.py and the others): this test only keeps
the examples current. Regenerate with `.venv/bin/python scripts/gen_docs.py` after changing
what the CLI prints.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GENERATED = sorted(
    path.relative_to(REPO) for path in [REPO / "README.md", *(REPO / "docs").glob("*.md")]
    if re.search(r"<!-- gen(-setup|-bg)?: ", path.read_text(encoding="utf-8"))
)


def test_the_generated_files_are_found() -> None:
    assert {"README.md", "docs/cli.md", "docs/storage.md", "docs/workflows.md"} <= {str(p) for p in GENERATED}


@pytest.mark.slow
@pytest.mark.parametrize("doc", GENERATED, ids=[str(p) for p in GENERATED])
def test_docs_output_is_current(doc: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_docs.py"), str(doc), "--check"],
        cwd=REPO, capture_output=True, text=True, timeout=600,  # cli.md runs ~100 commands; a loaded machine is slow
    )
    assert proc.returncode == 0, (
        f"{doc} is stale; run `.venv/bin/python scripts/gen_docs.py {doc}` and review the diff\n" + proc.stderr
    )
