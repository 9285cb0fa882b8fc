"""The one boundary between domain models and Avro records (dicts shaped like schemas/*.avsc)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError as PydanticValidationError

from lienthong.agencies import AgencyKind
from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.ballots import Ballot, BallotAnswer
from lienthong.codec import SingleObjectCodec
from lienthong.directory.entries import (
    AgencyEntry,
    CertificateEntry,
    CertificateUsage,
    DirectoryEntry,
    GroupEntry,
    RegimeEntry,
)
from lienthong.documents import (
    ConfidentialAlgorithm,
    ConfidentialDocument,
    OfficialDocument,
    WrappedKey,
)
from lienthong.dossiers import DOSSIER_BATCH, DossierStatusBatch
from lienthong.errors import DecodingError, Reason, first_error
from lienthong.messages import Message, MessageHeader, MessageKind, Payload
from lienthong.notices import StatusCode, StatusNotice
from lienthong.reports import Regime, Report

_EPOCH_DAY = dt.date(1970, 1, 1)

SIGNED_CONTENT = "gov.lienthong.SignedContent"
ENVELOPE = "gov.lienthong.Envelope"
AUDIT_EVENT = "gov.lienthong.AuditEvent"
AUDIT_EVENTS = "gov.lienthong.AuditEvents"  # the events of a transaction's decisions on one audit partition
AUDIT_EVENTS_PER_RECORD = 100  # keeps a record with a SUBMITTED event's envelope within the producer's limit
DIRECTORY_ENTRY = "gov.lienthong.DirectoryEntry"
SEEN_MESSAGE = "gov.lienthong.SeenMessage"  # one delivered message id a record, as routers wrote them before
SEEN_MESSAGES = "gov.lienthong.SeenMessages"  # the ids one router transaction delivered from one ingress partition
SEEN_PER_RECORD = 10_000
ROUTER_STORY = "gov.lienthong.RouterStory"
OFFICIAL_DOCUMENT = "gov.lienthong.OfficialDocument"  # alone: the plaintext inside a ConfidentialDocument


def to_millis(value: dt.datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("timestamps on the bus must carry a time zone")
    return int(value.timestamp() * 1000)


def from_millis(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)


def to_days(value: dt.date) -> int:
    return (value - _EPOCH_DAY).days


def from_days(value: int) -> dt.date:
    return _EPOCH_DAY + dt.timedelta(days=value)


def _document_record(doc: OfficialDocument) -> dict[str, Any]:
    return {
        "document_id": doc.document_id,
        "code": {"number": doc.code.number, "notation": doc.code.notation},
        "promulgation": {"place": doc.promulgation.place, "date": to_days(doc.promulgation.date)},
        "document_type": doc.document_type.model_dump(),
        "subject": doc.subject,
        "content": doc.content,
        "signer": doc.signer.model_dump(),
        "due_date": to_days(doc.due_date) if doc.due_date else None,
        "priority": int(doc.priority),
        "steering_type": int(doc.steering_type),
        "to_places": list(doc.to_places),
        "response_for": None if doc.response_for is None else {
            "sender": doc.response_for.sender, "code": doc.response_for.code,
            "promulgation_date": to_days(doc.response_for.promulgation_date),
            "document_id": doc.response_for.document_id,
        },
        "business": {"type": int(doc.business.type), "reason": doc.business.reason,
                     "affected_recipients": list(doc.business.affected_recipients)},
        "attachments": [a.model_dump() for a in doc.attachments],
    }


def _document_model(rec: dict[str, Any]) -> OfficialDocument:
    # One validation of the whole nested dict: pydantic-core checks it in one pass, several times faster than
    # building each part model on its own (this runs for every document the router and receivers read).
    rf = rec["response_for"]
    return OfficialDocument.model_validate({
        **rec,
        "promulgation": {**rec["promulgation"], "date": from_days(rec["promulgation"]["date"])},
        "due_date": from_days(rec["due_date"]) if rec["due_date"] is not None else None,
        "response_for": None if rf is None else {**rf, "promulgation_date": from_days(rf["promulgation_date"])},
    })


def document_record(doc: OfficialDocument) -> dict[str, Any]:
    """An OfficialDocument record on its own: what a confidential document encrypts (single-object encoded)."""
    return _document_record(doc)


def document_model(rec: dict[str, Any]) -> OfficialDocument:
    """The document of a decoded OfficialDocument record; raise DecodingError if it breaks a rule."""
    try:
        return _document_model(rec)
    except PydanticValidationError as exc:
        raise _content_error(exc) from exc
    except (KeyError, ValueError, TypeError, OverflowError, OSError) as exc:
        raise DecodingError(f"document content cannot be read: {exc!r}", reason=Reason.INVALID_CONTENT) from exc


def _confidential_record(doc: ConfidentialDocument) -> dict[str, Any]:
    return {
        "document_id": doc.document_id, "algorithm": doc.algorithm.value, "nonce": doc.nonce,
        "ciphertext": doc.ciphertext,
        "recipients": [{"agency": w.agency, "certificate_fingerprint": w.certificate_fingerprint,
                        "ephemeral_key": w.ephemeral_key, "wrapped_key": w.wrapped_key} for w in doc.recipients],
    }


def _confidential_model(rec: dict[str, Any]) -> ConfidentialDocument:
    return ConfidentialDocument(
        document_id=rec["document_id"], algorithm=ConfidentialAlgorithm(rec["algorithm"]), nonce=rec["nonce"],
        ciphertext=rec["ciphertext"], recipients=tuple(WrappedKey(**w) for w in rec["recipients"]))


def _notice_record(notice: StatusNotice) -> dict[str, Any]:
    return {
        "document_id": notice.document_id, "document_message_id": notice.document_message_id,
        "document_digest": notice.document_digest, "status": notice.status.name, "staff": notice.staff,
        "description": notice.description, "reason": notice.reason, "time": to_millis(notice.time),
    }


def _notice_model(rec: dict[str, Any]) -> StatusNotice:
    return StatusNotice(
        document_id=rec["document_id"], document_message_id=rec["document_message_id"],
        document_digest=rec["document_digest"], status=StatusCode[rec["status"]], staff=rec["staff"],
        description=rec["description"], reason=rec["reason"], time=from_millis(rec["time"]),
    )


def _report_record(report: Report) -> dict[str, Any]:
    return {"report_id": report.report_id, "regime": report.regime, "period": report.period,
            "values": [v.model_dump() for v in report.values], "note": report.note, "time": to_millis(report.time)}


def _report_model(rec: dict[str, Any]) -> Report:
    return Report.model_validate({**rec, "time": from_millis(rec["time"])})


def _ballot_record(ballot: Ballot) -> dict[str, Any]:
    return {"ballot_id": ballot.ballot_id, "question": ballot.question, "description": ballot.description,
            "options": list(ballot.options), "deadline": to_millis(ballot.deadline), "members": list(ballot.members)}


def _ballot_model(rec: dict[str, Any]) -> Ballot:
    return Ballot.model_validate({**rec, "deadline": from_millis(rec["deadline"])})


def _answer_record(answer: BallotAnswer) -> dict[str, Any]:
    return {"ballot_id": answer.ballot_id, "option": answer.option, "comment": answer.comment,
            "time": to_millis(answer.time)}


def _answer_model(rec: dict[str, Any]) -> BallotAnswer:
    return BallotAnswer.model_validate({**rec, "time": from_millis(rec["time"])})


def _dossier_record(batch: DossierStatusBatch) -> dict[str, Any]:
    return {"batch_id": batch.batch_id, "events": [{
        "dossier_code": e.dossier_code, "procedure_code": e.procedure_code, "field": e.field,
        "owner_kind": e.owner_kind.value, "received_date": to_days(e.received_date),
        "due_date": to_days(e.due_date) if e.due_date is not None else None, "status": e.status.value,
        "handling_unit": e.handling_unit, "handler": e.handler, "time": to_millis(e.time),
    } for e in batch.events]}


def _dossier_model(rec: dict[str, Any]) -> DossierStatusBatch:
    # One validation pass over the whole batch (thousands of events per message at the portals' rates).
    return DOSSIER_BATCH.validate_python({"batch_id": rec["batch_id"], "events": [{
        **e, "received_date": from_days(e["received_date"]),
        "due_date": from_days(e["due_date"]) if e["due_date"] is not None else None,
        "time": from_millis(e["time"]),
    } for e in rec["events"]]})


def header_record(header: MessageHeader) -> dict[str, Any]:
    return {
        "message_id": header.message_id, "kind": header.kind.value, "sender": header.sender,
        "recipients": list(header.recipients), "root_id": header.root_id,
        "created_at": to_millis(header.created_at),
    }


def header_model(rec: dict[str, Any]) -> MessageHeader:
    return MessageHeader(
        message_id=rec["message_id"], kind=MessageKind(rec["kind"]), sender=rec["sender"],
        recipients=tuple(rec["recipients"]), root_id=rec["root_id"], created_at=from_millis(rec["created_at"]),
    )


def _payload_branch(payload: Payload) -> tuple[str, dict[str, Any]]:
    # fastavro takes (name, record) tuples to pick a union branch explicitly.
    if isinstance(payload, OfficialDocument):
        return OFFICIAL_DOCUMENT, _document_record(payload)
    if isinstance(payload, ConfidentialDocument):
        return "gov.lienthong.ConfidentialDocument", _confidential_record(payload)
    if isinstance(payload, StatusNotice):
        return "gov.lienthong.StatusNotice", _notice_record(payload)
    if isinstance(payload, Report):
        return "gov.lienthong.Report", _report_record(payload)
    if isinstance(payload, Ballot):
        return "gov.lienthong.Ballot", _ballot_record(payload)
    if isinstance(payload, BallotAnswer):
        return "gov.lienthong.BallotAnswer", _answer_record(payload)
    return "gov.lienthong.DossierStatusBatch", _dossier_record(payload)


def message_record(message: Message) -> dict[str, Any]:
    return {"header": header_record(message.header), "payload": _payload_branch(message.payload)}


def _payload_model(rec: dict[str, Any]) -> Payload:
    """The payload of a decoded union branch, told apart by the fields only its record has."""
    if "ciphertext" in rec:
        return _confidential_model(rec)
    if "attachments" in rec:
        return _document_model(rec)
    if "document_digest" in rec:
        return _notice_model(rec)
    if "regime" in rec:
        return _report_model(rec)
    if "members" in rec:
        return _ballot_model(rec)
    if "option" in rec:
        return _answer_model(rec)
    return _dossier_model(rec)


def message_model(rec: dict[str, Any]) -> Message:
    """Build the domain message from a decoded SignedContent record; raise DecodingError if it breaks a rule."""
    payload = rec["payload"]
    try:
        header = header_model(rec["header"])
        # model_construct: header and payload were each validated just now; a second pass would double the cost.
        return Message.model_construct(header=header, payload=_payload_model(payload))
    except PydanticValidationError as exc:
        raise _content_error(exc) from exc
    except (KeyError, ValueError, TypeError, OverflowError, OSError) as exc:
        raise DecodingError(f"message content cannot be read: {exc!r}", reason=Reason.INVALID_CONTENT) from exc


def _content_error(exc: PydanticValidationError) -> DecodingError:
    line, reason = first_error(exc)
    return DecodingError(f"message content breaks a rule: {line}", reason=reason)


def directory_entry_record(entry: DirectoryEntry, published_at: dt.datetime) -> dict[str, Any]:
    body: tuple[str, dict[str, Any]]
    if isinstance(entry, AgencyEntry):
        body = ("gov.lienthong.AgencyEntry", {"code": entry.code, "name": entry.name, "kind": entry.kind.value})
    elif isinstance(entry, GroupEntry):
        body = ("gov.lienthong.GroupEntry", {"name": entry.name, "members": list(entry.members)})
    elif isinstance(entry, RegimeEntry):
        r = entry.regime
        body = ("gov.lienthong.RegimeEntry", {
            "code": r.code, "name": r.name, "period_type": r.period_type.value, "reporting": list(r.reporting),
            "receiving": r.receiving, "indicators": [i.model_dump() for i in r.indicators], "due_days": r.due_days,
            "accept_days": r.accept_days})
    else:
        body = ("gov.lienthong.CertificateEntry", {
            "fingerprint": entry.fingerprint, "agency": entry.agency, "der": entry.der,
            "revoked_at": to_millis(entry.revoked_at) if entry.revoked_at else None, "usage": entry.usage.value})
    return {"key": entry.key, "published_at": to_millis(published_at), "entry": body}


def directory_entry_model(rec: dict[str, Any]) -> DirectoryEntry:
    body = rec["entry"]
    try:
        if "der" in body:
            revoked = body["revoked_at"]
            return CertificateEntry(fingerprint=body["fingerprint"], agency=body["agency"], der=body["der"],
                                    revoked_at=from_millis(revoked) if revoked is not None else None,
                                    usage=CertificateUsage(body["usage"]))
        if "period_type" in body:
            return RegimeEntry(regime=Regime.model_validate(body))
        if "members" in body:
            return GroupEntry(name=body["name"], members=tuple(body["members"]))
        return AgencyEntry(code=body["code"], name=body["name"], kind=AgencyKind(body["kind"]))
    except (PydanticValidationError, ValueError, KeyError, OverflowError, OSError) as exc:
        raise DecodingError(f"directory entry cannot be read: {exc}", reason=Reason.INVALID_CONTENT) from exc


def audit_event_record(event: AuditEvent) -> dict[str, Any]:
    rec = event.model_dump()
    rec["event"] = event.event.value
    rec["at"] = to_millis(event.at)
    return rec


_AUDIT_REQUIRED = frozenset(name for name, f in AuditEvent.model_fields.items() if f.is_required())


def audit_event_model(rec: dict[str, Any]) -> AuditEvent:
    """The event of a decoded AuditEvent record. The Avro schema already fixed every field's type, so the model
    is built without pydantic's validation pass: the projector reads every event, and that pass was half its cost."""
    try:
        fields = {**rec, "at": from_millis(rec["at"]), "event": AuditEventType(rec["event"])}
        missing = _AUDIT_REQUIRED - fields.keys()
        if missing:
            raise KeyError(f"missing fields {sorted(missing)}")
        return AuditEvent.model_construct(**fields)
    except (PydanticValidationError, ValueError, KeyError, OverflowError, OSError) as exc:
        raise DecodingError(f"audit event cannot be read: {exc}", reason=Reason.INVALID_CONTENT) from exc


def _utf8_len(value: str | bytes) -> int:
    return len(value) if isinstance(value, bytes) or value.isascii() else len(value.encode())


def audit_event_size(record: dict[str, Any]) -> int:
    """An AuditEvent record's encoded size, over-estimated: its texts in UTF-8 (a reason in Vietnamese takes about 1.4
    bytes a character) and its bytes, and 192 for the rest (16 fields: union indexes, length prefixes, longs)."""
    return 192 + sum(_utf8_len(v) for v in record.values() if isinstance(v, (str, bytes)))


T = TypeVar("T")


def _unframed(count: int) -> int:
    return 0


def chunked(items: list[T], size: Callable[[T], int], max_count: int, max_bytes: int,
            framing: Callable[[int], int] = _unframed) -> list[list[T]]:
    """Items in order, grouped greedily as the contents of records: at most `max_count` a group and no more than fit
    in `max_bytes` by `size`, with what a record of n items adds around them (`framing(n)`: a header, a count, an
    end). An item bigger than that goes alone: the producer's request limit, `max_message_bytes` and 64 KiB, leaves
    it room."""
    chunks: list[list[T]] = []
    chunk: list[T] = []
    total = 0
    for item in items:
        grows = size(item)
        if chunk and (len(chunk) == max_count or framing(len(chunk) + 1) + total + grows > max_bytes):
            chunks.append(chunk)
            chunk, total = [], 0
        chunk.append(item)
        total += grows
    if chunk:
        chunks.append(chunk)
    return chunks


def audit_event_chunks(records: list[dict[str, Any]], max_bytes: int) -> list[list[dict[str, Any]]]:
    """AuditEvent records in order, grouped as the events of AuditEvents records: at most AUDIT_EVENTS_PER_RECORD
    together and no more than fit in `max_bytes` by `audit_event_size` (a SUBMITTED event carries the signed
    document)."""
    return chunked(records, audit_event_size, AUDIT_EVENTS_PER_RECORD, max_bytes)


def seen_size(record: dict[str, Any]) -> int:
    """A SeenMessage record's encoded size, over-estimated: its two texts in UTF-8, and 32 for their lengths and the
    two longs."""
    return 32 + _utf8_len(record["message_id"]) + _utf8_len(record["root_id"])


def seen_chunks(records: list[dict[str, Any]], max_bytes: int) -> list[list[dict[str, Any]]]:
    """SeenMessage records in order, grouped as the messages of SeenMessages records."""
    return chunked(records, seen_size, SEEN_PER_RECORD, max_bytes)


def decode_seen(codec: SingleObjectCodec, value: bytes | None) -> list[dict[str, Any]]:
    """The SeenMessage records of one seen topic record: a SeenMessages record, or one SeenMessage as routers wrote
    them before (the topic keeps twice the duplicate window, so both are read)."""
    data = value or b""
    if codec.writer_name(data) == SEEN_MESSAGE:
        return [codec.decode(data, SEEN_MESSAGE)]
    messages: list[dict[str, Any]] = codec.decode(data, SEEN_MESSAGES)["messages"]
    return messages


def decode_audit(codec: SingleObjectCodec, value: bytes | None) -> list[AuditEvent]:
    """The events of one audit topic record: an AuditEvents record, or a single AuditEvent as routers wrote them
    before (the topic keeps everything, so both stay readable)."""
    data = value or b""
    if codec.writer_name(data) == AUDIT_EVENT:
        return [audit_event_model(codec.decode(data, AUDIT_EVENT))]
    return [audit_event_model(e) for e in codec.decode(data, AUDIT_EVENTS)["events"]]
