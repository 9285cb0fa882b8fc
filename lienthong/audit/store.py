"""The audit store in SQL: one chained row per audit event, the signed messages, and signed checkpoints.

One projector writes a store at a time. Each appended row carries the hash of the row before it; every
`checkpoint_rows` rows (or `checkpoint_seconds`, whichever comes first) the operator key signs the hash of the
last row. The schema is managed by Alembic (lienthong/audit/migrations).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from psycopg.errors import UniqueViolation
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
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

from lienthong.audit.chain import FIELDS, GENESIS, ChainRow, Finding, Problem, Report, link, verify_chain
from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.certificates import fingerprint
from lienthong.codec import SingleObjectCodec
from lienthong.db import make_engine
from lienthong.errors import ConfigurationError, LienthongError, SignatureError
from lienthong.records import from_millis, to_millis
from lienthong.signing import SignatureAlgorithm, Signer, verify

CHECKPOINT = "gov.lienthong.AuditCheckpoint"
MIGRATIONS = Path(__file__).with_name("migrations")

metadata = MetaData()
audit_events = Table(
    "audit_events", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(200), nullable=False, unique=True),
    Column("event", String(16), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("message_id", String(64)),
    Column("root_id", Text),
    Column("kind", String(16)),
    Column("sender", String(16)),
    Column("recipient", String(16)),
    Column("status", String(2)),
    Column("reason_code", String(40)),
    Column("reason", Text),
    Column("source_topic", Text, nullable=False),
    Column("source_partition", Integer, nullable=False),
    Column("source_offset", BigInteger, nullable=False),
    Column("content_sha256", String(64)),
    Column("prev_hash", LargeBinary(32), nullable=False),
    Column("row_hash", LargeBinary(32), nullable=False),
)
audit_messages = Table(
    "audit_messages", metadata,
    Column("message_id", String(64), primary_key=True),
    Column("content_sha256", String(64), nullable=False),
    Column("envelope", LargeBinary, nullable=False),
)
audit_checkpoints = Table(
    "audit_checkpoints", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("statement", LargeBinary, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("certificate_fingerprint", String(64), nullable=False),
    Column("algorithm", String(32), nullable=False),
)
chain_head = Table(
    "audit_chain_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("row_hash", LargeBinary(32), nullable=False),
    Column("checkpoint_seq", BigInteger, nullable=False),
    Column("checkpoint_at_ms", BigInteger, nullable=False),
)

EVENT_COLUMNS = [audit_events.c[name] for name in FIELDS]
ROW_COLUMNS = ("seq", *FIELDS, "prev_hash", "row_hash")  # an audit_events row as written, in this order
# The PostgreSQL types of ROW_COLUMNS for COPY's binary format; varchar travels as text and keeps its length check.
COPY_TYPES = [{BigInteger: "int8", Integer: "int4", LargeBinary: "bytea"}.get(type(audit_events.c[name].type), "text")
              for name in ROW_COLUMNS]
IN_CHUNK = 500


def event_values(e: AuditEvent) -> tuple[Any, ...]:
    """An event's hashed fields in chain order (chain.FIELDS), as stored."""
    return (e.event_id, e.event.value, to_millis(e.at), e.message_id, e.root_id, e.kind, e.sender, e.recipient,
            e.status, e.reason_code, e.reason, e.source_topic, e.source_partition, e.source_offset,
            e.content_sha256.hex() if e.content_sha256 else None)


def event_from_values(values: Iterable[Any]) -> AuditEvent:
    row = dict(zip(FIELDS, values, strict=True))
    at = from_millis(row.pop("at_ms"))
    digest = row.pop("content_sha256")
    return AuditEvent(**row, at=at, content_sha256=bytes.fromhex(digest) if digest else None)


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    statement: bytes
    signature: bytes
    certificate_fingerprint: str
    algorithm: SignatureAlgorithm


def migrate(engine: Any) -> None:
    """Bring the audit schema to the newest revision (Alembic)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


class AuditStore:
    """Append audit events to the chain once each; read and verify them."""

    def __init__(self, url: str, codec: SingleObjectCodec | None = None, signer: Signer | None = None,
                 checkpoint_rows: int = 1000, checkpoint_seconds: float = 60.0, *, upgrade: bool = True) -> None:
        self.engine = make_engine(url)
        self._dialect = self.engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise ConfigurationError(f"the audit store runs on SQLite or PostgreSQL, not {self._dialect}")
        if upgrade:  # readers (the auditor's server) can run on a SELECT-only role and skip this
            migrate(self.engine)
        marker = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        columns = ", ".join(ROW_COLUMNS)
        self._insert_sql = f"INSERT INTO audit_events ({columns}) VALUES ({', '.join([marker] * len(ROW_COLUMNS))})"
        self._copy_sql = f"COPY audit_events ({columns}) FROM STDIN (FORMAT BINARY)"
        self.codec = codec
        self.signer = signer
        self.checkpoint_rows = checkpoint_rows
        self.checkpoint_seconds = checkpoint_seconds
        self._replaying = False  # the last batch repeated stored events: look the next one's up first (add)

    # -- writing ---------------------------------------------------------------------------------------------

    def _head(self, conn: Connection) -> tuple[int, bytes, int, int]:
        query = select(chain_head).where(chain_head.c.id == 1)
        if self._dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            conn.execute(insert(chain_head).values(id=1, seq=0, row_hash=GENESIS, checkpoint_seq=0,
                                                   checkpoint_at_ms=int(time.time() * 1000)))
            return 0, GENESIS, 0, int(time.time() * 1000)
        return int(row.seq), bytes(row.row_hash), int(row.checkpoint_seq), int(row.checkpoint_at_ms)

    def _present(self, conn: Connection, table: Table, column: str, keys: list[str]) -> set[str]:
        """Which of keys are stored in table.column (a unique column), in as few statements as the driver allows.

        Written as driver SQL: SQLAlchemy's expanding IN rendered and bound each key anew on every batch, which
        cost nearly as much as inserting the rows.
        """
        if self._dialect == "postgresql":  # the whole list as one array parameter (%b: sent in binary, unquoted)
            sql = f"SELECT {column} FROM {table.name} WHERE {column} = ANY(%b)"
            return set(conn.exec_driver_sql(sql, (keys,)).scalars())
        present: set[str] = set()
        for start in range(0, len(keys), IN_CHUNK):  # SQLite binds at most 999 parameters before 3.32
            chunk = keys[start:start + IN_CHUNK]
            sql = f"SELECT {column} FROM {table.name} WHERE {column} IN ({', '.join('?' * len(chunk))})"
            present.update(conn.exec_driver_sql(sql, tuple(chunk)).scalars())
        return present

    @contextmanager
    def _row_writer(self, conn: Connection) -> Iterator[Callable[[tuple[Any, ...]], None]]:
        """A function that writes one audit_events row (ROW_COLUMNS order); the rows are in once the block ends."""
        if self._dialect == "postgresql":
            # COPY, streamed as the rows are made: the server checks and indexes the rows sent so far on its own
            # core while this process decodes and hashes the next ones. executemany sent one INSERT per row, and
            # the server's per-statement work was most of the projector's cost. Binary, with the column types given.
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor, cursor.copy(self._copy_sql) as copy:
                copy.set_types(COPY_TYPES)
                yield copy.write_row
        else:
            rows: list[tuple[Any, ...]] = []
            yield rows.append
            # Straight to the driver's executemany: SQLAlchemy's per-row parameter processing cost more than
            # hashing and writing the row.
            conn.exec_driver_sql(self._insert_sql, rows)

    def add(self, events: Iterable[AuditEvent]) -> int:
        """Chain the events whose event_id is new onto the store, in one transaction; returns how many.

        events may be a generator that decodes as it goes: on PostgreSQL the rows made so far are being written
        meanwhile.
        """
        pending = iter(events)
        head = next(pending, None)
        if head is None:
            return 0
        pending = itertools.chain([head], pending)
        if self._dialect == "postgresql" and not self._replaying:
            # Most batches are all new: write them without looking their event_ids up first, which also lets the
            # rows stream while events are still being decoded. If one is stored already (a replayed batch), the
            # unique index on event_id refuses it, the transaction is rolled back whole, and the batch is written
            # again with the lookup. Until a batch is all new again the lookup comes first, so a long replay (a
            # rebuild into a full store) pays for one refused attempt, not one per batch.
            taken: list[AuditEvent] = []
            try:
                return self._chain(_recorded(pending, taken))
            except UniqueViolation:
                self._replaying = True
                pending = itertools.chain(taken, pending)
        batch = list(pending)
        added = self._chain(batch, lookup=True)
        self._replaying = added < len(batch)
        return added

    def _chain(self, events: Iterable[AuditEvent], *, lookup: bool = False) -> int:
        """Write the events onto the chain in one transaction, each event_id once; with lookup, only those not yet
        stored (events is then a list)."""
        with self.engine.begin() as conn:
            seq, prev, checkpoint_seq, _ = self._head(conn)
            if lookup:
                events = list(events)
                known = self._present(conn, audit_events, "event_id", [e.event_id for e in events])
                events = [e for e in events if e.event_id not in known]
                if not events:
                    return 0
            else:
                known = set()
            first = seq
            messages: list[dict[str, Any]] = []
            due: list[tuple[int, bytes]] = []
            with self._row_writer(conn) as write:
                for event in events:
                    if event.event_id in known:  # a batch may repeat an event within itself
                        continue
                    known.add(event.event_id)
                    values = event_values(event)
                    row_hash = link(prev, values)
                    seq += 1
                    write((seq, *values, prev, row_hash))
                    prev = row_hash
                    if self.signer is not None and seq - checkpoint_seq >= self.checkpoint_rows:
                        due.append((seq, row_hash))  # exactly every checkpoint_rows rows
                        checkpoint_seq = seq
                    if event.envelope is not None and event.message_id and event.content_sha256:
                        messages.append({"message_id": event.message_id,
                                         "content_sha256": event.content_sha256.hex(), "envelope": event.envelope})
            if seq == first:
                return 0
            self._add_messages(conn, messages)
            conn.execute(update(chain_head).where(chain_head.c.id == 1).values(seq=seq, row_hash=prev))
            for checkpoint in due:
                self._checkpoint(conn, *checkpoint)
        return seq - first

    def _add_messages(self, conn: Connection, messages: list[dict[str, Any]]) -> None:
        if not messages:
            return
        known = self._present(conn, audit_messages, "message_id", [m["message_id"] for m in messages])
        fresh = {m["message_id"]: m for m in messages if m["message_id"] not in known}
        if fresh:
            conn.execute(insert(audit_messages), list(fresh.values()))

    def _checkpoint(self, conn: Connection, seq: int, row_hash: bytes) -> None:
        if self.signer is None or self.codec is None:
            raise ConfigurationError("checkpoints need the operator's signing key and the codec")
        now_ms = int(time.time() * 1000)
        statement = self.codec.encode(CHECKPOINT, {"seq": seq, "row_hash": row_hash, "signed_at": now_ms})
        conn.execute(insert(audit_checkpoints).values(
            seq=seq, statement=statement, signature=self.signer.sign(statement),
            certificate_fingerprint=self.signer.certificate_fingerprint, algorithm=self.signer.algorithm.value))
        conn.execute(update(chain_head).where(chain_head.c.id == 1).values(checkpoint_seq=seq,
                                                                          checkpoint_at_ms=now_ms))

    def checkpoint(self, *, force: bool = False) -> int | None:
        """Sign the current head if rows were added since the last checkpoint and it is due (or forced)."""
        with self.engine.begin() as conn:
            seq, row_hash, checkpoint_seq, checkpoint_at = self._head(conn)
            due = force or (time.time() * 1000 - checkpoint_at) >= self.checkpoint_seconds * 1000
            if seq > checkpoint_seq and due:
                self._checkpoint(conn, seq, row_hash)
                return seq
        return None

    # -- reading ---------------------------------------------------------------------------------------------

    def events(self, root_id: str | None = None, message_ids: Iterable[str] | None = None) -> list[AuditEvent]:
        query = select(*EVENT_COLUMNS).order_by(audit_events.c.seq)
        if root_id is not None:
            query = query.where(audit_events.c.root_id == root_id)
        if message_ids is not None:
            query = query.where(audit_events.c.message_id.in_(list(message_ids)))
        with self.engine.connect() as conn:
            return [event_from_values(row) for row in conn.execute(query)]

    def count(self, event: AuditEventType | None = None) -> int:
        query = select(func.count()).select_from(audit_events)
        if event is not None:
            query = query.where(audit_events.c.event == event.value)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def chain_rows(self, first: int = 1, last: int | None = None, batch: int = 20_000) -> Iterator[ChainRow]:
        """Rows in seq order, with their hashes and hashed values."""
        for row in self.flat_rows(first, last, batch):
            yield ChainRow(row[0], bytes(row[1]), bytes(row[2]), tuple(row[3:]))

    def flat_rows(self, first: int = 1, last: int | None = None, batch: int = 20_000) -> Iterator[Sequence[Any]]:
        """Rows as flat tuples (seq, prev_hash, row_hash, *values), from the driver's own cursor without
        SQLAlchemy's row objects: verification reads every row, and this is most of its cost."""
        columns = ", ".join(["seq", "prev_hash", "row_hash", *FIELDS])
        bound = "" if last is None else f" AND seq <= {int(last)}"
        sql = f"SELECT {columns} FROM audit_events WHERE seq >= {int(first)}{bound} ORDER BY seq"
        with self.engine.connect() as conn:
            driver = conn.connection.driver_connection
            # On PostgreSQL a server-side cursor: psycopg's ordinary cursor holds the whole result in memory from the
            # first call, which for a chain of tens of millions of rows is gigabytes; this one fetches `batch` rows
            # at a time. SQLite's cursor steps through the table anyway.
            server_side = self._dialect == "postgresql"
            if server_side:
                # Walk the primary key in order. Planned from the statistics of a freshly filled table, the range
                # looked small and PostgreSQL chose a bitmap scan and a sort, which spilled to disk: 400 ms of
                # server time for 200,000 rows against 100 ms for the index scan. Settings of this transaction
                # only; an auditor's read-only role may set them.
                driver.execute("SET LOCAL enable_bitmapscan = off")  # type: ignore[union-attr]
                driver.execute("SET LOCAL enable_sort = off")  # type: ignore[union-attr]
            cursor = (driver.cursor(name="lienthong_chain_rows") if server_side  # type: ignore[union-attr]
                      else driver.cursor())  # type: ignore[union-attr]
            try:
                cursor.execute(sql)
                while rows := cursor.fetchmany(batch):
                    yield from rows
            finally:
                cursor.close()

    def checkpoints(self) -> dict[int, Checkpoint]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq)).all()
        return {int(r.seq): Checkpoint(int(r.seq), bytes(r.statement), bytes(r.signature),
                                       r.certificate_fingerprint, SignatureAlgorithm(r.algorithm)) for r in rows}

    def head(self) -> tuple[int, bytes]:
        with self.engine.connect() as conn:
            row = conn.execute(select(chain_head).where(chain_head.c.id == 1)).first()
        return (int(row.seq), bytes(row.row_hash)) if row else (0, GENESIS)

    def envelopes(self, message_ids: Iterable[str]) -> dict[str, bytes]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(audit_messages.c.message_id, audit_messages.c.envelope)
                                .where(audit_messages.c.message_id.in_(list(message_ids)))).all()
        return {r.message_id: bytes(r.envelope) for r in rows}

    def verify(self, ca_certificate: x509.Certificate, codec: SingleObjectCodec, workers: int | None = None) -> Report:
        """Recompute the chain and check every checkpoint's signature; the first broken row is reported.

        A long chain is cut into ranges checked in parallel processes (each reads its own range and the two rows
        before it, which the range before checks); the reports are joined in order, up to the first finding.
        """
        checkpoints = self.checkpoints()
        head_seq, _ = self.head()
        workers = workers or (min(os.cpu_count() or 1, 4) if head_seq >= PARALLEL_FROM else 1)
        if workers > 1:
            url = self.engine.url.render_as_string(hide_password=False)
            report = self._verify_parallel(url, ca_certificate, checkpoints, head_seq, workers)
        else:
            checker = checkpoint_checker(checkpoints, ca_certificate, codec)
            report = verify_chain(self.flat_rows(), set(checkpoints), checker)
        if report.ok:
            head_seq, _ = self.head()
            if head_seq > report.last_seq:
                report.findings.append(Finding(Problem.DELETED, report.last_seq + 1,
                                               f"the chain head says {head_seq} rows, the table ends at "
                                               f"{report.last_seq}"))
        return report

    def _verify_parallel(self, url: str, ca_certificate: x509.Certificate, checkpoints: dict[int, Checkpoint],
                         head_seq: int, workers: int) -> Report:
        size = -(-head_seq // workers)
        ranges = [(first, min(first + size - 1, head_seq)) for first in range(1, head_seq + 1, size)]
        ca_pem = ca_certificate.public_bytes(serialization.Encoding.PEM)
        # fork starts in milliseconds; the verifying process holds no threads or broker connections to inherit.
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=len(ranges), mp_context=context) as pool:
            parts = list(pool.map(_verify_range, [(url, ca_pem, checkpoints, first, last, last == head_seq)
                                                  for first, last in ranges]))
        report = Report()
        for part in parts:
            report.rows += part.rows
            report.checkpoints += part.checkpoints
            report.last_seq = part.last_seq
            report.last_checkpoint_seq = max(report.last_checkpoint_seq, part.last_checkpoint_seq)
            if part.findings:
                report.findings = part.findings
                break
        return report

    def close(self) -> None:
        self.engine.dispose()


def _recorded(events: Iterator[AuditEvent], into: list[AuditEvent]) -> Iterator[AuditEvent]:
    """The events, each kept in into as it is read, so a refused attempt can be written again."""
    for event in events:
        into.append(event)
        yield event


PARALLEL_FROM = 100_000  # rows; below this, starting processes costs more than it saves


def _verify_range(job: tuple[str, bytes, dict[int, Checkpoint], int, int, bool]) -> Report:
    """One range of a parallel verification, in its own process with its own connection."""
    url, ca_pem, checkpoints, first, last, is_last = job
    from lienthong.schemas import SchemaSet

    ca_certificate = x509.load_pem_x509_certificate(ca_pem)
    codec = SingleObjectCodec(SchemaSet())
    store = AuditStore(url, codec, upgrade=False)  # the parent checked the schema; this process only reads
    try:
        # The two rows before the range give its starting hashes; the range before checks them. If one is
        # missing, that range reports it, and its finding comes first when the reports are joined.
        hashes = {row[0]: bytes(row[2]) for row in store.flat_rows(max(1, first - 2), first - 1)} if first > 1 else {}
        start_hash = GENESIS if first == 1 else hashes.get(first - 1, GENESIS)
        earlier = hashes.get(first - 2, b"")
        in_range = store.flat_rows(first, None if is_last else last + 1)
        checker = checkpoint_checker(checkpoints, ca_certificate, codec)
        selected = {s for s in checkpoints if first <= s <= last} if not is_last else {s for s in checkpoints
                                                                                        if s >= first}
        return verify_chain(in_range, selected, checker, first, start_hash, earlier, None if is_last else last)
    finally:
        store.close()


def checkpoint_checker(checkpoints: dict[int, Checkpoint], ca_certificate: x509.Certificate,
                       codec: SingleObjectCodec) -> Any:
    """A function telling whether the checkpoint at a seq is validly signed and names that row hash."""
    ca_fp = fingerprint(ca_certificate)

    def check(seq: int, row_hash: bytes) -> str | None:
        cp = checkpoints[seq]
        if cp.certificate_fingerprint != ca_fp:
            return "checkpoint is signed by a key other than the operator's"
        try:
            verify(ca_certificate.public_key(), cp.algorithm, cp.statement, cp.signature)  # type: ignore[arg-type]
            statement = codec.decode(cp.statement, CHECKPOINT)
        except (LienthongError, SignatureError) as exc:
            return f"checkpoint signature does not hold: {exc}"
        if statement["seq"] != seq:
            return f"checkpoint statement is about row {statement['seq']}"
        if statement["row_hash"] != row_hash:
            return ("the rows up to here were rewritten: the signed checkpoint names another hash "
                    f"({statement['row_hash'].hex()[:16]}…) than the chain now ends in ({row_hash.hex()[:16]}…)")
        return None

    return check
