"""The gateway's outbox: a signed message is stored before it is published, and published until acknowledged.

`send` succeeds as soon as the message is in the outbox; the relay publishes what is waiting, in the order it
was queued, and marks each entry sent once the broker acknowledged it. A crash between the broker's
acknowledgement and the mark makes the relay publish the entry again; the router's duplicate suppression
delivers it once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Row

from lienthong.db import as_utc, make_engine
from lienthong.errors import BrokerError
from lienthong.transport.client import Outgoing, Publisher, TlsClientConfig, broker_answers

log = logging.getLogger(__name__)

metadata = MetaData()
outbox = Table(
    "outbox", metadata,
    Column("seq", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False, unique=True),
    Column("agency", String(16), nullable=False, index=True),
    Column("root_id", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("key", LargeBinary),
    Column("value", LargeBinary, nullable=False),
    Column("headers", Text, nullable=False),
    Column("queued_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), index=True),
    Column("partition", Integer),
    Column("offset", BigInteger),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
)


@dataclass(frozen=True)
class OutboxEntry:
    seq: int
    message_id: str
    agency: str
    root_id: str
    outgoing: Outgoing
    queued_at: dt.datetime
    sent_at: dt.datetime | None
    partition: int | None
    offset: int | None
    attempts: int
    last_error: str | None


class Outbox:
    """Signed messages waiting to be published, and those already acknowledged."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        metadata.create_all(self.engine)

    def add(self, message_id: str, agency: str, root_id: str, record: Outgoing) -> None:
        """Queue a message; queuing the same message id twice keeps the first."""
        with self.engine.begin() as conn:
            if conn.execute(select(outbox.c.seq).where(outbox.c.message_id == message_id)).first():
                return
            conn.execute(insert(outbox).values(
                message_id=message_id, agency=agency, root_id=root_id, topic=record.topic, key=record.key,
                value=record.value, headers=json.dumps([[k, v.decode("latin-1")] for k, v in record.headers]),
                queued_at=dt.datetime.now(dt.UTC), attempts=0))

    @staticmethod
    def _entry(row: Row[Any]) -> OutboxEntry:
        m = row._mapping
        headers = [(k, v.encode("latin-1")) for k, v in json.loads(m["headers"])]
        return OutboxEntry(m["seq"], m["message_id"], m["agency"], m["root_id"],
                           Outgoing(m["topic"], m["value"], m["key"], headers),
                           as_utc(m["queued_at"]) or dt.datetime.now(dt.UTC), as_utc(m["sent_at"]), m["partition"],
                           m["offset"], m["attempts"], m["last_error"])

    def pending(self, limit: int = 1000) -> list[OutboxEntry]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox).where(outbox.c.sent_at.is_(None)).order_by(outbox.c.seq)
                                .limit(limit)).all()
        return [self._entry(r) for r in rows]

    def entries(self, *, include_sent: bool = False, limit: int = 1000) -> list[OutboxEntry]:
        query = select(outbox).order_by(outbox.c.seq.desc()).limit(limit)
        if not include_sent:
            query = query.where(outbox.c.sent_at.is_(None))
        with self.engine.connect() as conn:
            return [self._entry(r) for r in reversed(conn.execute(query).all())]

    def entry(self, message_id: str) -> OutboxEntry | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(outbox).where(outbox.c.message_id == message_id)).first()
        return self._entry(row) if row else None

    def waiting(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(outbox)
                                    .where(outbox.c.sent_at.is_(None))).scalar_one())

    def mark_sent(self, seq: int, partition: int, offset: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.seq == seq).values(
                sent_at=dt.datetime.now(dt.UTC), partition=partition, offset=offset,
                attempts=outbox.c.attempts + 1, last_error=None))

    def mark_failed(self, seq: int, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.seq == seq).values(
                attempts=outbox.c.attempts + 1, last_error=error[:2000]))

    def close(self) -> None:
        self.engine.dispose()


@dataclass(frozen=True)
class RelayResult:
    published: int
    waiting: int
    error: str | None = None


class Relay:
    """Publishes what waits in the outbox, oldest first, with an idempotent producer."""

    def __init__(self, box: Outbox, bootstrap: str, connect: Callable[[], Publisher],
                 tls: TlsClientConfig | None = None) -> None:
        self.outbox = box
        self._bootstrap = bootstrap
        self._tls = tls
        self._connect = connect
        self._publisher: Publisher | None = None

    def flush(self, timeout_s: float = 30.0) -> RelayResult:
        """Publish every waiting entry; stop at the first failure and leave it and the rest waiting."""
        published = 0
        entries = self.outbox.pending()
        if not entries:
            return RelayResult(0, 0)
        try:
            if self._publisher is None:
                if not broker_answers(self._bootstrap, timeout_s=min(timeout_s, 5.0), tls=self._tls):
                    raise BrokerError(f"the broker at {self._bootstrap} does not answer")
                self._publisher = self._connect()
            while entries:
                futures = [(e, self._publisher.send(e.outgoing)) for e in entries]
                for entry, future in futures:
                    try:
                        meta = future.get(timeout=timeout_s)
                    except Exception as exc:
                        self.outbox.mark_failed(entry.seq, repr(exc))
                        raise BrokerError(f"broker did not acknowledge {entry.message_id}: {exc!r}") from exc
                    self.outbox.mark_sent(entry.seq, meta.partition, meta.offset)
                    published += 1
                entries = self.outbox.pending()
        except BrokerError as exc:
            log.warning("outbox relay stopped; entries wait for the next attempt", extra={"error": exc.message})
            self.close()
            return RelayResult(published, self.outbox.waiting(), exc.message)
        return RelayResult(published, 0)

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close(2)
            self._publisher = None
