from pathlib import Path

import pytest

from kestra_trio.config import default_db_path, resolve_db_path, retention_days
from kestra_trio.errors import ConfigError


def test_db_path_follows_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_db_path({"XDG_DATA_HOME": "/data"}) == Path("/data/kestra-trio/kestra.db")
    assert default_db_path({}) == tmp_path / ".local/share/kestra-trio/kestra.db"
    assert default_db_path({"XDG_DATA_HOME": "relative/ignored"}) == tmp_path / ".local/share/kestra-trio/kestra.db"


def test_option_beats_env_beats_default():
    env = {"KESTRA_TRIO_DB": "/env.db", "XDG_DATA_HOME": "/data"}
    assert resolve_db_path("/opt.db", env) == Path("/opt.db")
    assert resolve_db_path(None, env) == Path("/env.db")
    assert resolve_db_path(None, {"XDG_DATA_HOME": "/data"}) == Path("/data/kestra-trio/kestra.db")


def test_an_empty_db_option_is_refused_not_taken_for_the_default():
    with pytest.raises(ConfigError, match="--db is empty"):
        resolve_db_path("", {"KESTRA_TRIO_DB": "/env.db"})


def test_retention_days_and_alias():
    assert retention_days({}) == 30
    assert retention_days({"KESTRA_TRIO_LOG_RETENTION_DAYS": "7"}) == 7
    assert retention_days({"AUTOKESTRA_LOG_RETENTION_DAYS": "9"}) == 9
    for bad in ("abc", "0", "-3"):
        with pytest.raises(ConfigError):
            retention_days({"KESTRA_TRIO_LOG_RETENTION_DAYS": bad})


def test_max_parallel_and_kill_grace_from_option_env_default():
    from kestra_trio.config import kill_grace, max_parallel

    assert max_parallel(None, {}) == 8
    assert max_parallel(None, {"KESTRA_TRIO_MAX_PARALLEL": "3"}) == 3
    assert max_parallel(2, {"KESTRA_TRIO_MAX_PARALLEL": "3"}) == 2
    assert max_parallel(None, {"KESTRA_TRIO_MAX_PARALLEL": "1000"}) == 1000
    for too_many in (1001, 10**23):  # the environment and --max-parallel alike
        with pytest.raises(ConfigError, match=f"must be between 1 and 1000, got {too_many}"):
            max_parallel(None, {"KESTRA_TRIO_MAX_PARALLEL": str(too_many)})
    assert kill_grace(None, {}) == 5.0
    assert kill_grace(None, {"KESTRA_TRIO_KILL_GRACE": "0.5"}) == 0.5
    # ASCII digits as written: int()/float() alone also take "1_0", "２" (fullwidth) and "٣"
    for bad in ({"KESTRA_TRIO_MAX_PARALLEL": "x"}, {"KESTRA_TRIO_MAX_PARALLEL": "0"},
                {"KESTRA_TRIO_MAX_PARALLEL": "\uff12"}, {"KESTRA_TRIO_MAX_PARALLEL": "1_0"}):
        with pytest.raises(ConfigError):
            max_parallel(None, bad)
    for bad in ({"KESTRA_TRIO_KILL_GRACE": "-1"}, {"KESTRA_TRIO_KILL_GRACE": "nan"}, {"KESTRA_TRIO_KILL_GRACE": "soon"},
                {"KESTRA_TRIO_KILL_GRACE": "\u0661"}, {"KESTRA_TRIO_KILL_GRACE": "inf"}):
        with pytest.raises(ConfigError):
            kill_grace(None, bad)
    assert kill_grace(3600.0, {}) == 3600.0
    with pytest.raises(ConfigError, match="must be between 0 and 3600 seconds, got 1e\\+308"):
        kill_grace(1e308, {})  # accepted before: a stop then waited forever
