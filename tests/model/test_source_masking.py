"""Webhook keys masked where they are WRITTEN in a source, whatever the YAML spelling."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from kestra_trio.model.loading import value_spans
from kestra_trio.model.source_masking import MASKED_KEY, mask_webhook_keys

HEAD = "id: hooked\ntasks:\n  - {id: a, type: core/log}\n"


def masked(body: str) -> str:
    result = mask_webhook_keys(HEAD + textwrap.dedent(body))
    assert result is not None
    return result


@pytest.mark.parametrize(
    ("body", "secret"),
    [
        ('triggers:\n  - {id: a, type: webhook, key: "escaped-key-\\x41BCDEFGHIJKLMNOP"}\n', "escaped-key-ABCDEFGHIJKLMNOP"),
        ("triggers:\n  - {id: b, type: webhook, key: 'quoted-key-it''s-1234567890'}\n", "quoted-key-it's-1234567890"),
        ("triggers:\n  - id: c\n    type: webhook\n    key: plain-key-0123456789abc\n", "plain-key-0123456789abc"),
        ("triggers:\n  - id: d\n    type: webhook\n    key: >-\n      folded-key-part-one\n      folded-part-two\n",
         "folded-key-part-one folded-part-two"),
        ("triggers:\n  - id: e\n    type: webhook\n    key: |\n      literal-key-0123456789\n", "literal-key-0123456789\n"),
        ("triggers:\n  - id: f\n    type: webhook\n    key:\n      on-its-own-line-0123456789\n", "on-its-own-line-0123456789"),
        ('trigger: {type: webhook, key: "\\u0073ingle-trigger-form-0123"}\n', "single-trigger-form-0123"),
        ('triggers:\n  - id: g\n    type: webhook\n    key: !!str "tagged-\\x6bey-0123456789"\n', "tagged-key-0123456789"),
        ('triggers:\n  - id: h\n    type: webhook\n    key: "two-line-\n      quoted-key-0123"\n', "two-line- quoted-key-0123"),
    ],
    ids=["double-quoted-escape", "single-quoted", "plain", "folded", "literal", "own-line", "trigger-form", "tagged",
         "multi-line-quoted"],
)
def test_every_spelling_of_a_key_is_masked_and_the_rest_is_kept(body: str, secret: str) -> None:
    source = HEAD + body
    data, _ = value_spans(source)
    written = (data.get("triggers") or [data.get("trigger")])[0]["key"]
    assert written == secret  # the table says what YAML reads
    result = masked(body)
    shown = yaml.safe_load(result)  # what is shown still parses
    assert (shown.get("triggers") or [shown.get("trigger")])[0]["key"] == "***SECRET***"
    for part in secret.split():
        assert part not in result
    assert result.startswith(HEAD)


def test_an_alias_key_masks_the_anchor_where_it_is_defined() -> None:
    result = masked("""\
        variables:
          hook: &k "anchored-\\x6bey-0123456789"
        triggers:
          - {id: a, type: webhook, key: *k}
        """)
    assert "anchored" not in result and "\\x6b" not in result
    assert f"hook: &k {MASKED_KEY}" in result and "key: *k" in result
    assert yaml.safe_load(result)["triggers"][0]["key"] == "***SECRET***"


def test_the_same_key_written_elsewhere_or_in_a_comment_is_masked_too() -> None:
    result = masked("""\
        # call /api/v1/webhooks/hooked/same-key-0123456789
        variables:
          copy: 'same-key-0123456789'
          other: "same-\\x6bey-0123456789"
        triggers:
          - {id: a, type: webhook, key: same-key-0123456789}
        """)
    assert "same-key" not in result and "same-\\x6bey" not in result
    assert "/api/v1/webhooks/hooked/***SECRET***" in result


def test_a_secret_reference_stays_readable_and_a_source_without_literal_keys_is_unchanged() -> None:
    body = ('triggers:\n  - {id: a, type: webhook, key: "{{ secrets.HOOK_KEY }}", inputs: {key: "{{ trigger.body.key }}"}}\n'
            '  - {id: n, type: cron, cron: "0 3 * * *"}\n')
    assert masked(body) == HEAD + body  # an input named `key` is not the webhook's


def test_several_keys_duplicates_and_odd_shapes_are_all_masked() -> None:
    result = masked("""\
        triggers:
          - id: a
            type: webhook
            key: first-duplicate-0123456789
            key: second-duplicate-0123456789
          - {id: b, type: webhook, key: [in-a-list-0123456789]}
          - {id: c, type: webhook, key: 12345678901234567890}
        """)
    for secret in ("first-duplicate", "second-duplicate", "in-a-list", "12345678901234567890"):
        assert secret not in result


def test_what_cannot_be_placed_is_not_shown_at_all() -> None:
    # the key sits inside an aliased list: no span of its own
    aliased = HEAD + "variables:\n  t: &t [{id: a, type: webhook, key: aliased-list-key-0123}]\ntriggers: *t\n"
    assert mask_webhook_keys(aliased) is None
    assert mask_webhook_keys("id: x\ntriggers: [{key: 'unterminated-0123456789}]\n") is None  # does not parse
