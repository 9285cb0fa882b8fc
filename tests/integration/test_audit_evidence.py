"""The audit trail from a real exchange, on SQLite and PostgreSQL: verify, queries, and evidence bundles that hold
offline and fail when anything in them is altered."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives import serialization

from consumers.audit_projector import AuditProjector
from lienthong.audit import evidence, queries
from lienthong.audit.events import AuditEventType
from lienthong.certificates import BusCA
from lienthong.notices import StatusCode
from tests.integration.conftest import BusHarness, wait_for
from tests.support import MINISTRY_A, MINISTRY_B, OFFICE, PROVINCE, document

pytestmark = pytest.mark.integration


def test_audit_from_a_real_exchange_verifies_answers_queries_and_exports_evidence(
        harness: BusHarness, database_url: str) -> None:
    bus = harness.bus
    harness.add_agencies([OFFICE, MINISTRY_A, MINISTRY_B, PROVINCE])
    harness.start_router()
    store = bus.audit_store(database_url, writer=True)
    store.checkpoint_rows = 7
    projector = AuditProjector.connect(bus, store, group=f"{bus.topics.projector_group()}-{database_url[:5]}")
    harness.services.run("projector-under-test", projector.run)
    harness.closers.append(projector.close)
    harness.closers.append(store.close)

    gateway = harness.gateway(OFFICE)
    doc = document(number="E1")
    sent = gateway.send_document(doc, [MINISTRY_A, MINISTRY_B, PROVINCE])
    other = gateway.send_document(document(number="E2"), [MINISTRY_A])
    for code, status, reason in ((MINISTRY_A, StatusCode.ACCEPTED, None),
                                 (PROVINCE, StatusCode.REJECTED, "Không thuộc thẩm quyền")):
        receiver = harness.receiver(code)
        wait_for(f"{code} to receive", lambda r=receiver: r.store.has(sent.message_id) or (r.poll(200) and False))
        receiver.reply(sent.message_id, status, reason=reason)
    harness.receiver(MINISTRY_B)  # silent: it receives nothing in this test, it only exists

    wait_for("the answers in the audit", lambda: len([e for e in store.events(doc.document_id)
                                                      if e.event == AuditEventType.STATUS]) >= 4)
    store.checkpoint(force=True)
    ca = BusCA.load(bus.settings.ca_dir)
    report = store.verify(ca.certificate, bus.envelopes.codec)
    assert report.ok and report.rows >= 14 and report.checkpoints >= 2 and report.uncovered == 0

    # Queries.
    rejected = queries.find(store, queries.EventFilter(status="02"))
    assert [(e.sender, e.reason) for e in rejected] == [(PROVINCE, "Không thuộc thẩm quyền")]
    by_recipient = queries.find(store, queries.EventFilter(recipient=MINISTRY_A, event=AuditEventType.DELIVERED))
    assert {e.root_id for e in by_recipient} == {doc.document_id, other.root_id}
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=25)
    late = {(o.document_id, o.recipient) for o in queries.overdue(store, 24, later)}
    assert late == {(doc.document_id, MINISTRY_B), (other.root_id, MINISTRY_A)}
    assert queries.overdue(store, 24, dt.datetime.now(dt.UTC)) == []
    figures = {f.agency: f for f in queries.agency_figures(store)}
    assert figures[OFFICE].sent == 2 and figures[MINISTRY_A].received == 2 and figures[PROVINCE].rejected == 1
    assert figures[MINISTRY_A].accepted == 1 and figures[MINISTRY_A].median_seconds_to_accept is not None

    # The evidence bundle holds offline, and says so only while nothing in it was altered.
    directory = bus.directory_store()
    bundle = json.loads(evidence.dump(evidence.export(store, doc.document_id, ca.certificate,
                                                      directory.certificates())))
    directory.close()
    checked = evidence.verify_bundle(bundle, bus.envelopes.codec, ca.certificate)
    assert checked.ok, checked.problems
    assert checked.messages == 5 and checked.document_rows >= 10  # the document and the four notices about it
    assert all("values" not in r for r in bundle["chain"]["rows"] if "digest" in r), "others' rows as digests only"

    def altered(change) -> list[str]:  # type: ignore[no-untyped-def]
        copy_ = copy.deepcopy(bundle)
        change(copy_)
        return evidence.verify_bundle(copy_, bus.envelopes.codec, ca.certificate).problems

    def flip_message(b) -> None:  # type: ignore[no-untyped-def]
        mid = next(iter(b["messages"]))
        raw = bytearray(base64.b64decode(b["messages"][mid]))
        raw[len(raw) // 2] ^= 1
        b["messages"][mid] = base64.b64encode(bytes(raw)).decode()

    def change_reason(b) -> None:  # type: ignore[no-untyped-def]
        row = next(r for r in b["chain"]["rows"] if "values" in r and r["values"][10])
        row["values"][10] = "Đã tiếp nhận"

    def drop_row(b) -> None:  # type: ignore[no-untyped-def]
        del b["chain"]["rows"][1]

    assert altered(flip_message)
    assert any("rewritten" in p for p in altered(change_reason))
    assert any("missing" in p for p in altered(drop_row))
    stranger = BusCA.create().certificate.public_bytes(serialization.Encoding.PEM).decode()
    assert any("not the one you trust" in p for p in altered(lambda b: b.update(operator_certificate=stranger)))
