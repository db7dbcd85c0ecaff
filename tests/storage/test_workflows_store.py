"""WorkflowStore: revisions numbered per workflow, an unchanged apply stores nothing, history grows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kestra_trio.storage.db import open_database
from kestra_trio.storage.workflows import WorkflowSource, WorkflowStore, source_hash


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[WorkflowStore]:
    async with open_database(tmp_path / "k.db") as database:
        yield WorkflowStore(database)


def source(text: str, workflow_id: str = "hello", namespace: str = "team") -> WorkflowSource:
    return WorkflowSource(workflow_id, namespace, text, f"/flows/{workflow_id}.yaml", text.count("- id:"))


async def test_revisions_count_changes_only(store: WorkflowStore) -> None:
    v1, v2 = "id: hello\ntasks:\n- id: a\n", "id: hello\ntasks:\n- id: a\n- id: b\n"
    [first] = await store.apply([source(v1)])
    assert (first.revision, first.created, first.previous) == (1, True, None)
    [same] = await store.apply([source(v1)])
    assert (same.revision, same.created, same.previous) == (1, False, 1)
    [second] = await store.apply([source(v2)])
    assert (second.revision, second.created, second.previous) == (2, True, 1)
    [back] = await store.apply([source(v1)])  # going back is a new revision: history only grows
    assert (back.revision, back.created) == (3, True)
    history = await store.history("hello")
    assert [(r.revision, r.source_hash, r.task_count, r.source) for r in history] == [
        (1, source_hash(v1), 1, None), (2, source_hash(v2), 2, None), (3, source_hash(v1), 1, None),
    ]
    latest = await store.revision("hello")
    assert latest is not None and (latest.revision, latest.source) == (3, v1)
    old = await store.revision("hello", 2)
    assert old is not None and old.source == v2 and old.source_path == "/flows/hello.yaml"
    assert await store.revision("hello", 9) is None and await store.revision("nope") is None


async def test_list_get_and_enable_switch(store: WorkflowStore) -> None:
    await store.apply([source("id: b\n", "b"), source("id: a\n", "a", "other")])
    rows = await store.list()
    assert [(r.id, r.namespace, r.revision, r.enabled) for r in rows] == [("a", "other", 1, True), ("b", "team", 1, True)]
    assert await store.set_enabled("a", False) is True
    assert await store.set_enabled("a", False) is False
    assert await store.set_enabled("missing", False) is None
    row = await store.get("a")
    assert row is not None and row.enabled is False and row.revision == 1
    [again] = await store.apply([source("id: a\nx: 1\n", "a", "other")])
    row = await store.get("a")
    assert row is not None and row.enabled is False and row.revision == again.revision == 2  # a new text keeps the switch


async def test_one_apply_is_one_transaction(store: WorkflowStore) -> None:
    bad = WorkflowSource("b", "team", "\ud800", None, 0)  # a lone surrogate cannot be stored
    with pytest.raises(UnicodeEncodeError):
        await store.apply([source("id: a\n", "a"), bad])
    assert await store.list() == []
