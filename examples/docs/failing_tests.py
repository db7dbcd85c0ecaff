"""Tests that fail on purpose: docs/testing.md shows their real failure output
(`scripts/gen_docs.py` runs them). Not part of the suite."""

from pathlib import Path

WORKFLOWS = Path(__file__).parent.parent / "tests" / "workflows"


async def test_states(kt, autojump_clock):
    result = await kt.run(
        WORKFLOWS / "daily_report.yaml",
        inputs={"day": "2026-12-01"},
        secrets={"API_TOKEN": "s3cr3t-token"},
        mocks={"fetch": {"fail": "HTTP 503 from api.example.com"}},
    )
    result.assert_states(fetch="SUCCESS", summarise="SUCCESS", post="SUCCESS")


async def test_succeeded(kt, autojump_clock):
    result = await kt.run(
        WORKFLOWS / "daily_report.yaml",
        inputs={"day": "2026-12-01"},
        secrets={"API_TOKEN": "s3cr3t-token"},
        # the API changed: `orders` is now `order_count`, and `summarise` (run for real) trips on it
        mocks={"fetch": {"outputs": {"status": 200, "headers": {}, "body": {"order_count": 42}}}, "post": {"fail": "unused"}},
    )
    result.assert_succeeded()


async def test_action(kt):
    result = await kt.action("acme/greet.hello", {"name": " "})
    result.assert_ok()


async def test_mock(kt):
    await kt.run(WORKFLOWS / "daily_report.yaml", inputs={"day": "2026-12-01"}, mocks={"fetch": {"outputs": {"status": "200"}}})
