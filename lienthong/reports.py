"""Reports of the Government reporting system (Decree 09/2019/ND-CP): regimes, periods and reports."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lienthong.agencies import AgencyCode, check_address, check_agency_code
from lienthong.errors import Reason, ValidationError

# Reporting days are Vietnamese calendar days: a report sent at 23:30 UTC on the 14th arrives on the 15th in Hanoi.
VIETNAM = dt.timezone(dt.timedelta(hours=7), "ICT")


class PeriodType(StrEnum):
    """The names are the Avro enum symbols."""

    MONTH = "MONTH"
    QUARTER = "QUARTER"
    HALF_YEAR = "HALF_YEAR"
    YEAR = "YEAR"


# Years from 1001: the first period of a year starts on 15 December of the year before, which must be a date too.
# Years 1900-2999: wide enough for any report, and far enough from 9999 that a closing day plus accept_days
# (up to ten years) is still a date (a signed report for 9999-M12 once made the router's date arithmetic overflow).
_YEAR = r"(19\d\d|2\d\d\d)"
_PERIOD = {
    PeriodType.MONTH: re.compile(rf"^{_YEAR}-M(0[1-9]|1[0-2])$"),
    PeriodType.QUARTER: re.compile(rf"^{_YEAR}-Q([1-4])$"),
    PeriodType.HALF_YEAR: re.compile(rf"^{_YEAR}-H([12])$"),
    PeriodType.YEAR: re.compile(rf"^{_YEAR}$"),
}
# Codes travel inside report ids ("<sender>,<regime>,<period>") and on the command line as CODE=VALUE.
_CODE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# A decimal as every reader can parse it (Java's BigDecimal, .NET's decimal, JavaScript libraries): no exponent,
# no spaces, no digit separators, no NaN or Infinity, which Python's Decimal would all accept.
_DECIMAL = re.compile(r"^-?[0-9]{1,30}(\.[0-9]{1,15})?$")
_EXAMPLE = {PeriodType.MONTH: "2026-M03", PeriodType.QUARTER: "2026-Q1", PeriodType.HALF_YEAR: "2026-H1",
            PeriodType.YEAR: "2026"}


def _day_15_before(year: int, month: int) -> dt.date:
    """The 15th of the month before (year, month): where a Decree 09 period starts."""
    return dt.date(year - 1, 12, 15) if month == 1 else dt.date(year, month - 1, 15)


class Period(BaseModel):
    """One reporting period. Decree 09/2019, Article 12: data close on the 14th; a month runs from the 15th of the
    month before to the 14th, a quarter from the 15th of the month before it to the 14th of its last month, the
    half-years 15 Dec–14 Jun and 15 Jun–14 Dec, the year 15 Dec–14 Dec."""

    model_config = ConfigDict(frozen=True)

    type: PeriodType
    label: str
    start: dt.date
    end: dt.date  # the closing day, inclusive

    @classmethod
    def parse(cls, label: str, period_type: PeriodType) -> Period:
        # Matched as written, not stripped: the label is part of the report id and the projections' keys.
        match = _PERIOD[period_type].match(label)
        if match is None:
            raise ValidationError(f"period {label!r} is not a {period_type.value.lower().replace('_', '-')} period; "
                                  f"write it like {_EXAMPLE[period_type]}", reason=Reason.PERIOD_NOT_OPEN)
        year = int(match.group(1))
        if period_type is PeriodType.MONTH:
            last_month = int(match.group(2))
            first_month = last_month
        elif period_type is PeriodType.QUARTER:
            last_month = 3 * int(match.group(2))
            first_month = last_month - 2
        elif period_type is PeriodType.HALF_YEAR:
            last_month = 6 * int(match.group(2))
            first_month = last_month - 5
        else:
            first_month, last_month = 1, 12
        return cls(type=period_type, label=label, start=_day_15_before(year, first_month),
                   end=dt.date(year, last_month, 14))

    @classmethod
    def containing(cls, day: dt.date, period_type: PeriodType) -> Period:
        """The period whose days include `day`."""
        # A day from the 15th on belongs to the period that closes on the 14th of the next month.
        year, month = (day.year, day.month) if day.day <= 14 else (
            (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1))
        if period_type is PeriodType.MONTH:
            label = f"{year}-M{month:02d}"
        elif period_type is PeriodType.QUARTER:
            label = f"{year}-Q{(month - 1) // 3 + 1}"
        elif period_type is PeriodType.HALF_YEAR:
            label = f"{year}-H{1 if month <= 6 else 2}"
        else:
            label = str(year)
        return cls.parse(label, period_type)

    def previous(self) -> Period:
        """The period just before this one, of the same type."""
        return Period.containing(self.start - dt.timedelta(days=1), self.type)


def vietnam_day(at: dt.datetime) -> dt.date:
    """The calendar day in Hanoi at `at`; a naive time is taken as UTC, as everything stored is."""
    return (at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)).astimezone(VIETNAM).date()


class Indicator(BaseModel):
    """One figure a regime asks for: its code, its name and the unit its values are in."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(pattern=_CODE)
    name: str = Field(min_length=1)
    unit: str


class Regime(BaseModel):
    """A reporting regime: who reports what to whom, how often, and when a report is late or too late."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(pattern=_CODE)
    name: str = Field(min_length=1)
    period_type: PeriodType
    reporting: tuple[str, ...] = Field(min_length=1, description="Agency codes or group:<name> addresses")
    receiving: AgencyCode
    indicators: tuple[Indicator, ...] = Field(min_length=1)
    due_days: int = Field(5, ge=0, le=366)
    accept_days: int = Field(60, ge=0, le=3660)

    @field_validator("reporting")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_address(a) for a in value)

    @model_validator(mode="after")
    def _consistent(self) -> Regime:
        codes = [i.code for i in self.indicators]
        if len(set(codes)) != len(codes):
            raise ValueError(f"regime {self.code}: indicator codes must be distinct")
        if self.receiving in self.reporting:
            raise ValueError(f"regime {self.code}: the receiving agency {self.receiving} cannot report to itself")
        if self.accept_days < self.due_days:
            raise ValueError(f"regime {self.code}: accept_days ({self.accept_days}) must be at least due_days "
                             f"({self.due_days})")
        return self

    def indicator(self, code: str) -> Indicator | None:
        return next((i for i in self.indicators if i.code == code), None)

    def due(self, period: Period) -> dt.date:
        """The last day a report for the period is on time."""
        return period.end + dt.timedelta(days=self.due_days)

    def closes(self, period: Period) -> dt.date:
        """The last day a report for the period is accepted at all."""
        return period.end + dt.timedelta(days=self.accept_days)

    def check_open(self, period: Period, at: dt.datetime) -> None:
        """Raise unless a report for `period` may be received at `at`: from its closing day to `accept_days` after."""
        day = vietnam_day(at)
        if day < period.end:
            raise ValidationError(f"period {period.label} of regime {self.code} has not closed yet: its data close "
                                  f"on {period.end}, and its reports are accepted from that day until "
                                  f"{self.closes(period)}", reason=Reason.PERIOD_NOT_OPEN)
        if day > self.closes(period):
            raise ValidationError(f"period {period.label} of regime {self.code} was closed to reports on "
                                  f"{self.closes(period)} ({self.accept_days} days after its closing day)",
                                  reason=Reason.PERIOD_NOT_OPEN)

    def is_late(self, period: Period, at: dt.datetime) -> bool:
        """True if a report arriving at `at` comes after the due day (Vietnam time)."""
        return self.days_late(period, at) > 0

    def days_late(self, period: Period, at: dt.datetime) -> int:
        """Days after the due day a report arriving at `at` is; 0 if on time."""
        return max(0, (vietnam_day(at) - self.due(period)).days)


def check_decimal(value: str) -> str:
    """The value if it is a plain decimal number such as 1234.5 or -0.25, else raise."""
    if not _DECIMAL.match(value):
        raise ValueError(f"indicator value {value!r} is not a plain decimal number (digits, an optional '-' "
                         "and an optional '.' with decimals, e.g. 1234.5)")
    return value


def decimal_of(value: str) -> Decimal:
    """The exact number of a checked indicator value."""
    return Decimal(check_decimal(value))


class IndicatorValue(BaseModel):
    """The value a report gives for one indicator, exact, as text in the indicator's unit."""

    model_config = ConfigDict(frozen=True)

    indicator: str = Field(min_length=1)
    value: str
    note: str = ""

    @field_validator("value")
    @classmethod
    def _decimal(cls, value: str) -> str:
        return check_decimal(value)


def make_report_id(sender: str, regime: str, period: str) -> str:
    """The id (and root id) of an agency's report for a regime's period; sending it again is a correction."""
    return f"{check_agency_code(sender)},{regime},{period}"


class Report(BaseModel):
    """Regime + period + reporting agency (the sender) + indicator values."""

    model_config = ConfigDict(frozen=True)

    report_id: str
    regime: str = Field(pattern=_CODE)
    period: str = Field(min_length=1)
    values: tuple[IndicatorValue, ...] = Field(min_length=1)
    note: str = ""
    time: dt.datetime

    @model_validator(mode="after")
    def _consistent(self) -> Report:
        sender, _, rest = self.report_id.partition(",")
        check_agency_code(sender)
        if rest != f"{self.regime},{self.period}":
            raise ValueError(f"report id {self.report_id!r} must read <sender code>,{self.regime},{self.period}")
        codes = [v.indicator for v in self.values]
        if len(set(codes)) != len(codes):
            raise ValueError("each indicator is reported once per report")
        return self

    @property
    def sender(self) -> str:
        return self.report_id.partition(",")[0]

    def check_against(self, regime: Regime) -> Period:
        """The report's period, if the report fits the regime; raise with the first thing that does not."""
        period = Period.parse(self.period, regime.period_type)
        unknown = [v.indicator for v in self.values if regime.indicator(v.indicator) is None]
        if unknown:
            raise ValidationError(f"regime {regime.code} has no indicator {', '.join(unknown)}",
                                  reason=Reason.UNKNOWN_INDICATOR)
        return period
