"""pvc.ops.sizes: the one size parser accepts a number with a binary unit and refuses
everything else with the rule on one line; the formatter writes what the parser reads."""

import pytest

from pvc.errors import InvalidInput
from pvc.ops.sizes import format_size, parse_size


@pytest.mark.parametrize(
    "text, size",
    [("4096B", 4096), ("1K", 1024), ("512M", 512 << 20), ("10G", 10 << 30), ("1T", 1 << 40),
     ("2P", 2 << 50), ("10GiB", 10 << 30), ("10Gi", 10 << 30), ("10GB", 10 << 30),
     ("10g", 10 << 30), ("007M", 7 << 20), ("8191P", 8191 << 50)],
)  # fmt: skip
def test_sizes_with_units_are_bytes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text, complaint",
    [("10", "give a whole number and a unit"), ("4096", "e.g. 10G, 512M, 4096B"),
     ("10X", "invalid size '10X'"), ("10 G", "invalid size"), ("", "invalid size ''"),
     ("-1G", "invalid size '-1G'"), ("1.5G", "invalid size"), ("G", "invalid size"),
     ("١٠G", "invalid size"), ("10G\n", "invalid size"), ("10GiBB", "invalid size"),
     ("4096BB", "invalid size"),
     ("0G", "more than zero"), ("0B", "more than zero"), ("8192P", "larger than"),
     ("9" * 30 + "P", "larger than"), ("9" * 31 + "B", "invalid size")],
)  # fmt: skip
def test_sizes_off_the_rule_are_refused_on_one_line(text, complaint):
    with pytest.raises(InvalidInput, match=complaint) as refusal:
        parse_size(text)
    assert "\n" not in refusal.value.message


def test_a_size_that_is_not_text_is_refused():
    with pytest.raises(InvalidInput, match="invalid size '10'"):
        parse_size(10)


@pytest.mark.parametrize(
    "size, text",
    [(0, "0B"), (1023, "1023B"), (1024, "1K"), (10 << 30, "10G"), (1536 << 20, "1.5G"),
     (3 << 40, "3T"), (5 << 50, "5P"), (4096 << 50, "4096P")],
)  # fmt: skip
def test_format_size(size, text):
    assert format_size(size) == text


def test_exact_sizes_read_back():
    for size in (1, 4096, 512 << 20, 10 << 30, 7 << 40):
        assert parse_size(format_size(size)) == size
