"""slash_date reads exactly what datetime.strptime(text, "%Y/%m/%d") reads: document and ballot ids depend on it."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from lienthong.documents import slash_date


def _strptime(text: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text, "%Y/%m/%d").date()
    except ValueError:
        return None


def _ours(text: str) -> dt.date | None:
    try:
        return slash_date(text)
    except ValueError:
        return None


EDGES = ["2026/11/27", "2026/1/5", "2026/01/05", "2026/1/ 5", "2026/ 1/5", "2026/02/29", "2024/02/29", "2026/13/01",
         "2026/00/10", "2026/12/00", "2026/12/32", "0000/01/01", "0001/01/01", "9999/12/31", "26/11/27",
         "20261/11/27", "2026-11-27", "2026/11/27 ", " 2026/11/27", "2026/11/27x", "2026/11", "", "////",
         "２０２６/１１/２７", "2026/04/31", "2026/4/30", "2026/011/27", "+2026/11/27"]


@pytest.mark.parametrize("text", EDGES)
def test_edges_read_as_strptime_reads_them(text: str) -> None:
    assert _ours(text) == _strptime(text)


def test_random_strings_over_the_date_alphabet() -> None:
    rng = random.Random(20261127)
    alphabet = "0123456789/ 0123456789"
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(6, 13)))
        assert _ours(text) == _strptime(text), text


def test_a_valid_date_is_returned_and_an_invalid_one_names_itself() -> None:
    assert slash_date("2026/11/27") == dt.date(2026, 11, 27)
    with pytest.raises(ValueError, match="2026-11-27"):
        slash_date("2026-11-27")


def test_random_strings_shaped_like_dates() -> None:
    rng = random.Random(27)
    digits = "0123456789 "
    valid = 0
    for _ in range(20_000):
        parts = ["".join(rng.choice("0123456789") for _ in range(rng.choice((3, 4, 4, 4, 5))))]
        parts += ["".join(rng.choice(digits) for _ in range(rng.choice((1, 2, 2, 3)))) for _ in range(2)]
        text = "/".join(parts)
        theirs = _strptime(text)
        assert _ours(text) == theirs, text
        valid += theirs is not None
    assert valid > 1_000  # the comparison covered many dates that parse, not only refusals
