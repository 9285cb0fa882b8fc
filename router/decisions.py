"""The router's decisions as plain functions: bytes and the directory in, deliveries or a rejection out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from lienthong.agencies import is_group_address
from lienthong.audit.events import AuditEventType
from lienthong.ballots import Ballot, BallotAnswer
from lienthong.directory.view import DirectoryView
from lienthong.documents import BusinessType, ConfidentialDocument, OfficialDocument
from lienthong.dossiers import DossierStatusBatch
from lienthong.envelope import Envelope, EnvelopeCodec, ensure_bytes
from lienthong.errors import AuthorizationError, LienthongError, Reason, RoutingError, SignatureError
from lienthong.messages import PAYLOADS_OF_KIND, Message, MessageHeader, MessageKind, asks_agreement, own_root_id
from lienthong.notices import StatusCode, StatusNotice
from lienthong.records import to_millis
from lienthong.reports import Report


@dataclass(frozen=True)
class Accepted:
    envelope: Envelope
    message: Message
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class Rejected:
    reason: Reason
    detail: str
    message: Message | None = None
    to_dlq: bool = True  # a duplicate is recorded in the audit but is no error to look at
    # The signed header alone, when the signature held but the payload broke a rule: the audit can still say who
    # sent what (message id, root id, sender), so a sender finds its own refusals.
    signed_header: MessageHeader | None = None

    @property
    def header(self) -> MessageHeader | None:
        return self.message.header if self.message is not None else self.signed_header


Decision = Accepted | Rejected


# Kinds that go to exactly one agency, and to whom.
_ONE_RECIPIENT = {
    MessageKind.STATUS_NOTICE: "a status notice goes to exactly one agency: the sender of the document",
    MessageKind.BALLOT_ANSWER: "a ballot answer goes to exactly one agency: the sender of the ballot",
    MessageKind.REPORT: "a report goes to exactly one agency: its regime's receiving agency",
    MessageKind.DOSSIER_STATUS: "a dossier status batch goes to exactly one agency: the national portal",
}


def authorize(message: Message, directory: DirectoryView, arrived: dt.datetime | None = None,
              clock_skew: dt.timedelta = dt.timedelta(minutes=5)) -> tuple[str, ...]:
    """The agencies a verified message goes to; raises if the sender, the recipients or the payload's own rules
    (a report's regime and period, a dossier event's dates) do not hold. `arrived` is when ingress took it."""
    header, payload = message.header, message.payload
    directory.agency(header.sender)
    if not isinstance(payload, PAYLOADS_OF_KIND[header.kind]):
        raise AuthorizationError(f"header says {header.kind.value} but the payload is not one",
                                 reason=Reason.WRONG_KIND)
    if header.kind in _ONE_RECIPIENT and (len(header.recipients) != 1 or is_group_address(header.recipients[0])):
        raise RoutingError(_ONE_RECIPIENT[header.kind], reason=Reason.UNKNOWN_RECIPIENT)
    recipients = directory.expand(header.recipients, sender=header.sender)
    if isinstance(payload, Report):
        _check_report(payload, header.sender, recipients, directory, arrived or header.created_at)
    elif isinstance(payload, Ballot) and set(recipients) != set(payload.members):
        raise RoutingError("a ballot goes to exactly the members it lists", reason=Reason.UNKNOWN_RECIPIENT)
    elif isinstance(payload, DossierStatusBatch):
        latest = (arrived or header.created_at) + clock_skew
        future = next((e for e in payload.events if e.time > latest), None)
        if future is not None:
            raise AuthorizationError(f"dossier {future.dossier_code}: status time {future.time:%Y-%m-%d %H:%M:%S} "
                                     "UTC is in the future", reason=Reason.IMPOSSIBLE_DATE)
    if isinstance(payload, ConfidentialDocument):
        # Only readable metadata: who has a wrapped key. A recipient without one could not open the document, so
        # nobody gets it, and the sender learns why (its directory was older than the router's, most likely).
        missing = [code for code in recipients if payload.wrapped_for(code) is None]
        if missing:
            raise RoutingError(f"confidential document has no key for {', '.join(missing)}, who the recipients "
                               "include; send it again so that it is encrypted for every recipient",
                               reason=Reason.UNKNOWN_RECIPIENT)
    return recipients


def _check_report(report: Report, sender: str, recipients: tuple[str, ...], directory: DirectoryView,
                  arrived: dt.datetime) -> None:
    regime = directory.regime(report.regime)
    if sender not in directory.expand(regime.reporting):
        raise AuthorizationError(f"{sender} is not a reporting agency of regime {regime.code}",
                                 reason=Reason.NOT_AUTHORIZED)
    if recipients != (regime.receiving,):
        raise RoutingError(f"reports of regime {regime.code} go to {regime.receiving}", reason=Reason.UNKNOWN_RECIPIENT)
    regime.check_open(report.check_against(regime), arrived)


@dataclass(frozen=True)
class Placement:
    """Where the record was found: its key and partition, and the partition Kafka's default partitioner gives that
    key on ingress (computed by the caller, where the Kafka client lives: decisions do no I/O and import no Kafka)."""

    key: bytes | None
    partition: int
    key_home: int | None


def check_identity(message: Message, signer_agency: str, placement: Placement | None) -> None:
    """The signed header, not the unsigned record, decides sender, story and partition."""
    header, payload = message.header, message.payload
    if header.sender != signer_agency:
        raise SignatureError(f"message claims to come from {header.sender} but is signed with the key of "
                             f"{signer_agency}", reason=Reason.SENDER_MISMATCH)
    if isinstance(payload, (OfficialDocument, ConfidentialDocument)):
        if payload.document_id.split(",")[0] != header.sender:
            raise SignatureError(f"document id {payload.document_id} names another agency than its sender "
                                 f"{header.sender}", reason=Reason.SENDER_MISMATCH)
        # A confidential document's business type is encrypted: its recipients check this rule after decrypting.
        if (isinstance(payload, OfficialDocument) and payload.business.type == BusinessType.NEW
                and header.root_id != payload.document_id):
            raise RoutingError("a new document is its own root: root id must equal its document id",
                               reason=Reason.KEY_MISMATCH)
        if (isinstance(payload, OfficialDocument) and payload.business.type != BusinessType.NEW
                and header.root_id == payload.document_id):
            raise RoutingError(f"a {payload.business.type.name.lower()} must name the document it acts on as its "
                               "root id, not itself", reason=Reason.UNKNOWN_DOCUMENT)
        if header.root_id != payload.document_id and not header.root_id.startswith(f"{header.sender},"):
            raise SignatureError(f"only {header.sender}'s own documents can be revoked, updated or replaced by it; "
                                 f"{header.root_id} is another agency's", reason=Reason.SENDER_MISMATCH)
    elif isinstance(payload, StatusNotice):
        if header.root_id != payload.document_id:
            raise RoutingError("a status notice's root id must be the document it is about",
                               reason=Reason.KEY_MISMATCH)
    else:
        if header.root_id != own_root_id(payload):
            raise RoutingError(f"the root id of a {header.kind.value} must be its own id {own_root_id(payload)}",
                               reason=Reason.KEY_MISMATCH)
        if not isinstance(payload, BallotAnswer) and not header.root_id.startswith(f"{header.sender},"):
            raise SignatureError(f"{header.root_id} names another agency than its sender {header.sender}",
                                 reason=Reason.SENDER_MISMATCH)
    if placement is not None:
        if placement.key != header.root_id.encode():
            raise RoutingError("the record key is not the signed root id", reason=Reason.KEY_MISMATCH)
        if placement.partition != placement.key_home:
            # Duplicates are remembered per partition: a record placed by hand elsewhere could slip past them.
            raise RoutingError(f"record is in ingress partition {placement.partition}, but its key belongs in "
                               f"{placement.key_home}", reason=Reason.KEY_MISMATCH)


def decide(value: bytes | None, directory: DirectoryView, envelopes: EnvelopeCodec, now: dt.datetime,
           clock_skew: dt.timedelta, window: dt.timedelta = dt.timedelta(days=7),
           placement: Placement | None = None, arrived: dt.datetime | None = None) -> Decision:
    """Read, verify, decode and authorize one ingress record.

    A message older than the duplicate window is refused as stale: the router no longer remembers its id, so
    it could not tell a replay from a first delivery.
    """
    message: Message | None = None
    signer_agency: str | None = None
    try:
        envelope = envelopes.read(ensure_bytes(value))
        signer = envelopes.verify(envelope, directory, now)
        signer_agency = signer.agency
        message = envelopes.decode_content(envelope)
        if signer.subject_agency != signer.agency:
            raise SignatureError("certificate subject and directory disagree on the agency",
                                 reason=Reason.SENDER_MISMATCH)
        check_identity(message, signer.agency, placement)
        if message.header.created_at > now + clock_skew:
            raise AuthorizationError(f"message time {message.header.created_at:%Y-%m-%d %H:%M:%S} UTC is in the "
                                     "future", reason=Reason.FROM_THE_FUTURE)
        if message.header.created_at < now - window:
            raise AuthorizationError(f"message time {message.header.created_at:%Y-%m-%d %H:%M:%S} UTC is older than "
                                     f"the duplicate window of {window}; send it again as a new message",
                                     reason=Reason.STALE)
        return Accepted(envelope, message, authorize(message, directory, arrived or now, clock_skew))
    except SignatureError as exc:
        if exc.reason == Reason.CERTIFICATE_REVOKED and message is None:
            # The signature held (revocation is checked last), so the content is safe to read for the audit.
            try:
                message = envelopes.decode_content(envelope)
            except LienthongError:
                message = None
        return Rejected(exc.reason, exc.message, message)
    except LienthongError as exc:
        header = None
        if message is None and signer_agency is not None:
            header = envelopes.decode_header(envelope)
            if header is not None and header.sender != signer_agency:
                header = None  # its sender is not whose signature held: nothing in it can be attributed
        return Rejected(exc.reason, exc.message, message, signed_header=header)


def as_duplicate(decision: Accepted) -> Rejected:
    """What a verified message becomes when its id was delivered before."""
    return Rejected(Reason.DUPLICATE, f"message {decision.message.header.message_id} was delivered before; "
                    "not delivered again", decision.message, to_dlq=False)


@dataclass(frozen=True)
class Position:
    """Where a record came from: makes audit event ids deterministic."""

    topic: str
    partition: int
    offset: int
    timestamp: dt.datetime


def audit_records(decision: Decision, position: Position, now: dt.datetime,
                  raw: bytes | None = None) -> list[dict[str, Any]]:
    """The audit trail of one decision, as AuditEvent records (the Avro form the router writes: the event type by
    name, times in milliseconds); an accepted message's SUBMITTED event carries its signed bytes.

    Built as records directly from values the router already holds in their checked types: a pydantic model per
    event and its dump were 40% of the audit work, which is one event per recipient.
    """
    digest = decision.envelope.content_digest if isinstance(decision, Accepted) else None
    header = decision.header if isinstance(decision, Rejected) else decision.message.header
    common: dict[str, Any] = {
        "message_id": header.message_id if header else None, "root_id": header.root_id if header else None,
        "kind": header.kind.value if header else None, "sender": header.sender if header else None,
        "source_topic": position.topic, "source_partition": position.partition, "source_offset": position.offset,
        "content_sha256": digest,
    }
    prefix = f"{position.topic}/{position.partition}/{position.offset}/"
    now_ms = to_millis(now)

    def event(kind: AuditEventType, at_ms: int, recipient: str | None = None, *, status: str | None = None,
              reason_code: str | None = None, reason: str | None = None,
              envelope: bytes | None = None) -> dict[str, Any]:
        return {"event_id": f"{prefix}{kind.value}/{recipient or '-'}", "event": kind.value, "at": at_ms,
                "recipient": recipient, "status": status, "reason_code": reason_code, "reason": reason,
                "envelope": envelope, **common}

    records = []
    if header is not None:
        evidence = raw if isinstance(decision, Accepted) else None
        records.append(event(AuditEventType.SUBMITTED, to_millis(position.timestamp), envelope=evidence))
    if isinstance(decision, Rejected):
        records.append(event(AuditEventType.REJECTED, now_ms, reason_code=decision.reason.value,
                             reason=decision.detail))
        return records
    payload = decision.message.payload
    if isinstance(payload, StatusNotice):
        records.append(event(AuditEventType.STATUS, now_ms, decision.recipients[0], status=payload.status.value,
                             reason=payload.reason))
    else:
        records.append(event(AuditEventType.ROUTED, now_ms))
    records.extend(event(AuditEventType.DELIVERED, now_ms, r) for r in decision.recipients)
    if asks_agreement(decision.message):
        # A revoke or update is the sender's request 13 to each recipient it goes to; its reason is the business's.
        reason = payload.business.reason if isinstance(payload, OfficialDocument) else None
        records.extend(event(AuditEventType.STATUS, now_ms, r, status=StatusCode.RECALL_REQUESTED.value,
                             reason=reason) for r in decision.recipients)
    return records

