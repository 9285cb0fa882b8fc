"""The receiving agency's projection of reports: indicator values by regime, period, agency; late and missing."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    select,
    update,
)

from consumers.projection import replay_ledger
from consumers.receiver import Receiver
from lienthong.db import as_utc, make_engine
from lienthong.errors import LienthongError
from lienthong.messages import Message, MessageKind
from lienthong.reports import Period, Regime, Report, decimal_of
from lienthong.transport.client import Record
from lienthong.wiring import Bus

log = logging.getLogger(__name__)

# Tables of their own, prefixed, in the agency's projections database: other projections share that database.
metadata = MetaData()

submissions = Table(
    "report_submissions", metadata,
    Column("regime", String(64), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("agency", String(16), primary_key=True),
    Column("report_id", Text, nullable=False),
    Column("message_id", String(64), nullable=False),  # of the version whose values are kept
    Column("report_time", DateTime(timezone=True), nullable=False),  # when the agency issued that version
    Column("received_at", DateTime(timezone=True), nullable=False),  # when that version reached the inbox
    Column("first_received_at", DateTime(timezone=True), nullable=False),  # when the first version did: lateness
    Column("late", Boolean),  # NULL: the regime was not in the directory when the report was projected
    Column("days_late", Integer),
    Column("note", Text, nullable=False),
)
values = Table(
    "report_values", metadata,
    Column("regime", String(64), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("agency", String(16), primary_key=True),
    Column("indicator", String(64), primary_key=True),
    Column("value", String(64), nullable=False),  # exact decimal text, as it travelled
    Column("note", Text, nullable=False),
)
applied = replay_ledger(metadata, "report")


class RegimeSource(Protocol):
    """Where the projector finds a regime (a DirectoryView)."""

    def regime(self, code: str) -> Regime: ...


@dataclass(frozen=True)
class Submission:
    """The report an agency has in for a regime's period: its latest version and when the first one came."""

    regime: str
    period: str
    agency: str
    report_id: str
    message_id: str
    report_time: dt.datetime
    received_at: dt.datetime
    first_received_at: dt.datetime
    late: bool | None
    days_late: int | None
    note: str


@dataclass(frozen=True)
class IndicatorFigure:
    """One agency's value for one indicator."""

    agency: str
    indicator: str
    value: str
    note: str

    @property
    def number(self) -> Decimal:
        return decimal_of(self.value)


class ReportProjector:
    """A receiver handler: keeps each agency's latest report per regime and period. Idempotent and replay-safe:
    the version with the latest report time wins (the message id breaks a tie), whatever order they come in."""

    kinds = (MessageKind.REPORT,)
    ledger = applied

    def __init__(self, url: str, regimes: RegimeSource) -> None:
        self.engine = make_engine(url)
        metadata.create_all(self.engine)
        self.regimes = regimes

    def __call__(self, message: Message, record: Record) -> None:
        self.apply(message, record.time)

    def apply(self, message: Message, arrived: dt.datetime | None) -> bool:
        """Apply a verified message that arrived at `arrived` (its signed time if unknown); True if it changed the
        projection (a new report, a newer version, or an earlier first arrival)."""
        report = message.payload
        if not isinstance(report, Report):
            return False
        return self._project(report, message.header.sender, message.header.message_id,
                             arrived or message.header.created_at)[1]

    def project(self, report: Report, agency: str, message_id: str, arrived: dt.datetime) -> bool:
        """Apply one report version; True if its values are now the ones kept."""
        return self._project(report, agency, message_id, arrived)[0]

    def _project(self, report: Report, agency: str, message_id: str, arrived: dt.datetime) -> tuple[bool, bool]:
        """(whether this version's values are the ones kept, whether anything changed)."""
        # Stored in UTC: SQLite keeps a datetime's wall-clock time and drops its offset.
        arrived, issued = as_utc(arrived), as_utc(report.time)
        late: bool | None = None
        days_late: int | None = None
        try:
            regime = self.regimes.regime(report.regime)
            period = Period.parse(report.period, regime.period_type)
        except LienthongError as exc:
            # The router checked both; a regime withdrawn since is no reason to lose the values.
            log.warning("report projected without its regime: %s", exc.message,
                        extra={"message_id": message_id, "root_id": report.report_id})
            regime = None
        key = and_(submissions.c.regime == report.regime, submissions.c.period == report.period,
                   submissions.c.agency == agency)
        with self.engine.begin() as conn:
            row = conn.execute(select(submissions).where(key).with_for_update()).first()
            first = arrived if row is None else min(as_utc(row.first_received_at), arrived)
            if regime is not None:
                days_late = regime.days_late(period, first)
                late = days_late > 0
            if row is None:
                conn.execute(insert(submissions).values(
                    regime=report.regime, period=report.period, agency=agency, report_id=report.report_id,
                    message_id=message_id, report_time=issued, received_at=arrived, first_received_at=first,
                    late=late, days_late=days_late, note=report.note))
                self._replace_values(conn, report, agency)
                return True, True
            if row.message_id == message_id:  # a replay after a crash: values are there; lateness as first seen
                return True, False
            newer = (issued, message_id) > (as_utc(row.report_time), row.message_id)
            earlier = first < as_utc(row.first_received_at)
            # An older version changes no values, but may have arrived first: it still decides lateness. Lateness
            # is worked out only with the regime at hand: one withdrawn since leaves what was found before.
            changes: dict[str, object] = {"first_received_at": first}
            if regime is not None:
                changes |= {"late": late, "days_late": days_late}
            if newer:
                changes |= {"report_id": report.report_id, "message_id": message_id, "report_time": issued,
                            "received_at": arrived, "note": report.note}
            conn.execute(update(submissions).where(key).values(**changes))
            if newer:
                self._replace_values(conn, report, agency)
            return newer, newer or earlier

    @staticmethod
    def _replace_values(conn: Connection, report: Report, agency: str) -> None:
        conn.execute(delete(values).where(and_(values.c.regime == report.regime, values.c.period == report.period,
                                                values.c.agency == agency)))
        conn.execute(insert(values), [{"regime": report.regime, "period": report.period, "agency": agency,
                                       "indicator": v.indicator, "value": v.value, "note": v.note}
                                      for v in report.values])

    def submissions(self, regime: str, period: str) -> list[Submission]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(submissions).where(and_(submissions.c.regime == regime,
                                                               submissions.c.period == period))
                                .order_by(submissions.c.agency)).all()
        return [Submission(regime=r.regime, period=r.period, agency=r.agency, report_id=r.report_id,
                           message_id=r.message_id, report_time=as_utc(r.report_time),
                           received_at=as_utc(r.received_at), first_received_at=as_utc(r.first_received_at),
                           late=r.late, days_late=r.days_late, note=r.note) for r in rows]

    def figures(self, regime: str, period: str) -> list[IndicatorFigure]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(values).where(and_(values.c.regime == regime, values.c.period == period))
                                .order_by(values.c.indicator, values.c.agency)).all()
        return [IndicatorFigure(agency=r.agency, indicator=r.indicator, value=r.value, note=r.note) for r in rows]

    def close(self) -> None:
        self.engine.dispose()


def report_receiver(bus: Bus, agency: str, url: str | None = None) -> tuple[Receiver, ReportProjector]:
    """The receiving agency's inbox reader with the report projector as a handler; the projector looks regimes
    up in the directory the receiver follows, as it stands when each report is handled."""
    receiver = Receiver.connect(bus, agency)
    try:
        projector = ReportProjector(url or bus.settings.projections_db_url(), receiver.follower.view)
    except BaseException:
        receiver.close()
        raise
    receiver.handlers.append(projector)
    return receiver, projector
