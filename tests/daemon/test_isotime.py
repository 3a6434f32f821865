"""daemon.isotime: the same text as ``datetime.isoformat`` for every datetime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from daemon.isotime import isoformat


class _Nanos(datetime):
    """A subclass that formats itself otherwise (as pandas' Timestamp does)."""

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return "its own text"


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.sampled_from([0, 1]),
)
def test_utc_times_format_as_isoformat(value: datetime, fold: int) -> None:
    value = value.replace(fold=fold)
    assert isoformat(value) == value.isoformat()


@given(
    st.datetimes(
        timezones=st.one_of(
            st.none(),
            st.just(timezone(timedelta(hours=5, minutes=30))),
            st.just(timezone(timedelta(0))),
            st.just(ZoneInfo("UTC")),
            st.just(ZoneInfo("America/Montreal")),
        )
    )
)
def test_other_times_format_as_isoformat(value: datetime) -> None:
    assert isoformat(value) == value.isoformat()


def test_edges() -> None:
    for value in (
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2023, 6, 5, 7, 8, 9, 1, tzinfo=UTC),
        datetime(2023, 6, 5, 7, 8, 9, 100000, tzinfo=UTC),
        datetime(2023, 6, 5, tzinfo=UTC),
        datetime(999, 10, 11, 12, 13, 14, tzinfo=UTC),
    ):
        assert isoformat(value) == value.isoformat()
    assert isoformat(_Nanos(2023, 6, 5, tzinfo=UTC)) == "its own text"
