"""The ballot projector: ballots and their answers as SQL rows in an agency's projections database, for the tally.

A receiver handler (`Receiver.connect(bus, agency, handlers=[projector])`): it sees each verified message after the
inbox stored it, and again after a crash, so every write is an insert-if-absent. One answer per member: the first
one projected stays, which is the first one routed (the router routes only that one, and an inbox is one partition).
The Office's own ballot does not come back to its inbox: `lienthong ballot open` records it with `record_ballot`.
An answer to a ballot not recorded here yet is kept aside, unchecked and out of the tally, until the ballot is
recorded; then the answers set aside are checked against it in the order they came, and only valid ones count.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    delete,
    select,
)
from sqlalchemy.engine import Connection

from consumers.projection import replay_ledger
from lienthong.ballots import Ballot, BallotAnswer, CastAnswer
from lienthong.db import as_utc, display_url, make_engine, upsert_insert
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
# Answers to a ballot not recorded here (yet): unchecked, so out of the one-per-member table and the tally.
pending_answers = Table(
    "ballot_answers_pending", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # the order they came in
    Column("message_id", String(64), nullable=False, unique=True),
    Column("ballot_id", Text, nullable=False, index=True),
    Column("member", String(16), nullable=False),
    Column("option", Text, nullable=False),
    Column("comment", Text, nullable=False),
    Column("answered_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
)
applied = replay_ledger(metadata, "ballot")


class BallotStore:
    """The ballots and answers tables of one projections database (SQLite or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        metadata.create_all(self.engine)

    def _insert_if_absent(self, conn: Connection, table: Table, values: dict[str, Any]) -> bool:
        """Insert unless the key (or another unique column) is there; True if inserted. RETURNING tells, where
        rowcount does not (psycopg 3 reports -1 for an INSERT … ON CONFLICT DO NOTHING)."""
        keys = list(table.primary_key.columns)
        stmt = upsert_insert(self.engine)(table).values(**values).on_conflict_do_nothing().returning(*keys)
        return conn.execute(stmt).first() is not None

    def record_ballot(self, ballot: Ballot) -> bool:
        """Keep a ballot; False if it was there already (the same ballot: a ballot cannot change once sent)."""
        known = self.find(ballot.ballot_id)
        if known is not None and known != ballot:
            raise ValidationError(f"ballot {ballot.ballot_id} is already recorded with other content; a ballot "
                                  "cannot change once sent: open a new one with another --number")
        with self.engine.begin() as conn:
            new = self._insert_if_absent(conn, ballots, {
                "ballot_id": ballot.ballot_id, "sender": ballot.sender, "question": ballot.question,
                "description": ballot.description, "options": json.dumps(list(ballot.options), ensure_ascii=False),
                "members": json.dumps(list(ballot.members)), "deadline": ballot.deadline.astimezone(dt.UTC),
                "recorded_at": dt.datetime.now(dt.UTC)})
            self._admit_pending(conn, ballot)
        return new

    def record_answer(self, member: str, answer: BallotAnswer, message_id: str,
                      delivered_at: dt.datetime | None) -> bool:
        """Keep a member's answer unless the member has one already; True if this one was new. The caller checked
        it against the recorded ballot."""
        with self.engine.begin() as conn:
            return self._insert_if_absent(conn, ballot_answers, {
                "ballot_id": answer.ballot_id, "member": member, "option": answer.option,
                "comment": answer.comment, "answered_at": answer.time.astimezone(dt.UTC),
                "delivered_at": delivered_at, "message_id": message_id})

    def set_aside(self, member: str, answer: BallotAnswer, message_id: str,
                  delivered_at: dt.datetime | None) -> bool:
        """Keep an answer to a ballot not recorded here yet, out of the tally; True if it was not set aside
        before. If the ballot was recorded meanwhile, the answer is admitted (or refused) at once."""
        with self.engine.begin() as conn:
            new = self._insert_if_absent(conn, pending_answers, {  # its message id is unique: set aside once
                "message_id": message_id, "ballot_id": answer.ballot_id, "member": member, "option": answer.option,
                "comment": answer.comment, "answered_at": answer.time.astimezone(dt.UTC),
                "delivered_at": delivered_at})
        ballot = self.find(answer.ballot_id)
        if ballot is not None:  # `ballot open` recorded it between our look and our write
            with self.engine.begin() as conn:
                self._admit_pending(conn, ballot)
        return new

    def _admit_pending(self, conn: Connection, ballot: Ballot) -> None:
        """Check the answers set aside for a ballot now recorded, in the order they came: the valid ones join the
        answers (still one per member), the others are dropped and logged."""
        c = pending_answers.c
        rows = conn.execute(select(pending_answers).where(c.ballot_id == ballot.ballot_id).order_by(c.id)).all()
        for row in rows:
            try:
                ballot.check_answer(row.member, row.option)
            except LienthongError as exc:
                log.warning("ballot answer set aside, not projected", extra={
                    "root_id": ballot.ballot_id, "message_id": row.message_id, "reason": exc.reason.value})
                continue
            self._insert_if_absent(conn, ballot_answers, {
                "ballot_id": row.ballot_id, "member": row.member, "option": row.option, "comment": row.comment,
                "answered_at": row.answered_at, "delivered_at": row.delivered_at, "message_id": row.message_id})
        if rows:
            conn.execute(delete(pending_answers).where(c.ballot_id == ballot.ballot_id))

    def pending(self, ballot_id: str | None = None) -> int:
        """How many answers wait for their ballot to be recorded."""
        query = select(pending_answers.c.id)
        if ballot_id is not None:
            query = query.where(pending_answers.c.ballot_id == ballot_id)
        with self.engine.connect() as conn:
            return len(conn.execute(query).all())

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
                      options=tuple(json.loads(row.options)), deadline=as_utc(row.deadline),
                      members=tuple(json.loads(row.members)))

    def answers(self, ballot_id: str) -> list[CastAnswer]:
        """The answers kept for a ballot, in the order the members answered."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(ballot_answers).where(ballot_answers.c.ballot_id == ballot_id)
                                .order_by(ballot_answers.c.answered_at, ballot_answers.c.member)).all()
        return [CastAnswer(r.member, r.option, r.comment, as_utc(r.answered_at),
                           as_utc(r.delivered_at)) for r in rows]

    def close(self) -> None:
        self.engine.dispose()


class BallotProjector:
    """A receiver handler that keeps ballots and answers in a BallotStore."""

    kinds = (MessageKind.BALLOT, MessageKind.BALLOT_ANSWER)
    ledger = applied

    def __init__(self, store: BallotStore) -> None:
        self.store = store
        self.engine = store.engine

    def __call__(self, message: Message, record: Record) -> None:
        self.project(message, record.time)

    def apply(self, message: Message, arrived: dt.datetime | None) -> bool:
        """`project`, for `consumers.projection`: True if the message changed the ballots or answers kept."""
        return bool(self.project(message, arrived))

    def project(self, message: Message, delivered_at: dt.datetime | None = None) -> str:
        """What one message changed: 'ballot', 'answer', or '' for a replay or a message of another kind."""
        payload = message.payload
        if isinstance(payload, Ballot):
            return "ballot" if self.store.record_ballot(payload) else ""
        if not isinstance(payload, BallotAnswer):
            return ""
        member = message.header.sender  # verified by the receiver: the answer is signed with this member's key
        ballot = self.store.find(payload.ballot_id)
        if ballot is None:  # not checkable yet: set aside until the ballot is recorded, out of the tally
            self.store.set_aside(member, payload, message.header.message_id, delivered_at)
            return ""
        try:
            ballot.check_answer(member, payload.option)
        except LienthongError as exc:
            # The router refuses these; one that got here anyway is kept out of the tally, and said so.
            log.warning("ballot answer not projected", extra={"root_id": payload.ballot_id,
                                                               "message_id": message.header.message_id,
                                                               "reason": exc.reason.value})
            return ""
        new = self.store.record_answer(member, payload, message.header.message_id, delivered_at)
        return "answer" if new else ""
