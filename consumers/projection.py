"""Projections fed from an agency's inbox: what the inbox store holds already, then the receiver loop.

A projector sees a message either live, as a receiver handler, or later from the inbox store: `lienthong inbox
read` shares the agency's consumer group, stores reports, ballots, answers and dossier batches, and commits their
offsets, so the projector's own loop never sees those. `replay_inbox` brings them in; `run_projector` does that
first and then runs the loop, for every `project` command alike. Projectors are idempotent, so a message seen both
ways changes the projection once. Each projection keeps a ledger of the inbox messages it has applied, in its own
database, so a replay decodes only what is new to it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import Column, Engine, MetaData, String, Table, select

from consumers.inbox_store import InboxStore
from consumers.inbox_store import messages as inbox_messages
from consumers.receiver import Receiver
from lienthong.db import as_utc, upsert_insert
from lienthong.envelope import CertificateSource, EnvelopeCodec
from lienthong.errors import LienthongError
from lienthong.messages import Message, MessageKind
from lienthong.signals import stop_on_signals
from lienthong.transport.client import Record

log = logging.getLogger(__name__)

# While the loop runs, look again at the inbox store this often when nothing arrives: a `lienthong inbox read`
# run meanwhile may have taken the partition and stored messages the loop will never see.
REPLAY_EVERY_S = 5.0
_CHUNK = 500


def replay_ledger(metadata: MetaData, prefix: str) -> Table:
    """The table of inbox messages a projection has applied, among the projection's own tables (dropping them
    drops it too, and the next replay applies everything again)."""
    return Table(f"{prefix}_inbox_applied", metadata, Column("message_id", String(64), primary_key=True))


class Projection(Protocol):
    """What `replay_inbox` and `run_projector` drive: one projector, idempotent, with its database and ledger."""

    @property
    def kinds(self) -> tuple[MessageKind, ...]:
        """The message kinds it projects."""
        ...

    @property
    def engine(self) -> Engine:
        """Its projections database, where its ledger is too."""
        ...

    @property
    def ledger(self) -> Table:
        """Its `replay_ledger` table."""
        ...

    def apply(self, message: Message, arrived: dt.datetime | None) -> bool:
        """Apply one verified message of the projection's kinds; True if it changed the projection."""
        ...


def mark_applied(projection: Projection, message_ids: list[str]) -> None:
    if not message_ids:
        return
    stmt = upsert_insert(projection.engine)(projection.ledger).on_conflict_do_nothing()
    with projection.engine.begin() as conn:
        conn.execute(stmt, [{"message_id": m} for m in message_ids])


def replay_inbox(inbox: InboxStore, projection: Projection, envelopes: EnvelopeCodec,
                 certificates: CertificateSource | None = None,
                 on_change: Callable[[Message], None] | None = None) -> int:
    """Apply the messages of the projection's kinds the inbox store holds and the projection has not applied yet,
    in the order they arrived; returns how many changed the projection.

    With `certificates` (the directory) each signature is checked again, as of when the message was stored, and a
    message that fails is logged and left out; without, the bytes are decoded as stored (the receiver verified them
    before storing). A message's arrival is when the inbox stored it: the record's own time is not kept there."""
    kinds = [k.value for k in projection.kinds]
    with inbox.engine.connect() as conn:
        stored = conn.execute(select(inbox_messages.c.message_id).where(inbox_messages.c.kind.in_(kinds))
                              .order_by(inbox_messages.c.received_at)).scalars().all()
    if not stored:
        return 0
    with projection.engine.connect() as conn:
        applied = set(conn.execute(select(projection.ledger.c.message_id)).scalars())
    todo = [m for m in stored if m not in applied]
    changed = 0
    for start in range(0, len(todo), _CHUNK):
        chunk = todo[start:start + _CHUNK]
        with inbox.engine.connect() as conn:
            rows = {r.message_id: r for r in conn.execute(
                select(inbox_messages.c.message_id, inbox_messages.c.signed, inbox_messages.c.received_at)
                .where(inbox_messages.c.message_id.in_(chunk)))}
        done: list[str] = []
        for message_id in chunk:
            row = rows[message_id]
            received = as_utc(row.received_at)
            try:
                if certificates is None:
                    message = envelopes.decode_content(envelopes.read(row.signed))
                else:
                    message = envelopes.open(row.signed, certificates, received)[1]
            except LienthongError as exc:
                log.warning("stored inbox message not projected: %s", exc.message,
                            extra={"message_id": message_id, "reason": exc.reason.value})
                continue
            if projection.apply(message, received):
                changed += 1
                if on_change is not None:
                    on_change(message)
            done.append(message_id)
        mark_applied(projection, done)
    return changed


def replay_agency_inbox(inbox_dir: Path, agency: str, projection: Projection, envelopes: EnvelopeCodec,
                        certificates: CertificateSource | None = None) -> int:
    """`replay_inbox` over the inbox store of `agency` under `inbox_dir`, if this home has one (else 0)."""
    folder = inbox_dir / agency
    if not (folder / "inbox.db").exists():
        return 0
    inbox = InboxStore(folder)
    try:
        return replay_inbox(inbox, projection, envelopes, certificates)
    finally:
        inbox.close()


@dataclass
class ProjectionRun:
    """What one `run_projector` did."""

    changed: int = 0  # messages that changed the projection, from the inbox store and from the loop
    replayed: int = 0  # of those, from the inbox store
    quarantined: int = 0  # inbox records the receiver set aside (`lienthong inbox list` shows them)

    @property
    def quarantine_note(self) -> str:
        """'' or a clause for the end of a command's summary line."""
        return f"; {self.quarantined} message(s) quarantined (`lienthong inbox list`)" if self.quarantined else ""


def run_projector(receiver: Receiver, projection: Projection, *, once: bool = False, wait: float = 3.0,
                  stop: threading.Event | None = None, verify: bool = True,
                  on_change: Callable[[Message], None] | None = None) -> ProjectionRun:
    """Project what the agency's inbox store holds, then read the inbox with the projection as a handler until
    `stop` is set, Ctrl-C or SIGTERM, or (with `once`) nothing has come for `wait` seconds.

    The receiver is the caller's to close. With `verify`, stored messages are checked against the directory the
    receiver follows."""
    stop = stop or threading.Event()
    run = ProjectionRun()
    kinds = set(projection.kinds)

    def handler(message: Message, record: Record) -> None:
        if message.header.kind not in kinds:
            return
        if projection.apply(message, record.time):
            run.changed += 1
            if on_change is not None:
                on_change(message)
        mark_applied(projection, [message.header.message_id])

    def replay() -> None:
        done = replay_inbox(receiver.store, projection, receiver.bus.envelopes,
                            receiver.follower.view if verify else None, on_change)
        run.changed += done
        run.replayed += done

    receiver.handlers.append(handler)
    try:
        with stop_on_signals(stop):
            replay()
            quiet_since = last_replay = time.monotonic()
            while not stop.is_set() and (not once or time.monotonic() - quiet_since < wait):
                results = receiver.poll(500)
                now = time.monotonic()
                if results:
                    quiet_since = now
                    run.quarantined += sum(1 for r in results if r.kind == "quarantined")
                elif now - last_replay >= REPLAY_EVERY_S:
                    replay()
                    last_replay = now
            if not stop.is_set():
                replay()
    finally:
        receiver.handlers.remove(handler)
    return run
