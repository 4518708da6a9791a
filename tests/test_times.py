"""beijing_time reads the providers' formats itself; it must agree with strptime on every input."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paynotify import BEIJING, beijing_time

FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y%m%d%H%M%S"]


def by_strptime(text: str, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=BEIJING)
    except ValueError:
        return None


def ours(text: str, fmt: str) -> datetime | None:
    try:
        return beijing_time(text, fmt)
    except ValueError:
        return None


DIGITS = st.text("0123456789", min_size=1, max_size=4)
NEAR_TIMES = st.tuples(DIGITS, DIGITS, DIGITS, DIGITS, DIGITS, DIGITS, st.text("0123456789", max_size=7)).map(
    lambda p: [f"{p[0]}-{p[1]}-{p[2]} {p[3]}:{p[4]}:{p[5]}" + (f".{p[6]}" if p[6] else ""), "".join(p[:6])]
)


@given(NEAR_TIMES, st.sampled_from(FORMATS))
def test_agrees_with_strptime_on_near_misses(texts: list[str], fmt: str) -> None:
    for text in texts:
        assert ours(text, fmt) == by_strptime(text, fmt)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)), st.sampled_from(FORMATS))
def test_agrees_with_strptime_on_real_times(moment: datetime, fmt: str) -> None:
    text = moment.strftime(fmt)
    assert ours(text, fmt) == by_strptime(text, fmt)


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        (
            "2015-04-28 15:45:57.320",
            "%Y-%m-%d %H:%M:%S.%f",
            datetime(2015, 4, 28, 15, 45, 57, 320000, BEIJING),
        ),
        ("20141030133525", "%Y%m%d%H%M%S", datetime(2014, 10, 30, 13, 35, 25, tzinfo=BEIJING)),
    ],
)
def test_provider_examples(text: str, fmt: str, expected: datetime) -> None:
    assert beijing_time(text, fmt) == expected
    assert beijing_time(text, fmt).utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("text", ["2015-02-30 10:00:00", "2015-04-28 24:00:00", "2015-04-28"])
def test_impossible_times_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"day is out of range|hour must be|does not match format"):
        beijing_time(text, "%Y-%m-%d %H:%M:%S")
