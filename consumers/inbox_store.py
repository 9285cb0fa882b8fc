"""A receiver's local store: documents as files (header JSON, attachments, the signed bytes), notices in SQLite.

Each document belongs to a story, named by its root id (the document itself, or the one a revoke, update or replace
acts on). The story's local state — '' delivered, or the last status — follows the same rules as the router's
(router/stories.py): a new delivery sets '', a revoke or update request sets 13, each status sent sets its code.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    insert,
    inspect,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.expression import ColumnClause

from lienthong.db import as_utc, make_engine
from lienthong.documents import BusinessType, OfficialDocument
from lienthong.envelope import Envelope
from lienthong.errors import ConfigurationError, NotFoundError
from lienthong.messages import Message
from lienthong.notices import StatusCode, StatusNotice, replay, stored_status

metadata = MetaData()
documents = Table(
    "documents", metadata,
    Column("message_id", String(64), primary_key=True),
    Column("document_id", Text, nullable=False, index=True),
    Column("sender", String(16), nullable=False),
    Column("subject", Text, nullable=False),
    Column("digest", LargeBinary(32), nullable=False),
    Column("folder", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    # Added after the first release: an inbox.db from before gets them at open (see _upgrade); NULL root id there
    # is filled with the document id.
    Column("root_id", Text, index=True),
    Column("business_type", Integer),
)
sent_statuses = Table(
    "sent_statuses", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("document_message_id", String(64), nullable=False, index=True),
    Column("status", String(2), nullable=False),
    Column("reason", Text),
    Column("notice_message_id", String(64), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
)
notices = Table(
    "notices", metadata,
    Column("message_id", String(64), primary_key=True),
    Column("document_id", Text, nullable=False, index=True),
    Column("from_agency", String(16), nullable=False),
    Column("status", String(2), nullable=False),
    Column("staff", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("reason", Text),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("signed", LargeBinary, nullable=False),  # the envelope as it arrived: the receipt, re-verifiable
)
# Reports, ballots, ballot answers, dossier status batches: the signed message as it arrived, by kind.
messages = Table(
    "messages", metadata,
    Column("message_id", String(64), primary_key=True),
    Column("kind", String(20), nullable=False, index=True),
    Column("root_id", Text, nullable=False, index=True),
    Column("sender", String(16), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("signed", LargeBinary, nullable=False),
)
# The story's local state as it changed: a delivery ('' new, 13 a revoke or update request) or a status sent. The
# last row of a root id is the state this agency is in for that document, which the router holds too.
story_log = Table(
    "story_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("root_id", Text, nullable=False, index=True),
    Column("message_id", String(64), nullable=False),
    Column("state", String(2), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
quarantine = Table(
    "quarantine", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", Text, nullable=False),
    Column("reason_code", String(40), nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw", LargeBinary),
    Column("at", DateTime(timezone=True), nullable=False),
)


# Arrival order among rows received in the same instant.
_ROWID: ColumnClause[int] = literal_column("documents.rowid", Integer())


def safe_filename(name: str, index: int) -> str:
    """A file name that stays inside the attachments folder whatever the sender wrote."""
    base = re.sub(r"[^\w.\- ]", "_", Path(name.replace("\\", "/")).name).strip(" .")
    return base or f"attachment-{index}"


@dataclass(frozen=True)
class StoredDocument:
    """One received delivery; last_status is what this agency last sent about this very message."""

    message_id: str
    document_id: str
    sender: str
    subject: str
    digest: bytes
    folder: Path
    received_at: dt.datetime
    last_status: StatusCode | None
    root_id: str = ""
    business_type: BusinessType = BusinessType.NEW

    @property
    def is_lifecycle(self) -> bool:
        """A revoke, update or replace of the document named by root_id."""
        return self.root_id != self.document_id


class InboxStore:
    """One agency's received documents and notices, under `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(f"sqlite:///{folder / 'inbox.db'}")
        metadata.create_all(self.engine)
        self._upgrade()

    def _upgrade(self) -> None:
        """Bring an inbox.db from an earlier version up to this one; idempotent, safe with two openers at once."""
        with self.engine.begin() as conn:
            have = {c["name"] for c in inspect(conn).get_columns("documents")}
            for name, kind in (("root_id", "TEXT"), ("business_type", "INTEGER")):
                if name not in have:
                    try:
                        conn.execute(text(f"ALTER TABLE documents ADD COLUMN {name} {kind}"))
                    except OperationalError as exc:  # another process added it first
                        if "duplicate column" not in str(exc):
                            raise
            conn.execute(text("CREATE INDEX IF NOT EXISTS ix_documents_root_id ON documents (root_id)"))
            # Before root ids were kept, a stored document stood for itself.
            conn.execute(update(documents).where(documents.c.root_id.is_(None))
                         .values(root_id=documents.c.document_id))
            # Anything else missing comes from a development build older than any release: say so, plainly.
            inspector = inspect(conn)
            for table in metadata.sorted_tables:
                missing = {c.name for c in table.columns} - {c["name"] for c in inspector.get_columns(table.name)}
                if missing:
                    raise ConfigurationError(
                        f"{self.folder / 'inbox.db'} was made by an older lienthong: its table {table.name} lacks "
                        f"{', '.join(sorted(missing))}. Move the folder aside to start a new store; what it holds "
                        "stays readable there")

    def has(self, message_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(documents.c.message_id).where(documents.c.message_id == message_id)
                                ).first() is not None or conn.execute(
                select(notices.c.message_id).where(notices.c.message_id == message_id)).first() is not None or \
                conn.execute(select(messages.c.message_id).where(messages.c.message_id == message_id)).first() \
                is not None

    def store_document(self, raw: bytes, envelope: Envelope, message: Message, *, confidential: bool = False,
                       state: StatusCode | None = None) -> Path:
        """Store a verified document (decrypted if it came confidential): its files, then its index row and the
        state its arrival puts the story in (None: delivered; 13 for a revoke or update request).

        envelope.avro keeps the signed bytes as they arrived, so for a confidential document the ciphertext."""
        document = message.payload
        if not isinstance(document, OfficialDocument):
            raise TypeError("store_document takes a document message")
        folder = self.folder / "documents" / message.header.message_id
        (folder / "attachments").mkdir(parents=True, exist_ok=True)
        for index, attachment in enumerate(document.attachments):
            (folder / "attachments" / safe_filename(attachment.name, index)).write_bytes(attachment.data)
        header = {
            "message_id": message.header.message_id, "root_id": message.header.root_id,
            "sender": message.header.sender, "recipients": list(message.header.recipients),
            "created_at": message.header.created_at.isoformat(),
            "signed_content_sha256": envelope.content_digest.hex(),
            "signer_certificate": envelope.certificate_fingerprint,
            "confidential": confidential,
            "document": document.model_dump(mode="json", exclude={"attachments"}),
            "attachments": [{"name": a.name, "file": safe_filename(a.name, i), "content_type": a.content_type,
                             "description": a.description, "sha256": a.sha256.hex(), "size": len(a.data)}
                            for i, a in enumerate(document.attachments)],
        }
        (folder / "header.json").write_text(json.dumps(header, ensure_ascii=False, indent=2), encoding="utf-8")
        (folder / "envelope.avro").write_bytes(raw)
        now = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            conn.execute(insert(documents).values(
                message_id=message.header.message_id, document_id=document.document_id,
                sender=message.header.sender, subject=document.subject, digest=envelope.content_digest,
                folder=str(folder), received_at=now, root_id=message.header.root_id,
                business_type=int(document.business.type)))
            conn.execute(insert(story_log).values(root_id=message.header.root_id,
                                                  message_id=message.header.message_id,
                                                  state=state.value if state else "", at=now))
        return folder

    def store_notice(self, message: Message, raw: bytes) -> None:
        notice = message.payload
        if not isinstance(notice, StatusNotice):
            raise TypeError("store_notice takes a status notice message")
        with self.engine.begin() as conn:
            conn.execute(insert(notices).values(
                message_id=message.header.message_id, document_id=notice.document_id,
                from_agency=message.header.sender, status=notice.status.value, staff=notice.staff,
                description=notice.description, reason=notice.reason, time=notice.time,
                received_at=dt.datetime.now(dt.UTC), signed=raw))

    def store_message(self, message: Message, raw: bytes) -> None:
        """A verified report, ballot, ballot answer or dossier status batch, kept as signed."""
        with self.engine.begin() as conn:
            conn.execute(insert(messages).values(
                message_id=message.header.message_id, kind=message.header.kind.value, root_id=message.header.root_id,
                sender=message.header.sender, received_at=dt.datetime.now(dt.UTC), signed=raw))

    def signed_messages(self, kind: str, root_id: str | None = None) -> list[bytes]:
        """The signed bytes of the stored messages of one kind (and one root id), in the order they arrived."""
        query = select(messages.c.signed).where(messages.c.kind == kind)
        if root_id is not None:
            query = query.where(messages.c.root_id == root_id)
        with self.engine.connect() as conn:
            return [r.signed for r in conn.execute(query.order_by(messages.c.received_at))]

    def record_sent_status(self, document_message_id: str, status: StatusCode, reason: str | None,
                           notice_message_id: str, root_id: str | None = None) -> None:
        """A status this agency sent about a delivery; it is the story's new state."""
        now = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            conn.execute(insert(sent_statuses).values(
                document_message_id=document_message_id, status=status.value, reason=reason,
                notice_message_id=notice_message_id, sent_at=now))
            if root_id is None:
                row = conn.execute(select(documents.c.root_id)
                                   .where(documents.c.message_id == document_message_id)).first()
                root_id = row.root_id if row else None
            if root_id is not None:
                conn.execute(insert(story_log).values(root_id=root_id, message_id=notice_message_id,
                                                      state=status.value, at=now))

    def quarantine(self, source: str, reason_code: str, reason: str, raw: bytes | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(quarantine).values(source=source, reason_code=reason_code, reason=reason, raw=raw,
                                                   at=dt.datetime.now(dt.UTC)))

    def _last_status(self, conn: Connection, message_id: str) -> StatusCode | None:
        row = conn.execute(
            select(sent_statuses.c.status).where(sent_statuses.c.document_message_id == message_id)
            .order_by(sent_statuses.c.id.desc()).limit(1)).first()
        return StatusCode(row.status) if row else None

    def _stored(self, conn: Connection, r: Any) -> StoredDocument:
        return StoredDocument(r.message_id, r.document_id, r.sender, r.subject, r.digest, Path(r.folder),
                              as_utc(r.received_at), self._last_status(conn, r.message_id),
                              r.root_id or r.document_id, BusinessType(r.business_type or 0))

    def documents(self) -> list[StoredDocument]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(documents).order_by(documents.c.received_at, _ROWID)).all()
            return [self._stored(conn, r) for r in rows]

    def document(self, document_id: str) -> StoredDocument:
        """The latest received delivery named by `document_id`: a document id, a message id, or a story's root id
        (then the latest delivery of that story, which may be a revoke, update or replacement)."""
        c = documents.c
        query = (select(documents).where(or_(c.document_id == document_id, c.message_id == document_id,
                                             c.root_id == document_id))
                 .order_by(c.received_at.desc(), _ROWID.desc()).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
            if row is None:
                raise NotFoundError(f"no received document {document_id!r} in {self.folder}; "
                                    "run `lienthong inbox read` first")
            return self._stored(conn, row)

    def story_state(self, root_id: str) -> StatusCode | None:
        """This agency's state in a story: None when delivered (and not answered since), else the last status.

        A story received before the store kept its log falls back to the last status sent about its latest
        delivery."""
        with self.engine.connect() as conn:
            log = conn.execute(select(story_log.c.state).where(story_log.c.root_id == root_id)
                               .order_by(story_log.c.id)).all()
            if log:
                # Replayed, not the last entry: a 16 returns to the state its 13 interrupted.
                return replay(stored_status(row.state) for row in log)
            latest = conn.execute(select(documents.c.message_id).where(documents.c.root_id == root_id)
                                  .order_by(documents.c.received_at.desc(), _ROWID.desc()).limit(1)).first()
            return self._last_status(conn, latest.message_id) if latest else None

    def notices(self, *, with_receipts: bool = False) -> list[dict[str, object]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(notices).order_by(notices.c.time)).mappings().all()
        return [{k: as_utc(v) if isinstance(v, dt.datetime) else v for k, v in r.items()
                 if with_receipts or k != "signed"} for r in rows]

    def quarantined(self) -> list[dict[str, object]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(quarantine).order_by(quarantine.c.id)).mappings().all()]

    def close(self) -> None:
        self.engine.dispose()
