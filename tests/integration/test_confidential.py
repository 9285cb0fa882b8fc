"""Confidential documents on the real broker: only the named recipients read them; the bus routes and audits them
without ever holding their plaintext."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from cryptography.exceptions import InvalidTag

from lienthong.audit.events import AuditEventType
from lienthong.confidential import (
    SUITE,
    EncryptionRecipient,
    open_document,
    seal_document,
    unwrap_content_key,
    wrap_info,
)
from lienthong.documents import Attachment, ConfidentialDocument
from lienthong.errors import DecodingError, Reason
from lienthong.messages import Message, MessageHeader, MessageKind, utc_now
from lienthong.records import decode_audit
from lienthong.transport.client import Outgoing
from producers.connect import gateway as connect_gateway
from producers.gateway import cloud_event_headers
from tests.integration.conftest import BusHarness, wait_for
from tests.support import MINISTRY_A, MINISTRY_B, OFFICE, PROVINCE, document

pytestmark = pytest.mark.integration


def test_a_confidential_document_is_read_by_its_recipients_and_by_nobody_else(harness: BusHarness) -> None:
    harness.add_agencies([OFFICE, MINISTRY_A, MINISTRY_B, PROVINCE])
    harness.start_router()
    harness.start_projector()
    bus = harness.bus
    subject = f"MẬT — phương án sắp xếp tổ chức bộ máy {uuid.uuid4().hex}"
    scan = b"CONFIDENTIAL-SCAN:" + os.urandom(30_000)
    doc = document(subject=subject, attachments=(Attachment.of("phương án.pdf", scan, "application/pdf"),))
    gateway = connect_gateway(bus, OFFICE, confidential=True)
    harness.closers.append(gateway.close)
    sent = gateway.send_document(doc, [MINISTRY_A, MINISTRY_B], confidential=True)

    def hides_the_plaintext(value: bytes | None) -> bool:
        data = value or b""
        return subject.encode() not in data and scan[:18] not in data and scan[5_000:5_064] not in data

    # Both recipients store the plaintext.
    for code in (MINISTRY_A, MINISTRY_B):
        receiver = harness.receiver(code)
        items = wait_for(f"the document at {code}", lambda r=receiver: r.poll(200))  # type: ignore[misc]
        assert [i.kind for i in items] == ["document"], items
        assert items[0].message is not None and items[0].message.payload == doc
        stored = receiver.store.document(doc.document_id)
        header = json.loads((stored.folder / "header.json").read_text(encoding="utf-8"))
        assert header["document"]["subject"] == subject and header["confidential"] is True
        assert (stored.folder / "attachments" / "phương án.pdf").read_bytes() == scan
        assert hides_the_plaintext((stored.folder / "envelope.avro").read_bytes()), "the signed bytes stay encrypted"

    # The bytes on the inbox topics hold neither the subject nor the attachment; the routing metadata is readable.
    values = {}
    for code in (MINISTRY_A, MINISTRY_B):
        [record] = [r for r in harness.read_topic(bus.topics.inbox(code), 1)
                    if r.headers.get("ce_id") == sent.message_id.encode()]
        assert hides_the_plaintext(record.value)
        assert record.key == doc.document_id.encode() and doc.document_id.encode() in (record.value or b"")
        values[code] = record.value or b""
    assert values[MINISTRY_A] == values[MINISTRY_B], "one ciphertext for every recipient"

    # The router routed it: DELIVERED to both, nothing refused; the audit topic keeps only the ciphertext.
    def delivered() -> set[str]:
        return {e.recipient or "" for e in harness.audit.events(doc.document_id)
                if e.event == AuditEventType.DELIVERED and e.message_id == sent.message_id}

    assert wait_for("DELIVERED rows for both ministries", lambda: delivered() == {MINISTRY_A, MINISTRY_B})
    assert harness.audit.count(AuditEventType.REJECTED) == 0
    audit_records = harness.read_topic(bus.topics.audit, 1)  # the document's events are in one record
    assert all(hides_the_plaintext(r.value) for r in audit_records)
    submitted = [e for r in audit_records for e in decode_audit(bus.envelopes.codec, r.value)
                 if e.event == AuditEventType.SUBMITTED and e.message_id == sent.message_id]
    assert [e.envelope for e in submitted] == [values[MINISTRY_A]], "the evidence is the signed ciphertext"

    # A third agency's key unwraps no content key, whichever wrapped key it tries.
    envelope, message = bus.envelopes.open(values[MINISTRY_A], harness.bus.directory_view(), utc_now())
    assert isinstance(message.payload, ConfidentialDocument)
    province = bus.keystore().recipient_key(PROVINCE)
    with pytest.raises(DecodingError) as err:
        unwrap_content_key(message.payload, message.header, province)
    assert err.value.reason == Reason.UNKNOWN_RECIPIENT
    for wrapped in message.payload.recipients:
        with pytest.raises(InvalidTag):
            SUITE.decrypt(wrapped.ephemeral_key + wrapped.wrapped_key, province.key,
                          info=wrap_info(message.header, wrapped.agency))
    assert open_document(bus.envelopes.codec, message, bus.keystore().recipient_key(MINISTRY_A)).payload == doc

    # Each ministry's 01 is a receipt of the signed ciphertext.
    office = harness.receiver(OFFICE)
    notices: list = []  # type: ignore[type-arg]
    wait_for("two 01 notices at the Office",
             lambda: notices.extend(i for i in office.poll(200) if i.kind == "notice") or len(notices) >= 2)
    assert {n.message.payload.document_digest for n in notices} == {envelope.content_digest}


def test_a_receiver_the_document_was_not_encrypted_for_quarantines_it(harness: BusHarness) -> None:
    """Written straight to an inbox, past the router that would refuse it: the receiver says why it cannot read it."""
    harness.add_agencies([OFFICE, MINISTRY_A, PROVINCE])
    bus = harness.bus
    view = harness.bus.directory_view()
    doc = document(subject=f"MẬT {uuid.uuid4().hex}")
    header = MessageHeader(kind=MessageKind.DOCUMENT, sender=OFFICE, recipients=(MINISTRY_A, PROVINCE),
                           root_id=doc.document_id, created_at=utc_now())
    only_a = [EncryptionRecipient(MINISTRY_A, view.encryption_certificate(MINISTRY_A, utc_now()).certificate)]
    message = Message(header=header, payload=seal_document(bus.envelopes.codec, doc, header, only_a))
    value = bus.envelopes.seal(message, bus.keystore().signer(OFFICE))
    publisher = bus.publisher()
    try:
        publisher.send_and_wait(Outgoing(bus.topics.inbox(PROVINCE), value, doc.document_id.encode(),
                                         cloud_event_headers(header)))
    finally:
        publisher.close()
    receiver = harness.receiver(PROVINCE)
    [item] = wait_for("the record at the province", lambda: receiver.poll(200))
    assert item.kind == "quarantined" and f"not for {PROVINCE}" in item.detail
    [row] = receiver.store.quarantined()
    assert row["reason_code"] == Reason.UNKNOWN_RECIPIENT.value and row["raw"] == value
    assert receiver.store.documents() == []
