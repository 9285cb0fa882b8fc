"""The auditor's questions, answered from the audit store: find events, list what is overdue, count per agency."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select

from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.audit.store import EVENT_COLUMNS, AuditStore, audit_events, event_from_values
from lienthong.messages import MessageKind
from lienthong.notices import StatusCode
from lienthong.records import to_millis


@dataclass(frozen=True)
class EventFilter:
    """What to look for; every field narrows the search."""

    document: str | None = None
    sender: str | None = None
    recipient: str | None = None
    status: str | None = None
    event: AuditEventType | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 1000


def find(store: AuditStore, f: EventFilter) -> list[AuditEvent]:
    """Audit events matching the filter, oldest first."""
    c = audit_events.c
    query = select(*EVENT_COLUMNS).order_by(c.seq).limit(f.limit)
    for column, value in ((c.root_id, f.document), (c.sender, f.sender), (c.recipient, f.recipient),
                          (c.status, f.status), (c.event, f.event.value if f.event else None)):
        if value is not None:
            query = query.where(column == value)
    if f.since is not None:
        query = query.where(c.at_ms >= to_millis(f.since))
    if f.until is not None:
        query = query.where(c.at_ms < to_millis(f.until))
    with store.engine.connect() as conn:
        return [event_from_values(row) for row in conn.execute(query)]


@dataclass(frozen=True)
class Overdue:
    """A recipient that has not accepted (or rejected) a document delivered to it more than the deadline ago."""

    document_id: str
    sender: str
    recipient: str
    delivered_at: dt.datetime
    last_status: str | None
    hours_waiting: float


def _document_story(store: AuditStore, since: dt.datetime | None = None) -> tuple[list[AuditEvent], list[AuditEvent]]:
    deliveries = [e for e in find(store, EventFilter(event=AuditEventType.DELIVERED, since=since, limit=10**9))
                  if e.kind == MessageKind.DOCUMENT.value]
    statuses = find(store, EventFilter(event=AuditEventType.STATUS, since=since, limit=10**9))
    return deliveries, statuses


def overdue(store: AuditStore, hours: float, now: dt.datetime) -> list[Overdue]:
    """Deliveries older than `hours` whose recipient has sent neither 03 (accepted) nor 02 (rejected)."""
    deliveries, statuses = _document_story(store)
    latest: dict[tuple[str, str], str] = {}
    answered: set[tuple[str, str]] = set()
    for s in statuses:
        key = (s.root_id or "", s.sender or "")
        latest[key] = s.status or ""
        if s.status in (StatusCode.ACCEPTED.value, StatusCode.REJECTED.value):
            answered.add(key)
    deadline = now - dt.timedelta(hours=hours)
    out = []
    for d in deliveries:
        key = (d.root_id or "", d.recipient or "")
        if d.at <= deadline and key not in answered:
            out.append(Overdue(key[0], d.sender or "", key[1], d.at, latest.get(key),
                               round((now - d.at).total_seconds() / 3600, 1)))
    return sorted(out, key=lambda o: o.delivered_at)


@dataclass
class AgencyFigures:
    agency: str
    sent: int = 0
    received: int = 0
    rejected: int = 0
    accepted: int = 0
    median_seconds_to_accept: float | None = None


def agency_figures(store: AuditStore, since: dt.datetime | None = None) -> list[AgencyFigures]:
    """Per agency: documents sent, documents received, rejections it sent, and its median time to accept."""
    figures: dict[str, AgencyFigures] = {}

    def of(code: str) -> AgencyFigures:
        return figures.setdefault(code, AgencyFigures(code))

    for e in find(store, EventFilter(event=AuditEventType.ROUTED, since=since, limit=10**9)):
        if e.kind == MessageKind.DOCUMENT.value and e.sender:  # one ROUTED per accepted document: no refused copies
            of(e.sender).sent += 1
    deliveries, statuses = _document_story(store, since)
    delivered_at: dict[tuple[str, str], dt.datetime] = {}
    for d in deliveries:
        of(d.recipient or "").received += 1
        delivered_at.setdefault((d.root_id or "", d.recipient or ""), d.at)
    waits: dict[str, list[float]] = defaultdict(list)
    for s in statuses:
        who = of(s.sender or "")
        if s.status == StatusCode.REJECTED.value:
            who.rejected += 1
        elif s.status == StatusCode.ACCEPTED.value:
            who.accepted += 1
            start = delivered_at.get((s.root_id or "", s.sender or ""))
            if start is not None:
                waits[who.agency].append((s.at - start).total_seconds())
    for code, values in waits.items():
        figures[code].median_seconds_to_accept = round(statistics.median(values), 3)
    return sorted(figures.values(), key=lambda f: f.agency)
