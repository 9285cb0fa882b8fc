"""The agency gateway: builds a message, signs it, and hands it to a sink that publishes it to ingress."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from lienthong.agencies import check_address
from lienthong.ballots import Ballot, BallotAnswer
from lienthong.confidential import EncryptionRecipient, seal_document
from lienthong.documents import BusinessType, OfficialDocument
from lienthong.dossiers import DossierStatusBatch
from lienthong.envelope import EnvelopeCodec, TrustedCertificate
from lienthong.errors import ConfigurationError, LienthongError, NotFoundError, Reason, ValidationError
from lienthong.messages import Message, MessageHeader, MessageKind, kind_of, own_root_id, utc_now
from lienthong.notices import StatusNotice
from lienthong.reports import Report
from lienthong.signing import Signer
from lienthong.topics import Topics
from lienthong.transport.client import Outgoing, Publisher
from producers.outbox import Outbox, Relay

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
    """What became of a message: published (with its ingress position) or queued in the outbox."""

    message_id: str
    root_id: str
    size: int
    partition: int | None = None
    offset: int | None = None

    @property
    def queued(self) -> bool:
        return self.offset is None


class Sink(Protocol):
    """Where a gateway's signed records go."""

    def submit(self, header: MessageHeader, record: Outgoing) -> Sent: ...

    def close(self) -> None: ...


class DirectSink:
    """Publish and wait for the broker's acknowledgement; fails if the broker is unreachable."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    def submit(self, header: MessageHeader, record: Outgoing) -> Sent:
        partition, offset = self._publisher.send_and_wait(record)
        return Sent(header.message_id, header.root_id, len(record.value or b""), partition, offset)

    def close(self) -> None:
        self._publisher.close()


class OutboxSink:
    """Store first, then try to publish for up to `wait_s`; a message the broker did not take stays queued."""

    def __init__(self, box: Outbox, relay: Relay, agency: str, wait_s: float = 10.0) -> None:
        self.outbox = box
        self.relay = relay
        self._agency = agency
        self._wait_s = wait_s

    def submit(self, header: MessageHeader, record: Outgoing) -> Sent:
        self.outbox.add(header.message_id, self._agency, header.root_id, record)
        self.relay.flush(self._wait_s)
        entry = self.outbox.entry(header.message_id)
        size = len(record.value or b"")
        if entry is not None and entry.sent_at is not None:
            return Sent(header.message_id, header.root_id, size, entry.partition, entry.offset)
        return Sent(header.message_id, header.root_id, size)

    def close(self) -> None:
        self.relay.close()
        self.outbox.close()


class RecipientDirectory(Protocol):
    """What a gateway asks the directory to encrypt a document: who a list of addresses is, and whose key."""

    def expand(self, addresses: Sequence[str], *, sender: str | None = None) -> tuple[str, ...]: ...

    def encryption_certificate(self, code: str, at: dt.datetime) -> TrustedCertificate: ...


class DirectorySource(Protocol):
    """A directory the gateway follows (a DirectoryFollower): its view, read to the end before each confidential
    send, so that group members and encryption certificates are those published by then."""

    @property
    def view(self) -> RecipientDirectory: ...

    def catch_up(self, timeout_s: float = 30.0) -> Sequence[object]: ...

    def close(self) -> None: ...


def cloud_event_headers(header: MessageHeader) -> list[tuple[str, bytes]]:
    """Routing metadata in the CloudEvents Kafka binding, readable by generic tools."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", header.message_id.encode()),
        ("ce_source", f"urn:lienthong:agency:{header.sender}".encode()),
        ("ce_type", f"gov.lienthong.{header.kind.value.lower()}".encode()),
        ("ce_time", header.created_at.isoformat().encode()),
        ("content-type", b"application/avro"),
    ]


class Gateway:
    """Signs and publishes messages for one agency."""

    def __init__(self, signer: Signer, sender: str, sink: Sink, envelopes: EnvelopeCodec,
                 topics: Topics, max_message_bytes: int, directory: DirectorySource | None = None) -> None:
        self.signer = signer
        self.sender = sender
        self.sink = sink
        self._envelopes = envelopes
        self._topics = topics
        self._max = max_message_bytes
        self._directory = directory

    def seal(self, message: Message) -> bytes:
        value = self._envelopes.seal(message, self.signer)
        if len(value) > self._max:
            raise ValidationError(
                f"message {message.header.message_id} is {len(value):,} bytes, over the limit of {self._max:,} "
                "bytes; send large attachments separately or raise LIENTHONG_MAX_MESSAGE_BYTES together with "
                "the broker's message.max.bytes",
                reason=Reason.MESSAGE_TOO_LARGE)
        return value

    def publish(self, message: Message) -> Sent:
        value = self.seal(message)
        header = message.header
        sent = self.sink.submit(header, Outgoing(self._topics.ingress, value, header.root_id.encode(),
                                                 cloud_event_headers(header)))
        log.info("queued" if sent.queued else "published",
                 extra={"message_id": header.message_id, "root_id": header.root_id, "partition": sent.partition,
                        "offset": sent.offset})
        return sent

    def send_document(self, document: OfficialDocument, recipients: Sequence[str], *,
                      confidential: bool = False, root_id: str | None = None) -> Sent:
        """Sign and publish a document; with confidential=True, encrypted first for every recipient agency.

        A revoke, update or replace (business type 1, 2, 3) acts on a document sent before: `root_id` names it.
        """
        if not recipients:
            raise ValidationError("a document needs at least one recipient", reason=Reason.NO_RECIPIENTS)
        for address in recipients:
            check_address(address)
        if document.business.type == BusinessType.NEW:
            if root_id not in (None, document.document_id):
                raise ValidationError("a new document is its own root; give root_id only to a revoke, update or "
                                      "replace", reason=Reason.KEY_MISMATCH)
            root_id = document.document_id
        elif root_id is None:
            raise ValidationError(f"a {document.business.type.name.lower()} must name the document it acts on "
                                  "(root_id)", reason=Reason.UNKNOWN_DOCUMENT)
        header = MessageHeader(kind=MessageKind.DOCUMENT, sender=self.sender, recipients=tuple(recipients),
                               root_id=root_id, created_at=utc_now())
        if not confidential:
            return self.publish(Message(header=header, payload=document))
        sealed = seal_document(self._envelopes.codec, document, header, self.encryption_recipients(header))
        return self.publish(Message(header=header, payload=sealed))

    def encryption_recipients(self, header: MessageHeader) -> list[EncryptionRecipient]:
        """Every agency the header's addresses reach, with its encryption certificate from the directory this
        gateway follows; one error naming every agency that has none, before anything is sent."""
        if self._directory is None:
            raise ConfigurationError("this gateway follows no directory, so it cannot find the recipients' "
                                     "encryption certificates; build it with producers.connect.gateway(..., "
                                     "confidential=True)")
        self._directory.catch_up()
        view = self._directory.view
        found: list[EncryptionRecipient] = []
        missing: list[str] = []
        for code in view.expand(header.recipients, sender=header.sender):
            try:
                found.append(EncryptionRecipient(code, view.encryption_certificate(code, header.created_at)
                                                 .certificate))
            except LienthongError:
                missing.append(code)
        if missing:
            raise NotFoundError(f"cannot encrypt for {', '.join(missing)}: no valid encryption certificate in the "
                                "directory; the operator runs `lienthong agency add <code> --name …` for each and "
                                "publishes the directory. Nothing was sent")
        return found

    def send_notice(self, notice: StatusNotice, to: str) -> Sent:
        header = MessageHeader(kind=MessageKind.STATUS_NOTICE, sender=self.sender, recipients=(to,),
                               root_id=notice.document_id, created_at=utc_now())
        return self.publish(Message(header=header, payload=notice))

    def send(self, payload: Report | Ballot | BallotAnswer | DossierStatusBatch, recipients: Sequence[str]) -> Sent:
        """Sign and publish a report, ballot, ballot answer or dossier status batch; its own id is the root id."""
        if not recipients:
            raise ValidationError("a message needs at least one recipient", reason=Reason.NO_RECIPIENTS)
        for address in recipients:
            check_address(address)
        header = MessageHeader(kind=kind_of(payload), sender=self.sender, recipients=tuple(recipients),
                               root_id=own_root_id(payload), created_at=utc_now())
        return self.publish(Message(header=header, payload=payload))

    def close(self) -> None:
        try:
            self.sink.close()
        finally:
            if self._directory is not None:
                self._directory.close()
