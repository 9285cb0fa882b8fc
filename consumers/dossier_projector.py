"""The dossier projector: the latest status of every dossier, from the status batches in the national portal's inbox.

Latest wins by the event's own time, not by arrival: an event that comes late or twice changes nothing it should
not. Two events of one dossier are ordered by (time, status rank, event digest): at the same millisecond the status
further along the handling order wins (a dossier received and refused in one click ends refused), and two events
that agree on both are ordered by the SHA-256 of their fields, so every order of arrival and every replay gives the
same row. A repeat of an event has the same key and so changes nothing, not even the message it is said to come in.

A dossier belongs to the portal that first reported it: an event from any other portal changes neither its row nor
its steps (any agency could otherwise take a dossier over by signing a later time). Such an event is kept in
`dossier_conflicts` and logged, for a person to look into.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    or_,
    select,
)

from consumers.projection import replay_ledger
from lienthong.db import make_engine, upsert_insert
from lienthong.dossiers import DossierStatus, DossierStatusBatch, DossierStatusEvent, OwnerKind
from lienthong.messages import Message, MessageKind
from lienthong.records import from_millis, to_millis
from lienthong.reports import VIETNAM
from lienthong.transport.client import Record

log = logging.getLogger(__name__)

metadata = MetaData()
# The latest status of each dossier, with the portal that reported it and the message it came in.
dossier_status = Table(
    "dossier_status", metadata,
    Column("dossier_code", String(128), primary_key=True),
    Column("procedure_code", String(128), nullable=False),
    Column("field", Text, nullable=False),
    Column("owner_kind", String(16), nullable=False),
    Column("received_date", Date, nullable=False),
    Column("due_date", Date),
    Column("status", String(32), nullable=False),
    Column("handling_unit", Text, nullable=False),
    Column("handler", Text, nullable=False),
    Column("time_ms", BigInteger, nullable=False),  # the event's time, ms since the epoch (UTC): the order
    Column("status_rank", Integer, nullable=False),  # then this
    Column("digest", LargeBinary(32), nullable=False),  # then this: SHA-256 of the event's fields
    Column("portal", String(16), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("batch_id", Text, nullable=False),
)
# Every distinct event once: the steps `lienthong dossier show` lists.
dossier_steps = Table(
    "dossier_steps", metadata,
    Column("digest", LargeBinary(32), primary_key=True),
    Column("dossier_code", String(128), nullable=False, index=True),
    Column("time_ms", BigInteger, nullable=False),
    Column("status", String(32), nullable=False),
    Column("handling_unit", Text, nullable=False),
    Column("handler", Text, nullable=False),
    Column("portal", String(16), nullable=False),
    Column("message_id", String(64), nullable=False),
)
# Events about a dossier from a portal other than the one that first reported it: not applied, kept once each.
dossier_conflicts = Table(
    "dossier_conflicts", metadata,
    Column("digest", LargeBinary(32), primary_key=True),
    Column("portal", String(16), primary_key=True),  # the portal that sent it
    Column("dossier_code", String(128), nullable=False, index=True),
    Column("owner_portal", String(16), nullable=False),  # the portal the dossier belongs to
    Column("time_ms", BigInteger, nullable=False),
    Column("status", String(32), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("batch_id", Text, nullable=False),
)
applied = replay_ledger(metadata, "dossier")

_STATUS_COLUMNS = [c.name for c in dossier_status.columns if c.name != "dossier_code"]


def event_digest(event: DossierStatusEvent) -> bytes:
    """SHA-256 of every field of an event as canonical JSON (sorted keys, no spaces, UTF-8; the time in ms): its
    identity, and the last tie-breaker. JSON frames each field, so no two events share the text."""
    fields = {"dossier_code": event.dossier_code, "procedure_code": event.procedure_code, "field": event.field,
              "owner_kind": event.owner_kind.value, "received_date": event.received_date.isoformat(),
              "due_date": event.due_date.isoformat() if event.due_date else None, "status": event.status.value,
              "handling_unit": event.handling_unit, "handler": event.handler, "time_ms": to_millis(event.time)}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).digest()


def _row(event: DossierStatusEvent, portal: str, message_id: str, batch_id: str) -> dict[str, Any]:
    return {"dossier_code": event.dossier_code, "procedure_code": event.procedure_code, "field": event.field,
            "owner_kind": event.owner_kind.value, "received_date": event.received_date, "due_date": event.due_date,
            "status": event.status.value, "handling_unit": event.handling_unit, "handler": event.handler,
            "time_ms": to_millis(event.time), "status_rank": event.status.rank, "digest": event_digest(event),
            "portal": portal, "message_id": message_id, "batch_id": batch_id}


def _key(row: dict[str, Any]) -> tuple[int, int, bytes]:
    return row["time_ms"], row["status_rank"], row["digest"]


@dataclass(frozen=True)
class Conflict:
    """An event a portal sent about a dossier another portal reported first: kept aside, not applied."""

    dossier_code: str
    portal: str
    owner_portal: str
    time: dt.datetime
    status: DossierStatus
    message_id: str
    batch_id: str


@dataclass(frozen=True)
class Step:
    time: dt.datetime
    status: DossierStatus
    handling_unit: str
    handler: str
    portal: str


@dataclass(frozen=True)
class DossierState:
    """Where a dossier is: its latest status event, who reported it and in which message."""

    dossier_code: str
    procedure_code: str
    field: str
    owner_kind: OwnerKind
    received_date: dt.date
    due_date: dt.date | None
    status: DossierStatus
    handling_unit: str
    handler: str
    time: dt.datetime
    portal: str
    message_id: str
    batch_id: str

    def days_overdue(self, today: dt.date) -> int:
        """Days past the due date: today for a dossier still being handled, the day it finished otherwise;
        0 when it is (or was finished) in time or has no due date."""
        if self.due_date is None:
            return 0
        until = self.time.astimezone(VIETNAM).date() if self.status.finished else today
        return max((until - self.due_date).days, 0)


class DossierStore:
    """The dossier tables in the projections database (SQLite or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url)
        metadata.create_all(self.engine)
        insert = upsert_insert(self.engine)
        latest = insert(dossier_status)
        new, old = latest.excluded, dossier_status.c
        later = or_(new.time_ms > old.time_ms,
                    and_(new.time_ms == old.time_ms, or_(
                        new.status_rank > old.status_rank,
                        and_(new.status_rank == old.status_rank, new.digest > old.digest))))
        # The portal check here too: a conflict is sorted out before the upsert, this holds if two writers race.
        self._upsert = latest.on_conflict_do_update(
            index_elements=[old.dossier_code], set_={name: new[name] for name in _STATUS_COLUMNS},
            where=and_(later, old.portal == new.portal))
        self._add_steps = insert(dossier_steps).on_conflict_do_nothing(index_elements=["digest"])
        self._add_conflicts = insert(dossier_conflicts).on_conflict_do_nothing()

    def apply(self, batch: DossierStatusBatch, portal: str, message_id: str) -> int:
        """Apply a verified batch in one transaction; returns the number of its events applied (the others are
        about dossiers another portal owns, and are kept as conflicts)."""
        rows = [_row(e, portal, message_id, batch.batch_id) for e in batch.events]
        return self.apply_rows(rows)

    def apply_rows(self, rows: Sequence[dict[str, Any]]) -> int:
        """Apply rows of events (of one portal or several) in one transaction; returns how many were applied."""
        if not rows:
            return 0
        with self.engine.begin() as conn:
            owners = self._owners(conn, {row["dossier_code"] for row in rows})
            mine = [row for row in rows if owners.setdefault(row["dossier_code"], row["portal"]) == row["portal"]]
            theirs = [row for row in rows if owners[row["dossier_code"]] != row["portal"]]
            # Only each dossier's latest event of the batch goes to the upsert: fewer statements, and PostgreSQL
            # refuses a multi-row INSERT … ON CONFLICT DO UPDATE that touches one row twice.
            latest: dict[str, dict[str, Any]] = {}
            for row in mine:
                seen = latest.get(row["dossier_code"])
                if seen is None or _key(row) > _key(seen):
                    latest[row["dossier_code"]] = row
            if mine:
                steps = {row["digest"]: {c.name: row[c.name] for c in dossier_steps.columns} for row in mine}
                conn.execute(self._upsert, list(latest.values()))
                conn.execute(self._add_steps, list(steps.values()))
            if theirs:
                conn.execute(self._add_conflicts, list({(row["digest"], row["portal"]): {
                    **{c.name: row[c.name] for c in dossier_conflicts.columns if c.name != "owner_portal"},
                    "owner_portal": owners[row["dossier_code"]]} for row in theirs}.values()))
                log.warning("dossier events from a portal that does not own the dossier kept as conflicts, not "
                            "applied", extra={"events": len(theirs), "message_id": theirs[0]["message_id"],
                                              "root_id": theirs[0]["batch_id"]})
        return len(mine)

    @staticmethod
    def _owners(conn: Connection, codes: set[str]) -> dict[str, str]:
        """The portal each of these dossiers belongs to, for those already known."""
        found: dict[str, str] = {}
        ordered = sorted(codes)
        for start in range(0, len(ordered), 500):
            c = dossier_status.c
            found.update((r.dossier_code, r.portal) for r in conn.execute(
                select(c.dossier_code, c.portal).where(c.dossier_code.in_(ordered[start:start + 500]))))
        return found

    def conflicts(self, code: str | None = None) -> list[Conflict]:
        """Events kept aside because another portal owns their dossier, by dossier and time."""
        c = dossier_conflicts.c
        query = select(dossier_conflicts).order_by(c.dossier_code, c.time_ms, c.portal)
        if code is not None:
            query = query.where(c.dossier_code == code)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [Conflict(r.dossier_code, r.portal, r.owner_portal, from_millis(r.time_ms), DossierStatus(r.status),
                         r.message_id, r.batch_id) for r in rows]

    def get(self, code: str) -> DossierState | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(dossier_status).where(dossier_status.c.dossier_code == code)).mappings().first()
        if row is None:
            return None
        return DossierState(
            dossier_code=row["dossier_code"], procedure_code=row["procedure_code"], field=row["field"],
            owner_kind=OwnerKind(row["owner_kind"]), received_date=row["received_date"], due_date=row["due_date"],
            status=DossierStatus(row["status"]), handling_unit=row["handling_unit"], handler=row["handler"],
            time=from_millis(row["time_ms"]), portal=row["portal"], message_id=row["message_id"],
            batch_id=row["batch_id"])

    def steps(self, code: str) -> list[Step]:
        """Every distinct event of a dossier, in the order of their times (the same order the latest wins by)."""
        c = dossier_steps.c
        query = select(dossier_steps).where(c.dossier_code == code)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        ordered = sorted(rows, key=lambda r: (r["time_ms"], DossierStatus(r["status"]).rank, r["digest"]))
        return [Step(from_millis(r["time_ms"]), DossierStatus(r["status"]), r["handling_unit"], r["handler"],
                     r["portal"]) for r in ordered]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(dossier_status)).scalar_one())

    def table(self) -> list[dict[str, Any]]:
        """Every row of the latest-status table, by dossier code: what a replay must give again."""
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(dossier_status).order_by(dossier_status.c.dossier_code))
                    .mappings().all()]

    def close(self) -> None:
        self.engine.dispose()


class DossierProjector:
    """A receiver handler: every verified dossier status batch into the store; other kinds pass by. Idempotent,
    so the receiver may call it again with a message after a crash."""

    kinds = (MessageKind.DOSSIER_STATUS,)
    ledger = applied

    def __init__(self, store: DossierStore) -> None:
        self.store = store
        self.engine = store.engine
        self.batches = 0
        self.events = 0

    def __call__(self, message: Message, record: Record | None = None) -> None:
        self.apply(message, None)

    def apply(self, message: Message, arrived: dt.datetime | None) -> bool:
        """Apply a verified batch (the event times order it, not its arrival); True for a batch, whose events
        are applied again harmlessly if they were before."""
        payload = message.payload
        if not isinstance(payload, DossierStatusBatch):
            return False
        self.events += self.store.apply(payload, message.header.sender, message.header.message_id)
        self.batches += 1
        log.info("dossier batch projected", extra={"message_id": message.header.message_id,
                                                    "root_id": message.header.root_id, "events": len(payload.events)})
        return True

    def replay(self, messages: Iterable[Message]) -> int:
        """Apply stored messages again (a rebuild); returns the number of events applied."""
        before = self.events
        for message in messages:
            self(message)
        return self.events - before
