"""The agency gateway: builds a message, signs it, publishes it to ingress, returns once the broker has it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from lienthong.agencies import check_address
from lienthong.documents import OfficialDocument
from lienthong.envelope import EnvelopeCodec
from lienthong.errors import Reason, ValidationError
from lienthong.messages import Message, MessageHeader, MessageKind, utc_now
from lienthong.notices import StatusNotice
from lienthong.signing import Signer
from lienthong.topics import Topics
from lienthong.transport.client import Outgoing, Publisher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
    """What the broker acknowledged."""

    message_id: str
    root_id: str
    partition: int
    offset: int
    size: int


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
    """Publishes signed messages for one agency."""

    def __init__(self, signer: Signer, sender: str, publisher: Publisher, envelopes: EnvelopeCodec,
                 topics: Topics, max_message_bytes: int) -> None:
        self.signer = signer
        self.sender = sender
        self._publisher = publisher
        self._envelopes = envelopes
        self._topics = topics
        self._max = max_message_bytes

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
        partition, offset = self._publisher.send_and_wait(Outgoing(
            self._topics.ingress, value, header.root_id.encode(), cloud_event_headers(header)))
        log.info("published", extra={"message_id": header.message_id, "root_id": header.root_id,
                                     "partition": partition, "offset": offset})
        return Sent(header.message_id, header.root_id, partition, offset, len(value))

    def send_document(self, document: OfficialDocument, recipients: Sequence[str]) -> Sent:
        if not recipients:
            raise ValidationError("a document needs at least one recipient", reason=Reason.NO_RECIPIENTS)
        for address in recipients:
            check_address(address)
        header = MessageHeader(kind=MessageKind.DOCUMENT, sender=self.sender, recipients=tuple(recipients),
                               root_id=document.document_id, created_at=utc_now())
        return self.publish(Message(header=header, payload=document))

    def send_notice(self, notice: StatusNotice, to: str) -> Sent:
        header = MessageHeader(kind=MessageKind.STATUS_NOTICE, sender=self.sender, recipients=(to,),
                               root_id=notice.document_id, created_at=utc_now())
        return self.publish(Message(header=header, payload=notice))

    def close(self) -> None:
        self._publisher.close()
