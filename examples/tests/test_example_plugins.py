"""Testing a plugin in isolation: `kt.action` runs one action in a real child process, as one
attempt of a task, and returns its outputs, log entries and exit code."""


async def test_hello_greets_in_python(kt):
    result = await kt.action("acme/greet.hello", {"name": "Ada"})

    result.assert_ok()
    assert result.outputs == {"text": "hello Ada"}
    assert [(e.level, e.message) for e in result.logs_of(source="plugin")] == [("INFO", "greeting Ada")]


async def test_hello_never_shows_the_token(kt):
    result = await kt.action("acme/greet.hello", {"name": "Ada", "token": "tok-123"}, secrets={"API_TOKEN": "tok-123"})

    result.assert_ok()
    assert "authenticated with ***SECRET***" in [e.message for e in result.logs]


async def test_hello_refuses_an_empty_name(kt):
    result = await kt.action("acme/greet.hello", {"name": "  "})

    assert not result.ok
    assert (result.reason_code, result.exit_code, result.error["message"]) == ("PLUGIN_FAILED", 1, "name is empty")


async def test_hello_inputs_are_checked_against_its_schema(kt):
    result = await kt.action("acme/greet.hello", {"nom": "Ada"})

    assert result.reason_code == "INVALID_INPUT"
    assert "'name' is a required property" in result.error["message"]


async def test_count_in_shell(kt, tmp_path):
    (tmp_path / "a.csv").write_text("1")
    (tmp_path / "b.csv").write_text("2")

    result = await kt.action("acme/files.count", {"dir": str(tmp_path)})

    result.assert_ok()
    assert result.outputs == {"count": 2}
    assert [e.message for e in result.logs] == [f"counting the entries of {tmp_path}"]


async def test_count_warns_about_an_empty_directory(kt, tmp_path):
    result = await kt.action("acme/files.count", {"dir": str(tmp_path)})

    assert result.outputs == {"count": 0}
    assert [e.message for e in result.logs_of(level="WARN")] == [f"WARN {tmp_path} is empty"]


async def test_count_fails_on_a_missing_directory(kt, tmp_path):
    result = await kt.action("acme/files.count", {"dir": str(tmp_path / "nope")})

    assert (result.ok, result.exit_code, result.error["type"]) == (False, 2, "NotFound")
    assert result.logs_of(level="ERROR")[0].message == f"ERROR {tmp_path / 'nope'} is not a directory"
