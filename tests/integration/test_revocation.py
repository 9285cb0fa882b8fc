"""Revocation and key rotation on the real broker: new messages under a revoked key are refused at once, earlier
ones stay readable."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from lienthong.audit.events import AuditEventType
from lienthong.directory import lifecycle
from lienthong.provisioning import publish_directory
from tests.integration.conftest import BusHarness, wait_for
from tests.support import MINISTRY_A, OFFICE, document, document_message

pytestmark = pytest.mark.integration


def rejections(harness: BusHarness, reason: str) -> list:  # type: ignore[type-arg]
    return [e for e in harness.audit.events() if e.event == AuditEventType.REJECTED and e.reason_code == reason]


def test_a_revoked_key_is_refused_at_once_and_what_it_signed_before_stays_readable(
        harness: BusHarness, capsys: pytest.CaptureFixture[str]) -> None:
    harness.add_agencies([OFFICE, MINISTRY_A])
    harness.start_router()
    harness.start_projector()
    bus = harness.bus
    old_signer = bus.keystore().signer(OFFICE)
    before = harness.gateway(OFFICE).send_document(document(number="R1"), [MINISTRY_A])
    wait_for("the first document routed", lambda: harness.audit.count(AuditEventType.DELIVERED) >= 1)

    store = bus.directory_store()
    revoked = lifecycle.revoke(store, OFFICE, dt.datetime.now(dt.UTC))
    store.close()
    assert revoked
    publish_directory(bus)
    published = time.monotonic()
    publisher = bus.publisher()
    message = document_message(recipients=(MINISTRY_A,), doc=document(number="R2"))
    from tests.integration.faults import outgoing

    publisher.send_and_wait(outgoing(bus, message, bus.envelopes.seal(message, old_signer)))
    publisher.close()
    refused = wait_for("the router to refuse the revoked key", lambda: rejections(harness, "certificate-revoked"))
    took = time.monotonic() - published
    with capsys.disabled():
        print(f"\n[revocation] refused {took:.2f} s after the directory was published")
    assert refused[0].message_id == message.header.message_id and took < 15

    receiver = harness.receiver(MINISTRY_A)  # reads only now, after the revocation
    items = wait_for("the earlier document at the ministry", lambda: receiver.poll(300))
    assert [i.kind for i in items] == ["document"] and items[0].message.header.message_id == before.message_id


def test_a_rotated_key_takes_over_and_the_old_one_ends(harness: BusHarness) -> None:
    harness.add_agencies([OFFICE, MINISTRY_A])
    harness.start_router()
    harness.start_projector()
    bus = harness.bus
    old_signer = bus.keystore().signer(OFFICE)
    rotated = lifecycle.rotate_key(bus, OFFICE, "rsa-2048", dt.timedelta(0))
    publish_directory(bus)
    assert rotated.retired == [old_signer.certificate_fingerprint]
    new_signer = bus.keystore().signer(OFFICE)
    assert new_signer.certificate_fingerprint == rotated.new_fingerprint != old_signer.certificate_fingerprint

    sent = harness.gateway(OFFICE).send_document(document(number="K1"), [MINISTRY_A])  # the new RSA key
    publisher = bus.publisher()
    stale = document_message(recipients=(MINISTRY_A,), doc=document(number="K2"))
    from tests.integration.faults import outgoing

    publisher.send_and_wait(outgoing(bus, stale, bus.envelopes.seal(stale, old_signer)))
    publisher.close()
    refused = wait_for("the old key refused", lambda: rejections(harness, "certificate-revoked"))
    assert refused[0].message_id == stale.header.message_id
    delivered = {e.message_id for e in harness.audit.events() if e.event == AuditEventType.DELIVERED}
    assert sent.message_id in delivered and stale.header.message_id not in delivered
