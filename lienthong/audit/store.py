"""The audit store in SQL: one row per audit event, written idempotently by the projector."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, Text, func, select
from sqlalchemy.dialects import postgresql, sqlite

from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.db import make_engine
from lienthong.errors import ConfigurationError

metadata = MetaData()

audit_events = Table(
    "audit_events", metadata,
    Column("seq", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True, autoincrement=True),
    Column("event_id", String(200), nullable=False, unique=True),
    Column("event", String(16), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("message_id", String(64), index=True),
    Column("root_id", Text, index=True),
    Column("kind", String(16)),
    Column("sender", String(16), index=True),
    Column("recipient", String(16), index=True),
    Column("status", String(2)),
    Column("reason_code", String(40)),
    Column("reason", Text),
    Column("source_topic", Text, nullable=False),
    Column("source_partition", Integer, nullable=False),
    Column("source_offset", BigInteger, nullable=False),
)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


class AuditStore:
    """Insert audit events once each; read them back by document."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        metadata.create_all(self.engine)
        self._dialect = self.engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise ConfigurationError(f"the audit store runs on SQLite or PostgreSQL, not {self._dialect}")

    def add(self, events: Iterable[AuditEvent]) -> None:
        """Insert the events whose event_id is new, in one transaction; known event_ids are skipped."""
        rows = [{**e.model_dump(), "event": e.event.value} for e in events]
        if not rows:
            return
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        stmt = insert(audit_events).on_conflict_do_nothing(index_elements=["event_id"])
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)

    def events(self, root_id: str | None = None) -> list[AuditEvent]:
        query = select(audit_events).order_by(audit_events.c.seq)
        if root_id is not None:
            query = query.where(audit_events.c.root_id == root_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [AuditEvent(**{**{k: v for k, v in row.items() if k != "seq"},
                              "at": _utc(row["at"]), "event": AuditEventType(row["event"])}) for row in rows]

    def count(self, event: AuditEventType | None = None) -> int:
        query = select(func.count()).select_from(audit_events)
        if event is not None:
            query = query.where(audit_events.c.event == event.value)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def close(self) -> None:
        self.engine.dispose()
