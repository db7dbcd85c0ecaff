from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import pytest

from kestra_trio.engine.context import EngineOptions
from kestra_trio.service.app import run_execution
from kestra_trio.model.loading import load_workflow
from kestra_trio.plugin_runtime.registry import PluginRegistry
from kestra_trio.storage.db import open_database


class Engine:
    """Runs workflows in-process against a real SQLite file and real plugin processes."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.db_path = tmp_path / "kestra.db"
        self.registry = PluginRegistry.discover()
        self.errors: list[str] = []

    async def run(self, yaml_text: str, inputs=None, **options):
        path = self.tmp_path / "wf.yaml"
        path.write_text(textwrap.dedent(yaml_text))
        workflow = load_workflow(path, catalog=self.registry)
        opts = EngineOptions(handle_signals=False, on_error=self.errors.append, **options)
        async with open_database(self.db_path) as db:
            return await run_execution(workflow, inputs or {}, db=db, registry=self.registry, options=opts)

    def rows(self, sql: str, *params):
        with sqlite3.connect(self.db_path) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture
def engine(tmp_path):
    return Engine(tmp_path)
