import base64
from urllib.parse import quote

import pytest

from kestra_trio.errors import ConfigError
from kestra_trio.secrets.masking import MASK, Masker
from kestra_trio.secrets.providers import resolve_secrets

SECRET = "s3cr3t/p@ss+word"


@pytest.mark.parametrize(
    "text",
    [
        f"password is {SECRET}",
        f"b64 {base64.b64encode(SECRET.encode()).decode()}",
        f"b64url {base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip('=')}",
        f"url {quote(SECRET, safe='')}",
    ],
)
def test_value_and_common_encodings_are_masked(text):
    masked = Masker([SECRET]).mask(text)
    assert SECRET not in masked and MASK in masked
    assert base64.b64encode(SECRET.encode()).decode() not in masked


def test_mask_has_fixed_length_whatever_the_secret():
    assert Masker(["abc"]).mask("abc") == Masker(["a" * 200]).mask("a" * 200) == MASK


def test_nested_values_and_keys_are_masked():
    masker = Masker(["topsecret"])
    assert masker.mask_value({"topsecret": ["x topsecret", 1, {"k": "topsecret"}]}) == {
        MASK: [f"x {MASK}", 1, {"k": MASK}]
    }


def test_no_secrets_is_a_no_op():
    assert not Masker([]).active
    assert Masker(["", "ab"]).mask("ab ab") == "ab ab"  # too short to mask: documented


def test_secrets_come_from_env_and_files(tmp_path):
    path = tmp_path / "token"
    path.write_text("from-a-file\n")
    found = resolve_secrets({"KESTRA_TRIO_SECRET_API": "v1", "KESTRA_TRIO_SECRET_TOKEN_FILE": str(path), "OTHER": "x"})
    assert found == {"API": "v1", "TOKEN": "from-a-file"}
    # both forms of one secret: which was meant is not guessed
    with pytest.raises(ConfigError, match="both KESTRA_TRIO_SECRET_TOKEN and KESTRA_TRIO_SECRET_TOKEN_FILE are set"):
        resolve_secrets({"KESTRA_TRIO_SECRET_TOKEN": "v", "KESTRA_TRIO_SECRET_TOKEN_FILE": str(path)})


@pytest.mark.parametrize(
    ("secret", "text"),
    [
        ("line1-secret\nline2-secret", "URL can't contain control characters. '/line1-secret\\nline2-secret?q=1'"),
        ("pässwört-🔑", 'json {"p": "p\\u00e4ssw\\u00f6rt-\\ud83d\\udd11"}'),
        ('a\\b"c', 'json {"p": "a\\\\b\\"c"}'),
        ("-----BEGIN K-----\nMIIabc123\n-----END K-----", "MIIabc123"),
    ],
)
def test_escaped_forms_and_each_line_of_a_multi_line_secret_are_masked(secret, text):
    masked = Masker([secret]).mask(text)
    assert MASK in masked
    for line in secret.splitlines():
        assert line not in masked


# ---------------------------------------------------------------- text cut short (mask_cut)

CUT_SECRETS = ["ABCDEFGHIJ", "XYZ123"]


@pytest.mark.parametrize(
    ("text", "dropped_before", "dropped_after", "expected"),
    [
        # the cut after the kept text: a secret's start at the end, down to one character
        ("aaaABCDEFGH", False, True, f"aaa{MASK}"),
        ("aaaA", False, True, f"aaa{MASK}"),
        ("aaaX", False, True, f"aaa{MASK}"),
        # the cut before the kept text: a secret's end at the start, down to one character
        ("CDEFGHIJbbb", True, False, f"{MASK}bbb"),
        ("3bbb", True, False, f"{MASK}bbb"),
        # a whole secret inside, and text that only looks like a secret away from the cut
        ("aaABCDEFGHIJbb", True, True, f"aa{MASK}bb"),
        ("ABCD is not at the cut", False, True, "ABCD is not at the cut"),
        ("at the cut is ABCD", True, False, "at the cut is ABCD"),
        # the secret was dropped whole: nothing to mask
        ("aaaa", True, True, "aaaa"),
        # several secrets: whole ones and a partial one at each cut
        ("IJ ABCDEFGHIJ XYZ123 XY", True, True, f"{MASK} {MASK} {MASK} {MASK}"),
        # overlapping: a whole secret whose end starts another secret at the cut — one mask
        ("aaXYZ12ABCDEFGHIJ", False, True, f"aaXYZ12{MASK}"),
        ("aaXYZ1ABCDEFGHIJXYZ12", False, True, f"aaXYZ1{MASK}{MASK}"),
        ("aaABCDEFGHIJABC", False, True, f"aa{MASK}{MASK}"),
        ("HIJABCDEFGHIJ", True, False, f"{MASK}{MASK}"),
        # the cut side not given is not touched
        ("aaaABCD", True, False, "aaaABCD"),
        ("", True, True, ""),
    ],
)
def test_mask_cut_masks_a_secret_straddling_a_cut(text, dropped_before, dropped_after, expected):
    masked = Masker(CUT_SECRETS).mask_cut(text, dropped_before=dropped_before, dropped_after=dropped_after)
    assert masked == expected


def test_mask_cut_covers_the_encoded_forms_and_the_overlap_with_a_whole_match():
    secret = "s3cr3t/p@ss+word"
    b64 = base64.b64encode(secret.encode()).decode()
    masker = Masker([secret, "word-two"])
    assert masker.mask_cut("x " + b64[:7]) == f"x {MASK}"
    assert masker.mask_cut("x " + quote(secret, safe="")[:9]) == f"x {MASK}"
    # a whole match whose last characters also begin another secret: one mask, nothing left
    assert masker.mask_cut("x s3cr3t/p@ss+word-tw") == f"x {MASK}"


def test_mask_cut_without_secrets_returns_the_text():
    assert Masker().mask_cut("aaaA", dropped_before=True) == "aaaA"
