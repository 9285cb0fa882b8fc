"""The ballot projector: ballots and their answers as SQL rows in an agency's projections database, for the tally.

A receiver handler (`Receiver.connect(bus, agency, handlers=[projector])`): it sees each verified message after the
inbox stored it, and again after a crash, so every write is an insert-if-absent. One answer per member: the first
one projected stays, which is the first one routed (the router routes only that one, and an inbox is one partition).
The Office's own ballot does not come back to its inbox: `lienthong ballot open` records it with `record_ballot`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    select,
)
from sqlalchemy import insert as sql_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from consumers.inbox_store import InboxStore
from consumers.inbox_store import messages as inbox_messages
from lienthong.ballots import Ballot, BallotAnswer, CastAnswer
from lienthong.db import display_url, make_engine
from lienthong.envelope import EnvelopeCodec
from lienthong.errors import LienthongError, NotFoundError, ValidationError
from lienthong.messages import Message, MessageKind
from lienthong.transport.client import Record

log = logging.getLogger(__name__)

metadata = MetaData()
ballots = Table(
    "ballots", metadata,
    Column("ballot_id", Text, primary_key=True),
    Column("sender", String(16), nullable=False),
    Column("question", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("options", Text, nullable=False),  # JSON array, in the ballot's order
    Column("members", Text, nullable=False),  # JSON array of agency codes, in the ballot's order
    Column("deadline", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
ballot_answers = Table(
    "ballot_answers", metadata,
    Column("ballot_id", Text, nullable=False),
    Column("member", String(16), nullable=False),
    Column("option", Text, nullable=False),
    Column("comment", Text, nullable=False),
    Column("answered_at", DateTime(timezone=True), nullable=False),  # the member's signed time
    Column("delivered_at", DateTime(timezone=True)),  # when the bus delivered it to the inbox
    Column("message_id", String(64), nullable=False),
    PrimaryKeyConstraint("ballot_id", "member"),
)


def _as_utc(value: dt.datetime) -> dt.datetime:
    """SQLite gives back naive times (stored as UTC), PostgreSQL aware ones."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else _as_utc(value)


@dataclass(frozen=True)
class Projected:
    """What one message changed: 'ballot', 'answer', or '' for a replay or a message of another kind."""

    what: str
    ballot_id: str = ""


class BallotStore:
    """The ballots and answers tables of one projections database (SQLite or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        metadata.create_all(self.engine)

    def _insert_if_absent(self, conn: Connection, table: Table, values: dict[str, Any]) -> bool:
        """Insert unless the key is there; True if inserted. RETURNING tells, where rowcount does not (psycopg 3
        reports -1 for an INSERT … ON CONFLICT DO NOTHING)."""
        dialect = self.engine.dialect.name
        keys = list(table.primary_key.columns)
        if dialect in ("postgresql", "sqlite"):
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = insert(table).values(**values).on_conflict_do_nothing().returning(*keys)
            return conn.execute(stmt).first() is not None
        # Another database: look first (one projector writes a store at a time).
        if conn.execute(select(*keys).where(*[c == values[c.name] for c in keys])).first() is not None:
            return False
        conn.execute(sql_insert(table).values(**values))
        return True

    def record_ballot(self, ballot: Ballot) -> bool:
        """Keep a ballot; False if it was there already (the same ballot: a ballot cannot change once sent)."""
        known = self.find(ballot.ballot_id)
        if known is not None and known != ballot:
            raise ValidationError(f"ballot {ballot.ballot_id} is already recorded with other content; a ballot "
                                  "cannot change once sent: open a new one with another --number")
        with self.engine.begin() as conn:
            return self._insert_if_absent(conn, ballots, {
                "ballot_id": ballot.ballot_id, "sender": ballot.sender, "question": ballot.question,
                "description": ballot.description, "options": json.dumps(list(ballot.options), ensure_ascii=False),
                "members": json.dumps(list(ballot.members)), "deadline": ballot.deadline.astimezone(dt.UTC),
                "recorded_at": dt.datetime.now(dt.UTC)})

    def record_answer(self, member: str, answer: BallotAnswer, message_id: str,
                      delivered_at: dt.datetime | None) -> bool:
        """Keep a member's answer unless the member has one already; True if this one was new."""
        with self.engine.begin() as conn:
            return self._insert_if_absent(conn, ballot_answers, {
                "ballot_id": answer.ballot_id, "member": member, "option": answer.option,
                "comment": answer.comment, "answered_at": answer.time.astimezone(dt.UTC),
                "delivered_at": delivered_at, "message_id": message_id})

    def ballot(self, ballot_id: str) -> Ballot:
        """The ballot recorded under this id, or an error that says where it was looked for."""
        found = self.find(ballot_id)
        if found is None:
            raise NotFoundError(f"no ballot {ballot_id} in {display_url(self.url)}; the Office records a ballot "
                                "when it opens it with `lienthong ballot open` (with the same LIENTHONG_HOME or "
                                "LIENTHONG_PROJECTIONS_URL)")
        return found

    def find(self, ballot_id: str) -> Ballot | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(ballots).where(ballots.c.ballot_id == ballot_id)).first()
        if row is None:
            return None
        return Ballot(ballot_id=row.ballot_id, question=row.question, description=row.description,
                      options=tuple(json.loads(row.options)), deadline=_as_utc(row.deadline),
                      members=tuple(json.loads(row.members)))

    def ballot_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r.ballot_id for r in conn.execute(select(ballots.c.ballot_id).order_by(ballots.c.deadline))]

    def answers(self, ballot_id: str) -> list[CastAnswer]:
        """The answers kept for a ballot, in the order the members answered."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(ballot_answers).where(ballot_answers.c.ballot_id == ballot_id)
                                .order_by(ballot_answers.c.answered_at, ballot_answers.c.member)).all()
        return [CastAnswer(r.member, r.option, r.comment, _as_utc(r.answered_at),
                           _utc(r.delivered_at)) for r in rows]

    def close(self) -> None:
        self.engine.dispose()


class BallotProjector:
    """A receiver handler that keeps ballots and answers in a BallotStore."""

    def __init__(self, store: BallotStore) -> None:
        self.store = store

    def __call__(self, message: Message, record: Record) -> None:
        delivered = dt.datetime.fromtimestamp(record.timestamp_ms / 1000, dt.UTC) if record.timestamp_ms else None
        self.project(message, delivered)

    def project(self, message: Message, delivered_at: dt.datetime | None = None) -> Projected:
        payload = message.payload
        if isinstance(payload, Ballot):
            return Projected("ballot" if self.store.record_ballot(payload) else "", payload.ballot_id)
        if not isinstance(payload, BallotAnswer):
            return Projected("")
        member = message.header.sender  # verified by the receiver: the answer is signed with this member's key
        ballot = self.store.find(payload.ballot_id)
        if ballot is not None:
            try:
                ballot.check_answer(member, payload.option)
            except LienthongError as exc:
                # The router refuses these; one that got here anyway is kept out of the tally, and said so.
                log.warning("ballot answer not projected", extra={"root_id": payload.ballot_id,
                                                                   "message_id": message.header.message_id,
                                                                   "reason": exc.reason.value})
                return Projected("")
        new = self.store.record_answer(member, payload, message.header.message_id, delivered_at)
        return Projected("answer" if new else "", payload.ballot_id)

    def project_inbox(self, inbox: InboxStore, envelopes: EnvelopeCodec) -> list[Projected]:
        """Project the ballots and answers an inbox already holds (stored by `lienthong inbox read`, say, which
        shares the receiver's consumer group), in the order they arrived; what is there already changes nothing.
        The bytes were verified when the receiver stored them."""
        kinds = (MessageKind.BALLOT.value, MessageKind.BALLOT_ANSWER.value)
        with inbox.engine.connect() as conn:
            rows = conn.execute(select(inbox_messages.c.signed, inbox_messages.c.received_at)
                                .where(inbox_messages.c.kind.in_(kinds))
                                .order_by(inbox_messages.c.received_at)).all()
        done: list[Projected] = []
        for row in rows:
            message = envelopes.decode_content(envelopes.read(row.signed))
            done.append(self.project(message, _utc(row.received_at)))
        return [p for p in done if p.what]
