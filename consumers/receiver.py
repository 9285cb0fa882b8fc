"""The receiver SDK: read an agency's inbox, verify each sender's signature here, store, acknowledge."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from consumers.inbox_store import InboxStore
from lienthong.confidential import RecipientKey, open_document
from lienthong.directory.sync import DirectoryFollower
from lienthong.documents import ConfidentialDocument, OfficialDocument
from lienthong.envelope import ensure_bytes
from lienthong.errors import DecodingError, LienthongError, Reason, SignatureError
from lienthong.messages import Message, asks_agreement, utc_now
from lienthong.metrics import ReceiverMetrics
from lienthong.notices import StatusCode, StatusNotice, check_transition
from lienthong.transport.client import Record, Subscriber
from lienthong.wiring import Bus
from producers.connect import gateway as connect_gateway
from producers.gateway import Gateway, Sent

log = logging.getLogger(__name__)


# A projector's entry point: a verified message and the inbox record it came in (its topic, partition, offset).
Handler = Callable[[Message, Record], None]


@dataclass(frozen=True)
class Received:
    """What one inbox record turned out to be."""

    # "document", "notice", "report", "ballot", "ballot_answer", "dossier_status", "duplicate" or "quarantined"
    kind: str
    message: Message | None
    detail: str = ""


class Receiver:
    """One agency's inbox reader. Integrity is checked here, end to end, not taken from the router."""

    def __init__(self, bus: Bus, agency: str, store: InboxStore, gateway: Gateway, follower: DirectoryFollower,
                 consumer: Subscriber, metrics: ReceiverMetrics | None = None,
                 clock: Callable[[], dt.datetime] = utc_now, recipient_key: RecipientKey | None = None,
                 handlers: Sequence[Handler] = ()) -> None:
        self.bus = bus
        self.agency = agency
        self.store = store
        self.gateway = gateway
        self.follower = follower
        self.consumer = consumer
        self.metrics = metrics or ReceiverMetrics()
        self.clock = clock
        self.recipient_key = recipient_key  # opens confidential documents; None: they are quarantined
        # Projectors: called with every verified message other than a document (notices, reports, ballots, answers,
        # dossier batches) after it is stored, before the offset is committed, so a crash calls them again with the
        # same message; they must be idempotent.
        self.handlers = list(handlers)

    @classmethod
    def connect(cls, bus: Bus, agency: str, handlers: Sequence[Handler] = ()) -> Receiver:
        """A receiver for `agency` with its keys from the keystore and its store under the inbox folder."""
        keystore = bus.keystore()
        recipient_key = keystore.recipient_key(agency) if keystore.has_encryption(agency) else None
        follower = bus.directory_follower()
        follower.catch_up()
        follower.view.agency(agency)  # the directory on the bus, not the operator's database, says who exists
        gateway = connect_gateway(bus, agency)
        consumer = bus.subscriber([bus.topics.inbox(agency)], bus.topics.receiver_group(agency),
                              client_id=f"receiver-{agency}")
        return cls(bus, agency, InboxStore(bus.settings.inbox_dir / agency), gateway, follower, consumer,
                   recipient_key=recipient_key, handlers=handlers)

    def poll(self, timeout_ms: int = 500) -> list[Received]:
        """Handle what arrived; offsets are committed only after everything in the batch is stored."""
        records = self.consumer.poll(timeout_ms)
        if records:  # the directory as it stands now, before any of these is verified
            self.follower.catch_up()
        results = [self.handle(record) for record in records]
        if records:
            self.consumer.commit()
        return results

    def handle(self, record: Record) -> Received:
        try:
            raw = ensure_bytes(record.value)
            # Checked as of when the router delivered it: a certificate revoked or expired since then does not make
            # a document that was valid on arrival unreadable.
            at = record.time or self.clock()
            envelope, message = self.bus.envelopes.open(raw, self.follower.view, at)
            recipients = self.follower.view.expand(message.header.recipients, sender=message.header.sender)
            if self.agency not in recipients:
                raise SignatureError(f"message is not addressed to {self.agency}", reason=Reason.UNKNOWN_RECIPIENT)
            # The recipient's state once it arrives, by the router's rule on the message as signed: a revoke or update
            # asks for agreement (13); a new document, a new delivery of it or a replacement is delivered (None).
            arrival = StatusCode.RECALL_REQUESTED if asks_agreement(message) else None
            confidential = isinstance(message.payload, ConfidentialDocument)
            if confidential:  # verified first: decrypt only what its sender signed
                message = self.decrypt(message)
        except LienthongError as exc:
            source = f"{record.topic}/{record.partition}/{record.offset}"
            self.store.quarantine(source, exc.reason.value, exc.message, record.value)
            self.metrics.received.labels("quarantined", exc.reason.value).inc()
            log.warning("inbox record quarantined", extra={"source": source, "reason": exc.reason.value})
            return Received("quarantined", None, exc.message)
        if isinstance(message.payload, OfficialDocument):
            known = self.store.has(message.header.message_id)
            if not known:
                self.store.store_document(raw, envelope, message, confidential=confidential, state=arrival)
            stored = self.store.document(message.header.message_id)
            # 01 acknowledges a new delivery (a new document, a new delivery of it, a replacement), also after a
            # crash between storing and acknowledging; a revoke or update request waits for a person's 15 or 16.
            if (arrival is None and stored.last_status is None
                    and self.store.story_state(stored.root_id) is None):
                self.reply(message.header.message_id, StatusCode.ARRIVED, description="received and verified")
            self.metrics.received.labels("duplicate" if known else "document", "").inc()
            return Received("duplicate" if known else "document", message)
        known = self.store.has(message.header.message_id)
        if not known:
            if isinstance(message.payload, StatusNotice):
                self.store.store_notice(message, raw)
            else:
                self.store.store_message(message, raw)
        for handler in self.handlers:  # also for a known one: the crash may have come between store and handler
            handler(message, record)
        kind = "duplicate" if known else (
            "notice" if isinstance(message.payload, StatusNotice) else message.header.kind.value.lower())
        self.metrics.received.labels(kind, "").inc()
        return Received(kind, message)

    def decrypt(self, message: Message) -> Message:
        """A verified confidential document, decrypted with this agency's encryption key."""
        if self.recipient_key is None:
            raise DecodingError(f"a confidential document arrived for {self.agency}, which has no encryption key "
                                "here; `lienthong agency add` creates one", reason=Reason.CANNOT_DECRYPT)
        return open_document(self.bus.envelopes.codec, message, self.recipient_key)

    def reply(self, document: str, status: StatusCode, *, reason: str | None = None, staff: str = "",
              description: str = "") -> Sent:
        """Send a signed status notice about a received document back to its sender.

        `document` is a document id, a message id, or the root id of a story (then its latest delivery is
        answered: 15 or 16 to a revoke or update request). The notice names the story root as its document and
        the exact delivery answered by message id and digest. The status must follow this agency's state in the
        story by the rules the router applies too; a refused transition raises before anything is sent."""
        stored = self.store.document(document)
        check_transition(self.store.story_state(stored.root_id), status)
        notice = StatusNotice(document_id=stored.root_id, document_message_id=stored.message_id,
                              document_digest=stored.digest, status=status, staff=staff, description=description,
                              reason=reason, time=utc_now())
        sent = self.gateway.send_notice(notice, stored.sender)
        self.store.record_sent_status(stored.message_id, status, reason, sent.message_id, stored.root_id)
        return sent

    def close(self) -> None:
        for part in (self.consumer, self.follower, self.gateway, self.store):
            try:
                part.close()
            except LienthongError as exc:
                log.warning("close failed: %s", exc.message)
