"""Every kind of bad input ends in the DLQ with its reason and in the audit record; the router goes on."""

from __future__ import annotations

import datetime as dt

import pytest

from lienthong.audit.events import AuditEventType
from lienthong.certificates import BusCA
from lienthong.directory.store import DirectoryStore
from lienthong.errors import Reason
from lienthong.provisioning import publish_directory
from lienthong.signing import Signer
from lienthong.transport.client import Outgoing
from tests.integration.conftest import BusHarness, wait_for
from tests.support import MINISTRY_A, OFFICE, PARTY, PROVINCE, Pki, document, document_message

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(autouse=True)
def _now() -> None:
    """NOW is the test's own time, not the time the module was collected (a long suite runs for minutes)."""
    global NOW
    NOW = dt.datetime.now(dt.UTC)


def _with_certificate(harness: BusHarness, code: str, not_before: dt.datetime, not_after: dt.datetime) -> Signer:
    """A signer for `code` whose certificate, issued by the bus CA, is valid only in the given window."""
    ca = BusCA.load(harness.bus.settings.ca_dir)
    signer = Pki(ca=ca).signer(code, not_before=not_before, not_after=not_after)
    store = DirectoryStore(harness.bus.settings.directory_db_url())
    store.add_certificate(signer.certificate)
    store.close()
    return signer


def test_bad_input_goes_to_the_dlq_with_its_reason_and_the_router_goes_on(harness: BusHarness) -> None:
    harness.add_agencies([OFFICE, MINISTRY_A, PROVINCE, PARTY])
    bus, env = harness.bus, harness.bus.envelopes
    office = bus.keystore().signer(OFFICE)
    expired = _with_certificate(harness, PARTY, NOW - dt.timedelta(days=30), NOW - dt.timedelta(days=1))
    not_yet = _with_certificate(harness, PROVINCE, NOW + dt.timedelta(days=1), NOW + dt.timedelta(days=30))
    publish_directory(bus)
    stranger = Pki(ca=BusCA.load(bus.settings.ca_dir)).signer("000.00.00.Z99")  # issued, never published

    good = env.seal(document_message(recipients=(MINISTRY_A,)), office)
    envelope = env.read(good)
    flipped = bytearray(envelope.content)
    flipped[len(flipped) // 2] ^= 0x01
    content_b = env.encode_content(document_message(sender=MINISTRY_A, recipients=(PROVINCE,)))
    cases: dict[str, tuple[bytes | None, Reason]] = {
        "not-a-frame": (b"this is not an Avro single-object frame", Reason.NOT_SINGLE_OBJECT),
        "unknown-fingerprint": (b"\xc3\x01" + bytes(8) + good[10:], Reason.UNKNOWN_SCHEMA),
        "truncated": (good[: len(good) // 2], Reason.MALFORMED_AVRO),
        "unknown-sender": (env.seal(document_message(sender="000.00.00.Z99", recipients=(MINISTRY_A,)), stranger),
                           Reason.UNKNOWN_SENDER),
        "one-bit-flipped": (env.codec.encode("gov.lienthong.Envelope", {
            "content": bytes(flipped), "signature": envelope.signature,
            "certificate_fingerprint": envelope.certificate_fingerprint,
            "signature_algorithm": envelope.algorithm.value}), Reason.BAD_SIGNATURE),
        "other-agencys-key": (env.codec.encode("gov.lienthong.Envelope", {
            "content": content_b, "signature": office.sign(content_b),
            "certificate_fingerprint": bus.keystore().signer(MINISTRY_A).certificate_fingerprint,
            "signature_algorithm": "ECDSA_P256_SHA256"}), Reason.BAD_SIGNATURE),
        "claims-another-sender": (env.seal(document_message(sender=MINISTRY_A, recipients=(PROVINCE,)), office),
                                  Reason.SENDER_MISMATCH),
        "expired-certificate": (env.seal(document_message(sender=PARTY, recipients=(MINISTRY_A,)), expired),
                                Reason.CERTIFICATE_NOT_VALID),
        "not-yet-valid-certificate": (env.seal(document_message(sender=PROVINCE, recipients=(MINISTRY_A,)), not_yet),
                                      Reason.CERTIFICATE_NOT_VALID),
        "unknown-recipient": (env.seal(document_message(recipients=("000.00.00.Z98",)), office),
                              Reason.UNKNOWN_RECIPIENT),
        "empty-recipients": (env.seal(document_message(recipients=()), office), Reason.NO_RECIPIENTS),
        "malformed-code": (env.seal(document_message(recipients=("00.0.00.G1",)), office),
                           Reason.MALFORMED_AGENCY_CODE),
        "empty-value": (b"", Reason.NOT_SINGLE_OBJECT),
        "null-value": (None, Reason.NOT_SINGLE_OBJECT),
    }
    raw = bus.publisher()
    key = document().document_id.encode()  # the good message's root: one partition for all, the good one last
    try:
        for name, (value, _) in cases.items():
            raw.send(Outgoing(bus.topics.ingress, value, key, [("case", name.encode())]))
        raw.send(Outgoing(bus.topics.ingress, good, key, [("case", b"good")]))
        raw.flush(30)
    finally:
        raw.close()
    harness.start_router()
    harness.start_projector()

    dlq = harness.read_topic(bus.topics.dlq, len(cases))
    assert len(dlq) == len(cases)
    by_case = {r.headers["case"].decode(): r for r in dlq}
    for name, (value, reason) in cases.items():
        record = by_case[name]
        assert record.headers["lienthong_reason_code"].decode() == reason.value, name
        assert record.headers["lienthong_reason"], name
        assert record.value == value, f"{name}: the DLQ keeps the original bytes"

    [delivered] = harness.read_topic(bus.topics.inbox(MINISTRY_A), 1)
    assert delivered.value == good and delivered.headers["case"] == b"good"

    def audited():  # type: ignore[no-untyped-def]
        rejected = [e for e in harness.audit.events() if e.event == AuditEventType.REJECTED]
        return rejected if len(rejected) == len(cases) else None

    rejected = wait_for("a REJECTED audit row per bad input", audited)
    assert sorted(e.reason_code for e in rejected) == sorted(r.value for _, r in cases.values())
    assert all(e.reason for e in rejected)
    offsets = {e.source_offset for e in rejected}
    assert len(offsets) == len(cases)


def test_gateway_refuses_an_oversized_attachment_set_before_the_broker(harness: BusHarness) -> None:
    from lienthong.documents import Attachment
    from lienthong.errors import ValidationError

    harness.add_agencies([OFFICE, MINISTRY_A])
    gateway = harness.gateway(OFFICE)
    big = document(attachments=(Attachment.of("a.bin", bytes(600_000)), Attachment.of("b.bin", bytes(600_000))))
    with pytest.raises(ValidationError, match="over the limit") as err:
        gateway.send_document(big, [MINISTRY_A])
    assert err.value.reason == Reason.MESSAGE_TOO_LARGE
    sent = gateway.send_document(document(), [MINISTRY_A])
    assert sent.offset == 0, "the first message on a fresh ingress partition"
