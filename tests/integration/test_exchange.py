"""The whole path on the real broker: gateway → router → inboxes → receivers → notices back → audit."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from lienthong.audit.timeline import build_timeline
from lienthong.documents import Attachment
from lienthong.notices import StatusCode
from tests.integration.conftest import BusHarness, wait_for
from tests.support import MINISTRY_A, MINISTRY_B, OFFICE, PARTY, PROVINCE, document

pytestmark = pytest.mark.integration


def test_document_reaches_every_recipient_and_every_answer_comes_back(harness: BusHarness) -> None:
    harness.add_agencies()
    harness.start_router()
    harness.start_projector()
    scan = os.urandom(50_000)
    doc = document(attachments=(Attachment.of("Công văn 7816.pdf", scan, "application/pdf"),
                                Attachment.of("../../etc/phụ lục.docx", b"docx bytes")))
    sent = harness.gateway(OFFICE).send_document(doc, ["group:ministries", PROVINCE])

    receivers = {code: harness.receiver(code) for code in (MINISTRY_A, MINISTRY_B, PROVINCE, PARTY)}
    for code in (MINISTRY_A, MINISTRY_B, PROVINCE):
        items = wait_for(f"the document in {code}'s inbox", lambda c=code: receivers[c].poll(200))
        assert [i.kind for i in items] == ["document"]
        stored = receivers[code].store.document(doc.document_id)
        assert stored.message_id == sent.message_id and stored.last_status is StatusCode.ARRIVED
        header = json.loads((stored.folder / "header.json").read_text(encoding="utf-8"))
        assert header["document"]["subject"] == doc.subject and header["sender"] == OFFICE
        files = {a["file"]: a for a in header["attachments"]}
        assert (stored.folder / "attachments" / "Công văn 7816.pdf").read_bytes() == scan
        assert files["Công văn 7816.pdf"]["sha256"] == hashlib.sha256(scan).hexdigest()
        assert (stored.folder / "attachments" / "phụ lục.docx").exists(), "path parts of names are dropped"
    assert receivers[PARTY].poll(1000) == [], "the Party body was not addressed"

    receivers[MINISTRY_A].reply(doc.document_id, StatusCode.ACCEPTED, staff="Văn thư")
    receivers[MINISTRY_B].reply(doc.document_id, StatusCode.ACCEPTED)
    receivers[MINISTRY_B].reply(doc.document_id, StatusCode.ASSIGNED, description="Vụ Tổ chức")
    receivers[PROVINCE].reply(doc.document_id, StatusCode.REJECTED, reason="Không đúng thẩm quyền")

    office = harness.receiver(OFFICE)
    notices: list = []
    wait_for("7 notices back at the Government Office",
             lambda: notices.extend(i for i in office.poll(200) if i.kind == "notice") or len(notices) >= 7)
    by_sender = {(n.message.header.sender, n.message.payload.status) for n in notices}
    assert by_sender == {(MINISTRY_A, StatusCode.ARRIVED), (MINISTRY_A, StatusCode.ACCEPTED),
                         (MINISTRY_B, StatusCode.ARRIVED), (MINISTRY_B, StatusCode.ACCEPTED),
                         (MINISTRY_B, StatusCode.ASSIGNED), (PROVINCE, StatusCode.ARRIVED),
                         (PROVINCE, StatusCode.REJECTED)}
    digest = receivers[MINISTRY_A].store.document(doc.document_id).digest
    assert all(n.message.payload.document_digest == digest for n in notices), "notices are receipts of the bytes"

    def settled():  # type: ignore[no-untyped-def]
        t = build_timeline(doc.document_id, harness.audit.events(doc.document_id))
        steps = sum(len(r.steps) for r in t.recipients.values())
        return t if len(t.recipients) == 3 and not t.waiting and steps == 7 else None

    timeline = wait_for("the audit timeline to show every answer", settled)
    assert timeline.sender == OFFICE and timeline.message_id == sent.message_id
    assert [s.status.value for s in timeline.recipients[MINISTRY_B].steps] == ["01", "03", "04"]
    assert timeline.recipients[PROVINCE].latest.reason == "Không đúng thẩm quyền"  # type: ignore[union-attr]
    assert all(r.delivered_at for r in timeline.recipients.values())


def test_inbox_records_carry_cloudevents_headers_and_the_root_key(harness: BusHarness) -> None:
    harness.add_agencies([OFFICE, MINISTRY_A])
    harness.start_router()
    sent = harness.gateway(OFFICE).send_document(document(), [MINISTRY_A])
    [record] = harness.read_topic(harness.bus.topics.inbox(MINISTRY_A), 1)
    assert record.key == sent.root_id.encode()
    assert record.headers["ce_id"] == sent.message_id.encode()
    assert record.headers["ce_source"] == f"urn:lienthong:agency:{OFFICE}".encode()
    assert record.headers["ce_type"] == b"gov.lienthong.document"
    assert record.headers["ce_specversion"] == b"1.0"


def test_notices_about_a_document_arrive_in_the_order_they_were_sent(harness: BusHarness) -> None:
    harness.add_agencies([OFFICE, MINISTRY_A])
    harness.start_router()
    gateway = harness.gateway(OFFICE)
    sent = [gateway.send_document(document(number=f"O{n}"), [MINISTRY_A]) for n in range(10)]
    ministry = harness.receiver(MINISTRY_A)
    received: list = []
    wait_for("ten documents at the ministry", lambda: received.extend(ministry.poll(200)) or len(received) >= 10)
    handling = [StatusCode.ACCEPTED, StatusCode.ASSIGNED, StatusCode.IN_PROGRESS, StatusCode.COMPLETED]
    for status in handling:  # interleaved across documents: per document, the order must hold
        for s in sent:
            ministry.reply(s.message_id, status)
    records = harness.read_topic(harness.bus.topics.inbox(OFFICE), 50)
    by_document: dict[str, list[str]] = {}
    for record in records:
        message = harness.bus.envelopes.decode_content(harness.bus.envelopes.read(record.value or b""))
        by_document.setdefault(message.header.root_id, []).append(message.payload.status.value)
    assert len(by_document) == 10
    assert all(codes == ["01", "03", "04", "05", "06"] for codes in by_document.values()), by_document
