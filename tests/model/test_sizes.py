import pytest

from kestra_trio.model.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [("256Mi", 256 * 2**20), ("1Gi", 2**30), ("100M", 100 * 10**6), ("512k", 512_000), ("4096", 4096),
     (4096, 4096), ("1.5Ki", 1536), (" 2 MiB ", 2 * 2**20), ("10b", 10)],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "Mi", "12x", "-1", "1 2", True, "١٢Mi", -5])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError, match="256Mi"):
        parse_size(text)


def test_format_size():
    assert [format_size(n) for n in (256 * 2**20, 2**30, 1536, 1000, 0)] == ["256Mi", "1Gi", "1536B", "1000B", "0"]
