"""Every complete workflow shown in docs/workflows.md validates (fragments are skipped, and
so are generated blocks: they show a deliberately broken file and its diagnostics)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from kestra_trio.model.loading import load_workflow_text

DOC = Path(__file__).parents[2] / "docs" / "workflows.md"
BLOCKS = re.findall(r"(?<!-->\n)```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def workflows() -> list[str]:
    found = []
    for block in BLOCKS:
        try:
            data = yaml.safe_load(block)
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and "tasks" in data:
            found.append(block if "id" in data else "id: doc\n" + block)
    return found


def test_the_docs_show_workflows() -> None:
    assert len(workflows()) >= 2


@pytest.mark.parametrize("text", workflows(), ids=lambda text: text.splitlines()[1][:40])
def test_a_workflow_in_the_docs_validates(text: str) -> None:
    load_workflow_text(text, "docs/workflows.md")
