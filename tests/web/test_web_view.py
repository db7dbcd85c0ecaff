"""The web view in a real browser against a real server: live logs, filters, downloads,
hostile text, the Run form, and a screenshot of each page (docs/web.md shows them)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a real server, its runs and a real browser (--quick skips it)

#: prints a first half, waits for the test's go-ahead file, then a second half: the page is
#: certainly open while the run goes on
LIVE = """\
id: live
namespace: web
inputs:
  - {name: gate, type: string}
tasks:
  - id: produce
    type: core/shell.run
    inputs:
      command: >-
        for i in $(seq 1 150); do printf 'line %d \\033[31mred\\033[0m \\033[1mbold\\033[0m\\n' $i; done;
        printf '10%%\\r50%%\\r100%%\\n';
        n=0; while [ ! -e '{{ inputs.gate }}' ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done;
        for i in $(seq 151 300); do echo "line $i"; done
  - id: report
    type: core/shell.run
    needs: [produce]
    inputs:
      command: "echo 'a warning' >&2; echo done"
"""

HOSTILE_LINES = [
    "<script>document.title='pwned-script'</script>",
    "<img src=x onerror=\"document.title='pwned-img'\">",
    "<a href=\"javascript:document.title='pwned-link'\">click me</a>",
    "\x1b]8;;javascript:document.title='pwned-osc8'\x1b\\osc8 link\x1b]8;;\x1b\\",
    "\x1b]0;pwned-title\x07 after a title sequence",
    "\x1b]2;pwned-title2\x1b\\ after another",
    "\u202eevil-rtl-override\u202c",
    "\x1b[2J\x1b[H cleared? no: \x1b[5mblink\x1b[0m \x1b[4munderline\x1b[0m",
    "{{ '<b>' }} <style>body{display:none}</style> <iframe src=\"javascript:alert(1)\"></iframe>",
]

RUN_FORM = """\
id: form
namespace: web
inputs:
  - {name: count, type: integer}
  - {name: payload, type: json, required: false}
  - {name: greeting, type: string, default: hello}
tasks:
  - id: echo
    type: core/shell.run
    inputs: {command: "echo {{ inputs.count }}"}
"""


def _hostile_workflow(tmp: Path) -> str:
    script = tmp / "hostile.py"
    lines = [*HOSTILE_LINES, "M" * (1024 * 1024)]
    script.write_text("import sys\n" + "".join(f"sys.stdout.write({line!r} + '\\n')\n" for line in lines))
    return (
        "id: hostile\nnamespace: web\ntasks:\n  - id: spew\n    type: core/shell.run\n"
        f"    inputs: {{command: \"{Path(__import__('sys').executable)} {script}\"}}\n"
    )


def apply(server, name: str, text: str) -> None:
    path = server.workflows / f"{name}.yaml"
    path.write_text(text)
    done = server.cli("workflow", "apply", str(path))
    assert done.returncode == 0, done.stderr


def wait_for(driver, condition, timeout: float = 60, message: str = ""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d), message)


def wait_api(server, execution_id: str, states=("SUCCESS", "FAILED", "CANCELLED")) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, doc = server.api("GET", f"/executions/{execution_id}")
        if doc["execution"]["state"] in states:
            return doc
        time.sleep(0.1)
    raise AssertionError(f"{execution_id} did not end")


#: scrolls the virtual log view from top to bottom; returns every row it drew, in order:
#: [entry index, task, level, visible message text, HTML of the message]
COLLECT_ROWS = """
const done = arguments[arguments.length - 1];
const box = document.getElementById('logs');
const seen = new Map();
const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
(async () => {
  for (let top = 0; ; top += box.clientHeight / 2) {
    box.scrollTop = top;
    box.dispatchEvent(new Event('scroll'));
    await frame();
    for (const row of box.querySelectorAll('.log-line')) {
      const msg = row.querySelector('.msg');
      seen.set(+row.dataset.position, [+row.dataset.index, row.querySelector('.task')?.textContent.trim() ?? '',
        row.querySelector('.lv').textContent.trim(), msg.textContent, msg.innerHTML]);
    }
    if (top >= box.scrollHeight) break;
  }
  done([...seen.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]));
})();
"""


def show_logs(driver) -> None:
    driver.execute_script("document.getElementById('logs').scrollIntoView({block: 'end'})")


def shown_count(driver) -> int:
    text = driver.find_element("css selector", ".log-status").text.split(" ")[0].replace(",", "")
    return int(text) if text.isdigit() else 0


def rows(driver) -> list[list]:
    driver.set_script_timeout(60)
    return driver.execute_async_script(COLLECT_ROWS)


def cli_jsonl(server, execution_id: str) -> list[dict]:
    done = server.cli("execution", "logs", execution_id, "--jsonl")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


def test_pages_carry_a_strict_content_security_policy(server):
    for path in ("/", "/executions/abc", "/workflows", "/workflows/x", "/static/js/app.js", "/static/app.css"):
        with urllib.request.urlopen(server.url + path, timeout=30) as answer:
            csp = answer.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp, path
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            assert answer.headers.get("Set-Cookie") is None
    with urllib.request.urlopen(server.url + "/", timeout=30) as answer:
        page = answer.read().decode()
    # no inline code: every script is a file, no event-handler attribute, no inline style
    assert re.findall(r"<script[^>]*>", page) == ['<script type="module" src="/static/js/app.js">']
    assert not re.search(r"\son[a-z]+\s*=|\sstyle\s*=", page)


@pytest.fixture(scope="module")
def live_run(server, tmp_path_factory) -> tuple[str, Path]:
    """The LIVE workflow's execution, waiting at its gate (whoever needs it finished touches the gate)."""
    apply(server, "live", LIVE)
    gate = tmp_path_factory.mktemp("gate") / "go"
    return server.start("live", {"gate": str(gate)}), gate


@pytest.fixture
def finished_live(server, live_run) -> str:
    execution_id, gate = live_run
    gate.touch()
    wait_api(server, execution_id)
    return execution_id


def test_live_page_shows_every_line_once_in_order_and_the_end_state(server, browser, live_run, screenshots):
    execution_id, gate = live_run
    browser.get(f"{server.url}/executions/{execution_id}")
    # the first half is on screen while the run still waits for the gate
    wait_for(browser, lambda d: shown_count(d) >= 152, message="the first half never showed")
    assert browser.find_element("id", "exec-state").text == "RUNNING"
    gate.touch()
    wait_for(browser, lambda d: d.find_element("id", "exec-state").text == "SUCCESS", message="no final state")
    wait_for(browser, lambda d: d.find_element("id", "live-state").text == "(complete)")
    shown = rows(browser)
    stored = cli_jsonl(server, execution_id)
    assert len(shown) == len(stored)
    assert [row[0] for row in shown] == list(range(len(stored)))  # each entry once, in order
    plain = [row[3] for row in shown if row[1] == "produce" and row[3].startswith("line ")]
    assert plain == [f"line {i} red bold" for i in range(1, 151)] + [f"line {i}" for i in range(151, 301)]
    assert "100%" in [row[3] for row in shown]  # a \r progress line shows its last state
    coloured = next(row[4] for row in shown if row[3] == "line 1 red bold")
    assert 'style="color: var(--a1);"' in coloured and 'class="b"' in coloured
    for row, entry in zip(shown, stored):
        assert (row[1], row[2]) == (entry["task_id"] or "", entry["level"])
    assert browser.find_element("css selector", "#tasks tr[data-task='report'] .state").text == "SUCCESS"
    assert len(browser.find_elements("css selector", "#gantt .gantt-bar")) == 2
    show_logs(browser)
    browser.save_screenshot(str(screenshots / "execution.png"))


def test_log_filters(server, browser, finished_live):
    from selenium.webdriver.support.ui import Select

    execution_id = finished_live
    browser.get(f"{server.url}/executions/{execution_id}")
    wait_for(browser, lambda d: d.find_element("id", "live-state").text == "(complete)")
    total = len(cli_jsonl(server, execution_id))
    Select(browser.find_element("name", "task")).select_by_value("report")
    shown = rows(browser)
    assert shown and {row[1] for row in shown} == {"report"}
    for box in browser.find_elements("name", "level"):
        if box.get_attribute("value") != "WARN":
            box.click()
    shown = rows(browser)
    assert [row[3] for row in shown] == ["a warning"]
    assert browser.find_element("css selector", ".log-status").text == f"1 of {total:,} lines"
    Select(browser.find_element("name", "task")).select_by_value("")
    for box in browser.find_elements("name", "level"):
        if not box.is_selected():
            box.click()
    browser.find_element("name", "text").send_keys("LINE 29")
    wait_for(browser, lambda d: d.find_element("css selector", ".log-status").text.startswith("11 of"))
    assert [row[3] for row in rows(browser)] == ["line 29 red bold", "line 290", "line 291", "line 292", "line 293",
                                               "line 294", "line 295", "line 296", "line 297", "line 298", "line 299"]


def test_downloads_equal_the_cli(server, browser, finished_live):
    execution_id = finished_live
    browser.get(f"{server.url}/executions/{execution_id}")
    wait_for(browser, lambda d: d.find_element("id", "live-state").text == "(complete)")
    for kind, args in (("jsonl", ("--jsonl",)), ("txt", ())):
        target = browser.downloads / f"{execution_id}.{kind}"
        browser.find_element("xpath", f"//button[text()='Download .{kind}']").click()
        wait_for(browser, lambda d: target.exists() and target.stat().st_size > 0, message=f"no .{kind} download")
        expected = server.cli("execution", "logs", execution_id, *args)
        assert expected.returncode == 0
        wait_for(browser, lambda d: target.read_bytes() == expected.stdout, timeout=10,
                 message=f".{kind} differs from `execution logs {' '.join(args)}`")


def test_hostile_lines_execute_nothing_and_change_no_title(server, browser, tmp_path, screenshots):
    apply(server, "hostile", _hostile_workflow(tmp_path))
    execution_id = server.start("hostile")
    wait_api(server, execution_id)
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(f"{server.url}/executions/{execution_id}")
    wait_for(browser, lambda d: d.find_element("id", "live-state").text == "(complete)")
    shown = rows(browser)
    texts = [row[3] for row in shown]
    assert browser.title == f"Execution {execution_id} · kestra-trio"
    assert texts[:1] and HOSTILE_LINES[0] in texts and HOSTILE_LINES[1] in texts and HOSTILE_LINES[2] in texts
    # escapes other than colour are shown inert, as their escaped text
    assert any(t.startswith("\\x1b]8;;javascript:") for t in texts)
    assert any(t.startswith("\\x1b]0;pwned-title\\x07") for t in texts)
    assert "\\u202eevil-rtl-override\\u202c" in texts
    assert any("\\x1b[5mblink" in t and "\\x1b[2J" in t for t in texts)
    big = next(t for t in texts if t.startswith("MMMM"))
    assert "more characters (in the download)" in big  # a 1 MB line is cut on screen only
    logs = browser.find_element("id", "logs")
    for tag in ("script", "img", "a", "iframe", "style", "b"):
        assert logs.find_elements("tag name", tag) == [], tag
    assert browser.execute_script("return document.querySelectorAll('script').length") == 1  # the module only
    complaints = [e["message"] for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert complaints == []  # no CSP violation: nothing even tried to run
    stored = cli_jsonl(server, execution_id)
    # the engine keeps a line's first 64 KiB (plugin_runtime.streams); the page shows its start
    assert len(stored) == len(shown) and any(e["message"].startswith("M" * 65536) for e in stored)
    show_logs(browser)
    browser.save_screenshot(str(screenshots / "execution-hostile.png"))


def test_run_form_checks_types_and_shows_the_api_refusal(server, browser, screenshots):
    apply(server, "form", RUN_FORM)
    browser.get_log("browser")
    browser.get(f"{server.url}/workflows/form")
    wait_for(browser, lambda d: d.find_elements("id", "input-count"))
    # the revision history (with its diff) and the enable/disable toggle, from the API
    wait_for(browser, lambda d: d.find_elements("css selector", "#revisions tbody tr"), message="no revision history")
    assert browser.find_element("id", "toggle").text.startswith("Disable")
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    browser.find_element("id", "input-count").send_keys("twelve")
    browser.find_element("id", "run").click()
    assert "must be an integer" in browser.find_element("id", "input-count-error").text
    assert browser.current_url.endswith("/workflows/form")  # refused in the page: nothing sent
    count = browser.find_element("id", "input-count")
    count.clear()
    count.send_keys("12")
    # valid JSON to the page (JSON.parse gives Infinity), not to the API: its message is shown
    browser.find_element("id", "input-payload").send_keys("1e400")
    browser.find_element("id", "run").click()
    wait_for(browser, lambda d: d.find_element("id", "run-error").text, message="no API refusal shown")
    status, body = server.api("POST", "/executions", {"workflow": "form", "inputs": {"count": "12", "payload": "1e400"}})
    assert status == 422
    assert browser.find_element("id", "run-error").text == body["message"]
    browser.save_screenshot(str(screenshots / "workflow.png"))
    browser.find_element("id", "input-payload").clear()
    browser.find_element("id", "run").click()
    wait_for(browser, lambda d: "/executions/" in d.current_url, message="the run did not start")
    execution_id = browser.current_url.rsplit("/", 1)[1]
    assert wait_api(server, execution_id)["execution"]["inputs"] == {"count": 12, "payload": None, "greeting": "hello"}


def test_list_pages_and_their_screenshots(server, browser, screenshots):
    browser.get(f"{server.url}/")
    wait_for(browser, lambda d: len(d.find_elements("css selector", "#executions tbody tr")) >= 3)
    first = browser.find_elements("css selector", "#executions tbody tr")[0]
    newest = server.api("GET", "/executions?limit=1")[1]["executions"][0]["id"]
    assert first.get_attribute("data-id") == newest
    browser.save_screenshot(str(screenshots / "executions.png"))
    # live: a new execution appears without a reload
    execution_id = server.start("form", {"count": "1"})
    wait_for(browser, lambda d: d.find_elements("css selector", f"#executions tr[data-id='{execution_id}']"))
    browser.get(f"{server.url}/?workflow=live")
    wait_for(browser, lambda d: d.find_elements("css selector", "#executions tbody tr"))
    assert {a.text for a in browser.find_elements("css selector", "#executions tbody td:nth-child(2) a")} == {"live"}
    browser.get(f"{server.url}/workflows")
    wait_for(browser, lambda d: len(d.find_elements("css selector", "#workflows tbody tr")) >= 3)
    browser.save_screenshot(str(screenshots / "workflows.png"))
    # narrow and dark
    browser.set_window_size(390, 844)
    try:
        browser.get(f"{server.url}/executions/{execution_id}")
        wait_for(browser, lambda d: d.find_element("id", "live-state").text == "(complete)")
        browser.find_element("id", "theme").click()
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390 + 1  # no sideways page
        browser.save_screenshot(str(screenshots / "execution-narrow-dark.png"))
    finally:
        browser.set_window_size(1280, 720)
    for name in ("execution", "execution-hostile", "workflow", "executions", "workflows", "execution-narrow-dark"):
        assert (screenshots / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_cancel_and_restart_ask_first(server, browser, tmp_path):
    apply(server, "live", LIVE)
    never = tmp_path / "never"  # this run waits at its gate until it is cancelled
    execution_id = server.start("live", {"gate": str(never)})
    browser.get(f"{server.url}/executions/{execution_id}")
    wait_for(browser, lambda d: d.find_elements("id", "cancel"), message="no Cancel button while it runs")
    browser.find_element("id", "cancel").click()
    dialog = browser.find_element("id", "confirm-dialog")
    assert dialog.is_displayed() and execution_id in browser.find_element("id", "confirm-text").text
    dialog.find_element("xpath", ".//button[@value='cancel']").click()  # changed my mind: nothing sent
    assert server.api("GET", f"/executions/{execution_id}")[1]["execution"]["state"] == "RUNNING"
    browser.find_element("id", "cancel").click()
    browser.find_element("id", "confirm-reason").send_keys("seen enough")
    browser.find_element("id", "confirm-ok").click()
    wait_for(browser, lambda d: d.find_element("id", "exec-state").text == "CANCELLED", message="not cancelled")
    events = server.api("GET", f"/executions/{execution_id}")[1]["audit_events"]
    assert any("seen enough" in json.dumps(e.get("metadata")) for e in events)
    wait_for(browser, lambda d: d.find_elements("id", "restart"), message="no Restart button once it ended")
    browser.find_element("id", "restart").click()
    browser.find_element("id", "confirm-ok").click()  # the engine's restart: the same execution runs again
    shown_state = "return document.getElementById('exec-state')?.textContent"  # the page reloads: no stale handle
    wait_for(browser, lambda d: d.execute_script(shown_state) in ("QUEUED", "RUNNING"),
             message="the restarted execution is not shown running again")
    assert browser.current_url.endswith(execution_id)
    doc = server.api("GET", f"/executions/{execution_id}")[1]
    assert doc["execution"]["restart_count"] == 1 and doc["execution"]["inputs"] == {"gate": str(never)}
    assert any(e["event_type"] == "RESTARTED" for e in doc["audit_events"])
    server.api("POST", f"/executions/{execution_id}/cancel", {"reason": "test over"})


def test_token_is_asked_for_and_sent_as_a_header_never_a_cookie(browser, tmp_path):
    from conftest import running_server

    (tmp_path / "wf").mkdir()
    (tmp_path / "wf" / "form.yaml").write_text(RUN_FORM)
    with running_server(tmp_path, tmp_path / "wf") as server:
        made = server.cli("server", "token", "create", "web-test")
        assert made.returncode == 0, made.stderr
        token = made.stdout.decode().splitlines()[0].strip()  # printed alone on stdout, once
        assert server.api("GET", "/workflows")[0] == 401
        browser.get(f"{server.url}/workflows")
        wait_for(browser, lambda d: d.find_element("id", "token-dialog").is_displayed(), message="no token asked for")
        browser.find_element("id", "token-input").send_keys(token)
        browser.find_element("css selector", "#token-form button[value='ok']").click()
        wait_for(browser, lambda d: d.find_elements("css selector", "#workflows tr[data-id='form']"),
                 message="the list did not load with the token")
        assert browser.execute_script("return document.cookie") == ""
        assert browser.get_cookies() == []
