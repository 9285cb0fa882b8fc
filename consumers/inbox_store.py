"""A receiver's local store: documents as files (header JSON, attachments, the signed bytes), notices in SQLite."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Column, DateTime, Integer, LargeBinary, MetaData, String, Table, Text, insert, select

from lienthong.db import make_engine
from lienthong.documents import OfficialDocument
from lienthong.envelope import Envelope
from lienthong.errors import NotFoundError
from lienthong.messages import Message
from lienthong.notices import StatusCode, StatusNotice

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
quarantine = Table(
    "quarantine", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", Text, nullable=False),
    Column("reason_code", String(40), nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw", LargeBinary),
    Column("at", DateTime(timezone=True), nullable=False),
)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def safe_filename(name: str, index: int) -> str:
    """A file name that stays inside the attachments folder whatever the sender wrote."""
    base = re.sub(r"[^\w.\- ]", "_", Path(name.replace("\\", "/")).name).strip(" .")
    return base or f"attachment-{index}"


@dataclass(frozen=True)
class StoredDocument:
    message_id: str
    document_id: str
    sender: str
    subject: str
    digest: bytes
    folder: Path
    received_at: dt.datetime
    last_status: StatusCode | None


class InboxStore:
    """One agency's received documents and notices, under `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(f"sqlite:///{folder / 'inbox.db'}")
        metadata.create_all(self.engine)

    def has(self, message_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(documents.c.message_id).where(documents.c.message_id == message_id)
                                ).first() is not None or conn.execute(
                select(notices.c.message_id).where(notices.c.message_id == message_id)).first() is not None or \
                conn.execute(select(messages.c.message_id).where(messages.c.message_id == message_id)).first() \
                is not None

    def store_document(self, raw: bytes, envelope: Envelope, message: Message, *, confidential: bool = False) -> Path:
        """Store a verified document (decrypted if it came confidential): its files, then its index row.

        envelope.avro keeps the signed bytes as they arrived, so for a confidential document the ciphertext."""
        document = message.payload
        if not isinstance(document, OfficialDocument):
            raise TypeError("store_document takes a document message")
        folder = self.folder / "documents" / message.header.message_id
        (folder / "attachments").mkdir(parents=True, exist_ok=True)
        for index, attachment in enumerate(document.attachments):
            (folder / "attachments" / safe_filename(attachment.name, index)).write_bytes(attachment.data)
        header = {
            "message_id": message.header.message_id, "sender": message.header.sender,
            "recipients": list(message.header.recipients), "created_at": message.header.created_at.isoformat(),
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
        with self.engine.begin() as conn:
            conn.execute(insert(documents).values(
                message_id=message.header.message_id, document_id=document.document_id,
                sender=message.header.sender, subject=document.subject, digest=envelope.content_digest,
                folder=str(folder), received_at=dt.datetime.now(dt.UTC)))
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
                           notice_message_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(sent_statuses).values(
                document_message_id=document_message_id, status=status.value, reason=reason,
                notice_message_id=notice_message_id, sent_at=dt.datetime.now(dt.UTC)))

    def quarantine(self, source: str, reason_code: str, reason: str, raw: bytes | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(quarantine).values(source=source, reason_code=reason_code, reason=reason, raw=raw,
                                                   at=dt.datetime.now(dt.UTC)))

    def _last_status(self, conn: object, message_id: str) -> StatusCode | None:
        row = conn.execute(  # type: ignore[attr-defined]
            select(sent_statuses.c.status).where(sent_statuses.c.document_message_id == message_id)
            .order_by(sent_statuses.c.id.desc()).limit(1)).first()
        return StatusCode(row.status) if row else None

    def documents(self) -> list[StoredDocument]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(documents).order_by(documents.c.received_at)).all()
            return [StoredDocument(r.message_id, r.document_id, r.sender, r.subject, r.digest, Path(r.folder),
                                   _utc(r.received_at), self._last_status(conn, r.message_id)) for r in rows]

    def document(self, document_id: str) -> StoredDocument:
        """The latest received delivery of a document, by document id or message id."""
        matches = [d for d in self.documents() if document_id in (d.document_id, d.message_id)]
        if not matches:
            raise NotFoundError(f"no received document {document_id!r} in {self.folder}; "
                                "run `lienthong inbox read` first")
        return matches[-1]

    def notices(self, *, with_receipts: bool = False) -> list[dict[str, object]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(notices).order_by(notices.c.time)).mappings().all()
        return [{k: _utc(v) if isinstance(v, dt.datetime) else v for k, v in r.items()
                 if with_receipts or k != "signed"} for r in rows]

    def quarantined(self) -> list[dict[str, object]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(quarantine).order_by(quarantine.c.id)).mappings().all()]

    def close(self) -> None:
        self.engine.dispose()
