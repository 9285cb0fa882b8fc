"""Reporting regimes and periods (Decree 09/2019): closing days, open, late and closed rules, validation; and
the report projector's corrections and replays on an in-memory database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pydantic
import pytest

from consumers.report_projector import ReportProjector
from lienthong.errors import LienthongError, Reason, ValidationError
from lienthong.reports import (
    VIETNAM,
    Indicator,
    IndicatorValue,
    Period,
    PeriodType,
    Regime,
    Report,
    make_report_id,
)
from tests.support import MINISTRY_A, MINISTRY_B, OFFICE, PROVINCE

D = dt.date


def regime(**changes: object) -> Regime:
    base: dict[str, object] = {
        "code": "BC-KTXH", "name": "Báo cáo kinh tế - xã hội", "period_type": PeriodType.MONTH,
        "reporting": [MINISTRY_A, MINISTRY_B, "group:provinces"], "receiving": OFFICE,
        "indicators": [{"code": "GRDP", "name": "Tăng trưởng GRDP", "unit": "%"},
                       {"code": "THU_NSNN", "name": "Thu ngân sách", "unit": "tỷ đồng"}],
        "due_days": 5, "accept_days": 30}
    return Regime.model_validate({**base, **changes})


def report(sender: str = MINISTRY_A, period: str = "2026-M03", time: dt.datetime | None = None,
           **values: str) -> Report:
    return Report(report_id=make_report_id(sender, "BC-KTXH", period), regime="BC-KTXH", period=period,
                  values=tuple(IndicatorValue(indicator=k, value=v) for k, v in (values or {"GRDP": "6.5"}).items()),
                  time=time or dt.datetime(2026, 3, 16, tzinfo=dt.UTC))


@pytest.mark.parametrize(("label", "kind", "start", "end"), [
    ("2026-M01", PeriodType.MONTH, D(2025, 12, 15), D(2026, 1, 14)),
    ("2026-M03", PeriodType.MONTH, D(2026, 2, 15), D(2026, 3, 14)),
    ("2026-M12", PeriodType.MONTH, D(2026, 11, 15), D(2026, 12, 14)),
    ("2026-Q1", PeriodType.QUARTER, D(2025, 12, 15), D(2026, 3, 14)),
    ("2026-Q2", PeriodType.QUARTER, D(2026, 3, 15), D(2026, 6, 14)),
    ("2026-Q3", PeriodType.QUARTER, D(2026, 6, 15), D(2026, 9, 14)),
    ("2026-Q4", PeriodType.QUARTER, D(2026, 9, 15), D(2026, 12, 14)),
    ("2026-H1", PeriodType.HALF_YEAR, D(2025, 12, 15), D(2026, 6, 14)),
    ("2026-H2", PeriodType.HALF_YEAR, D(2026, 6, 15), D(2026, 12, 14)),
    ("2026", PeriodType.YEAR, D(2025, 12, 15), D(2026, 12, 14)),
    ("2024-M03", PeriodType.MONTH, D(2024, 2, 15), D(2024, 3, 14)),  # a leap year changes nothing
])
def test_periods_run_from_the_15th_to_the_14th(label: str, kind: PeriodType, start: dt.date, end: dt.date) -> None:
    period = Period.parse(label, kind)
    assert (period.start, period.end, period.label, period.type) == (start, end, label, kind)
    assert Period.containing(start, kind) == period and Period.containing(end, kind) == period
    assert Period.containing(end + dt.timedelta(days=1), kind).start == end + dt.timedelta(days=1)
    assert Period.containing(start - dt.timedelta(days=1), kind) == period.previous()
    assert period.previous().end == start - dt.timedelta(days=1)


@pytest.mark.parametrize(("day", "kind", "label"), [
    (D(2025, 12, 14), PeriodType.MONTH, "2025-M12"),
    (D(2025, 12, 15), PeriodType.MONTH, "2026-M01"),  # the year's first month starts in December
    (D(2025, 12, 15), PeriodType.QUARTER, "2026-Q1"),
    (D(2025, 12, 15), PeriodType.HALF_YEAR, "2026-H1"),
    (D(2025, 12, 15), PeriodType.YEAR, "2026"),
    (D(2025, 12, 14), PeriodType.YEAR, "2025"),
    (D(2026, 6, 14), PeriodType.HALF_YEAR, "2026-H1"),
    (D(2026, 6, 15), PeriodType.HALF_YEAR, "2026-H2"),
    (D(2026, 3, 15), PeriodType.QUARTER, "2026-Q2"),
    (D(2026, 12, 31), PeriodType.QUARTER, "2027-Q1"),
])
def test_the_period_containing_a_day(day: dt.date, kind: PeriodType, label: str) -> None:
    assert Period.containing(day, kind).label == label


def test_previous_periods_cross_year_boundaries() -> None:
    assert Period.parse("2026-M01", PeriodType.MONTH).previous().label == "2025-M12"
    assert Period.parse("2026-Q1", PeriodType.QUARTER).previous().label == "2025-Q4"
    assert Period.parse("2026-H1", PeriodType.HALF_YEAR).previous().label == "2025-H2"
    assert Period.parse("2026", PeriodType.YEAR).previous().label == "2025"


@pytest.mark.parametrize(("label", "kind"), [
    ("2026-M13", PeriodType.MONTH), ("2026-M3", PeriodType.MONTH), ("2026-Q1", PeriodType.MONTH),
    ("2026-Q5", PeriodType.QUARTER), ("2026-H3", PeriodType.HALF_YEAR), ("2026-H1", PeriodType.YEAR),
    ("0000", PeriodType.YEAR), ("0001-M01", PeriodType.MONTH), (" 2026-M03", PeriodType.MONTH),
    ("2026-M03 ", PeriodType.MONTH), ("26", PeriodType.YEAR),
])
def test_malformed_periods_are_refused_with_an_example(label: str, kind: PeriodType) -> None:
    with pytest.raises(ValidationError, match="write it like") as caught:
        Period.parse(label, kind)
    assert caught.value.reason is Reason.PERIOD_NOT_OPEN


def at_hanoi(y: int, m: int, d: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(y, m, d, hour, tzinfo=VIETNAM)


def test_a_period_is_open_from_its_closing_day_until_accept_days_after() -> None:
    r = regime(due_days=5, accept_days=30)
    march = Period.parse("2026-M03", PeriodType.MONTH)  # closes 14 March; due 19 March; accepted until 13 April
    assert r.due(march) == D(2026, 3, 19) and r.closes(march) == D(2026, 4, 13)
    with pytest.raises(ValidationError, match="has not closed yet") as early:
        r.check_open(march, at_hanoi(2026, 3, 13, 23))
    assert early.value.reason is Reason.PERIOD_NOT_OPEN
    r.check_open(march, at_hanoi(2026, 3, 14, 0))
    r.check_open(march, at_hanoi(2026, 4, 13, 23))
    with pytest.raises(ValidationError, match="was closed to reports on 2026-04-13") as closed:
        r.check_open(march, at_hanoi(2026, 4, 14, 0))
    assert closed.value.reason is Reason.PERIOD_NOT_OPEN


def test_days_are_counted_in_vietnam_time() -> None:
    r = regime(due_days=5, accept_days=30)
    march = Period.parse("2026-M03", PeriodType.MONTH)
    # 17:30 UTC on 13 March is 00:30 on the 14th in Hanoi: the closing day has come.
    r.check_open(march, dt.datetime(2026, 3, 13, 17, 30, tzinfo=dt.UTC))
    with pytest.raises(ValidationError):
        r.check_open(march, dt.datetime(2026, 3, 13, 16, 59, tzinfo=dt.UTC))
    # 23:30 UTC on the 19th (the due day) is already the 20th in Hanoi: one day late.
    assert not r.is_late(march, dt.datetime(2026, 3, 19, 16, 59, tzinfo=dt.UTC))
    assert r.is_late(march, dt.datetime(2026, 3, 19, 23, 30, tzinfo=dt.UTC))
    assert r.days_late(march, dt.datetime(2026, 3, 19, 23, 30, tzinfo=dt.UTC)) == 1
    assert r.days_late(march, dt.datetime(2026, 3, 29, 5, tzinfo=VIETNAM)) == 10
    assert r.days_late(march, dt.datetime(2026, 3, 19, 5)) == 0, "a naive time is UTC"


def test_late_and_closed_rules_for_a_year_across_the_year_boundary() -> None:
    r = regime(period_type=PeriodType.YEAR, due_days=20, accept_days=90)
    year = Period.parse("2026", PeriodType.YEAR)
    assert r.due(year) == D(2027, 1, 3) and r.closes(year) == D(2027, 3, 14)
    assert not r.is_late(year, at_hanoi(2027, 1, 3)) and r.is_late(year, at_hanoi(2027, 1, 4))
    r.check_open(year, at_hanoi(2026, 12, 14))
    with pytest.raises(ValidationError):
        r.check_open(year, at_hanoi(2026, 12, 13))


@pytest.mark.parametrize(("changes", "message"), [
    ({"code": "BC,KTXH"}, "String should match pattern"),
    ({"reporting": []}, "at least 1 item"),
    ({"reporting": ["G06"]}, "malformed agency code"),
    ({"reporting": ["group:Tỉnh"]}, "malformed group address"),
    ({"receiving": "group:provinces"}, "malformed agency code"),
    ({"reporting": [OFFICE, MINISTRY_A]}, "cannot report to itself"),
    ({"indicators": []}, "at least 1 item"),
    ({"indicators": [{"code": "A", "name": "a", "unit": ""}, {"code": "A", "name": "b", "unit": ""}]},
     "distinct"),
    ({"indicators": [{"code": "A=B", "name": "a", "unit": ""}]}, "String should match pattern"),
    ({"due_days": 10, "accept_days": 5}, "at least due_days"),
    ({"period_type": "WEEK"}, "Input should be"),
])
def test_bad_regimes_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        regime(**changes)


def test_a_regime_round_trips_as_json() -> None:
    r = regime()
    assert Regime.model_validate_json(r.model_dump_json()) == r
    assert r.indicator("GRDP") == Indicator(code="GRDP", name="Tăng trưởng GRDP", unit="%")
    assert r.indicator("NOPE") is None


@pytest.mark.parametrize("value", ["1e5", "NaN", "Infinity", " 12", "1_000", "1,5", "", "+3", "1.", ".5", "0x10"])
def test_indicator_values_are_plain_decimals(value: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="plain decimal"):
        IndicatorValue(indicator="GRDP", value=value)


def test_good_indicator_values() -> None:
    for value in ("0", "-0.25", "1234.5", "123456789012345678901234567890.123456789012345"):
        assert IndicatorValue(indicator="GRDP", value=value).value == value


def test_a_report_names_its_sender_regime_and_period_in_its_id() -> None:
    r = report()
    assert r.report_id == f"{MINISTRY_A},BC-KTXH,2026-M03" and r.sender == MINISTRY_A
    with pytest.raises(pydantic.ValidationError, match="must read"):
        Report(report_id=f"{MINISTRY_A},BC-KTXH,2026-M04", regime="BC-KTXH", period="2026-M03",
               values=(IndicatorValue(indicator="GRDP", value="1"),), time=dt.datetime.now(dt.UTC))
    with pytest.raises(pydantic.ValidationError, match="once per report"):
        Report(report_id=f"{MINISTRY_A},BC-KTXH,2026-M03", regime="BC-KTXH", period="2026-M03",
               values=(IndicatorValue(indicator="GRDP", value="1"), IndicatorValue(indicator="GRDP", value="2")),
               time=dt.datetime.now(dt.UTC))
    with pytest.raises(pydantic.ValidationError, match="at least 1 item"):
        Report(report_id=f"{MINISTRY_A},BC-KTXH,2026-M03", regime="BC-KTXH", period="2026-M03", values=(),
               time=dt.datetime.now(dt.UTC))
    with pytest.raises(LienthongError, match="malformed agency code"):
        make_report_id("G06", "BC-KTXH", "2026-M03")


def test_a_report_is_checked_against_its_regime() -> None:
    r = regime()
    assert report().check_against(r) == Period.parse("2026-M03", PeriodType.MONTH)
    with pytest.raises(ValidationError, match="has no indicator NOPE") as unknown:
        report(NOPE="1", GRDP="2").check_against(r)
    assert unknown.value.reason is Reason.UNKNOWN_INDICATOR
    with pytest.raises(ValidationError) as wrong_type:
        report(period="2026-Q1").check_against(r)
    assert wrong_type.value.reason is Reason.PERIOD_NOT_OPEN


class Regimes:
    def __init__(self, *regimes: Regime) -> None:
        self.known = {r.code: r for r in regimes}

    def regime(self, code: str) -> Regime:
        try:
            return self.known[code]
        except KeyError:
            raise LienthongError(f"no regime {code}", reason=Reason.UNKNOWN_REGIME) from None


def test_the_projector_keeps_the_latest_version_and_is_replay_safe(tmp_path: object) -> None:
    projector = ReportProjector("sqlite://", Regimes(regime()))
    try:
        first = report(time=dt.datetime(2026, 3, 16, tzinfo=dt.UTC), GRDP="6.1", THU_NSNN="100")
        fix = report(time=dt.datetime(2026, 3, 25, tzinfo=dt.UTC), GRDP="6.3")
        on_time = at_hanoi(2026, 3, 16)
        assert projector.project(first, MINISTRY_A, "m1", on_time)
        assert projector.project(fix, MINISTRY_A, "m2", at_hanoi(2026, 3, 25))
        assert projector.project(first, MINISTRY_A, "m1", on_time) is False, "a replay of the older one loses"
        assert projector.project(fix, MINISTRY_A, "m2", at_hanoi(2026, 3, 25)), "a replay of the kept one is a no-op"
        projector.project(report(sender=PROVINCE, GRDP="7"), PROVINCE, "m3", at_hanoi(2026, 3, 22))
        [a, p] = projector.submissions("BC-KTXH", "2026-M03")
        assert (a.agency, a.message_id, a.late) == (MINISTRY_A, "m2", False), "late counts the first"
        assert a.first_received_at == on_time and a.received_at == at_hanoi(2026, 3, 25)
        assert (p.agency, p.late, p.days_late) == (PROVINCE, True, 3)
        figures = {(f.agency, f.indicator): f.number for f in projector.figures("BC-KTXH", "2026-M03")}
        assert figures == {(MINISTRY_A, "GRDP"): Decimal("6.3"), (PROVINCE, "GRDP"): Decimal("7")}
    finally:
        projector.close()


def test_the_projector_keeps_a_report_whose_regime_it_cannot_find() -> None:
    projector = ReportProjector("sqlite://", Regimes())
    try:
        projector.project(report(), MINISTRY_A, "m1", at_hanoi(2026, 3, 16))
        [s] = projector.submissions("BC-KTXH", "2026-M03")
        assert s.late is None and s.days_late is None
    finally:
        projector.close()


def test_a_later_version_without_its_regime_keeps_the_lateness_found_before() -> None:
    regimes = Regimes(regime())
    projector = ReportProjector("sqlite://", regimes)
    try:
        projector.project(report(time=dt.datetime(2026, 4, 8, tzinfo=dt.UTC)), MINISTRY_A, "m1",
                          at_hanoi(2026, 4, 8))
        [before] = projector.submissions("BC-KTXH", "2026-M03")
        assert before.late and before.days_late == 20, "due on March 19 (closing day the 14th, plus 5 days)"
        regimes.known.clear()  # the regime was withdrawn from the directory since
        assert projector.project(report(time=dt.datetime(2026, 4, 9, tzinfo=dt.UTC), GRDP="6.4"), MINISTRY_A, "m2",
                                 at_hanoi(2026, 4, 9))
        [after] = projector.submissions("BC-KTXH", "2026-M03")
        assert (after.message_id, after.late, after.days_late) == ("m2", True, 20)
    finally:
        projector.close()
