"""The router's decisions with real signatures and a real directory view, and no broker."""

import dataclasses
import datetime as dt

import pytest

from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.directory.view import DirectoryView
from lienthong.envelope import Envelope
from lienthong.errors import Reason, RoutingError
from lienthong.notices import StatusCode
from lienthong.records import AUDIT_EVENTS, audit_event_model, decode_audit
from router.decisions import Accepted, Decision, Position, Rejected, audit_records, decide
from tests.support import (
    MINISTRY_A,
    MINISTRY_B,
    OFFICE,
    PARTY,
    PROVINCE,
    document_message,
    envelopes,
    make_pki,
    notice_message,
)

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(autouse=True)
def _now() -> None:
    """NOW is the test's own time, not the time the module was collected (a long suite runs for minutes)."""
    global NOW
    NOW = dt.datetime.now(dt.UTC)
SKEW = dt.timedelta(minutes=5)
ENV = envelopes()


def audit_events(decision: Decision, position: Position, now: dt.datetime,
                 raw: bytes | None = None) -> list[AuditEvent]:
    """The audit trail of one decision as the projector reads it back from the topic."""
    return [audit_event_model(r) for r in audit_records(decision, position, now, raw)]


def reencode(envelope: Envelope) -> bytes:
    return ENV.codec.encode("gov.lienthong.Envelope", {
        "content": envelope.content, "signature": envelope.signature,
        "certificate_fingerprint": envelope.certificate_fingerprint,
        "signature_algorithm": envelope.algorithm.value})


def test_a_document_to_groups_is_accepted_for_every_member_once() -> None:
    pki, view = make_pki()
    message = document_message(recipients=("group:ministries", MINISTRY_A, "group:provinces"))
    decision = decide(ENV.seal(message, pki.signers[OFFICE]), view, ENV, NOW, SKEW)
    assert isinstance(decision, Accepted)
    assert decision.recipients == (MINISTRY_A, MINISTRY_B, PROVINCE)
    events = audit_events(decision, Position("t.ingress", 0, 7, NOW), NOW)
    assert [e.event for e in events] == [AuditEventType.SUBMITTED, AuditEventType.ROUTED] + [
        AuditEventType.DELIVERED] * 3
    assert len({e.event_id for e in events}) == len(events)


def test_the_audit_records_the_router_writes_read_back_as_its_events() -> None:
    pki, view = make_pki()
    sealed = ENV.seal(document_message(recipients=("group:ministries",)), pki.signers[OFFICE])
    decision = decide(sealed, view, ENV, NOW, SKEW)
    assert isinstance(decision, Accepted)
    at = Position("t.ingress", 1, 42, NOW - dt.timedelta(seconds=3))
    records = audit_records(decision, at, NOW, sealed)
    read = decode_audit(ENV.codec, ENV.codec.encode(AUDIT_EVENTS, {"events": records}))
    assert read == audit_events(decision, at, NOW, sealed)
    submitted, routed, *delivered = read
    assert submitted.envelope == sealed and submitted.content_sha256 == decision.envelope.content_digest
    assert submitted.at == NOW.replace(microsecond=NOW.microsecond // 1000 * 1000) - dt.timedelta(seconds=3)
    assert routed.event == AuditEventType.ROUTED and routed.envelope is None
    assert [(e.event, e.recipient) for e in delivered] == [(AuditEventType.DELIVERED, r) for r in decision.recipients]
    assert {e.event_id for e in read} == {"t.ingress/1/42/SUBMITTED/-", "t.ingress/1/42/ROUTED/-",
                                          *(f"t.ingress/1/42/DELIVERED/{r}" for r in decision.recipients)}
    assert all(e.sender == OFFICE and e.source_offset == 42 for e in read)


def test_a_notice_goes_back_to_the_document_sender() -> None:
    pki, view = make_pki()
    notice = notice_message(MINISTRY_A, OFFICE, document_message(), StatusCode.REJECTED, "sai thẩm quyền")
    decision = decide(ENV.seal(notice, pki.signers[MINISTRY_A]), view, ENV, NOW, SKEW)
    assert isinstance(decision, Accepted) and decision.recipients == (OFFICE,)
    status = [e for e in audit_events(decision, Position("t", 0, 1, NOW), NOW) if e.event == AuditEventType.STATUS]
    assert status[0].status == "02" and status[0].reason == "sai thẩm quyền" and status[0].sender == MINISTRY_A


def rejected(value: bytes | None, view=None) -> Rejected:  # type: ignore[no-untyped-def]
    decision = decide(value, view, ENV, NOW, SKEW)
    assert isinstance(decision, Rejected), decision
    return decision


def test_each_bad_input_is_rejected_with_its_reason() -> None:
    pki, view = make_pki()
    good = ENV.seal(document_message(), pki.signers[OFFICE])
    envelope = ENV.read(good)
    flipped = bytearray(envelope.content)
    flipped[len(flipped) // 2] ^= 0x01
    stranger = pki.signer("000.00.00.Z99")
    expired = pki.signer(PARTY, not_before=NOW - dt.timedelta(days=9), not_after=NOW - dt.timedelta(days=1))
    view.apply(pki.entries({PARTY: expired})[1])
    cases = {
        Reason.NOT_SINGLE_OBJECT: b"plain text",
        Reason.UNKNOWN_SCHEMA: b"\xc3\x01" + b"\xee" * 8 + good[10:],
        Reason.MALFORMED_AVRO: good[:-30],
        Reason.UNKNOWN_SENDER: ENV.seal(document_message(sender="000.00.00.Z99"), stranger),
        Reason.BAD_SIGNATURE: reencode(dataclasses.replace(envelope, content=bytes(flipped))),
        Reason.CERTIFICATE_NOT_VALID: ENV.seal(document_message(sender=PARTY), expired),
        Reason.SENDER_MISMATCH: ENV.seal(document_message(sender=MINISTRY_A), pki.signers[OFFICE]),
        Reason.UNKNOWN_RECIPIENT: ENV.seal(document_message(recipients=("000.00.00.Z98",)), pki.signers[OFFICE]),
        Reason.NO_RECIPIENTS: ENV.seal(document_message(recipients=()), pki.signers[OFFICE]),
        Reason.MALFORMED_AGENCY_CODE: ENV.seal(document_message(recipients=("12.34",)), pki.signers[OFFICE]),
        Reason.FROM_THE_FUTURE: ENV.seal(document_message(created_at=NOW + dt.timedelta(hours=1)),
                                         pki.signers[OFFICE]),
    }
    for reason, value in cases.items():
        decision = rejected(value, view)
        assert decision.reason == reason, (reason, decision)
        assert decision.detail


def test_signature_under_another_agencys_certificate_name_is_bad() -> None:
    pki, view = make_pki()
    # Content claims MINISTRY_A and names MINISTRY_A's certificate, but OFFICE's key made the signature.
    content = ENV.encode_content(document_message(sender=MINISTRY_A))
    forged = ENV.codec.encode("gov.lienthong.Envelope", {
        "content": content, "signature": pki.signers[OFFICE].sign(content),
        "certificate_fingerprint": pki.signers[MINISTRY_A].certificate_fingerprint,
        "signature_algorithm": "ECDSA_P256_SHA256"})
    assert rejected(forged, view).reason == Reason.BAD_SIGNATURE


def test_rejections_are_audited_with_what_is_known() -> None:
    _, view = make_pki()
    decision = rejected(b"junk", view)
    events = audit_events(decision, Position("t.ingress", 2, 5, NOW), NOW)
    assert [e.event for e in events] == [AuditEventType.REJECTED]
    assert events[0].reason_code == "not-single-object" and events[0].message_id is None


def test_group_expansion_rules() -> None:
    _, view = make_pki()
    assert view.expand(["group:ministries"], sender=MINISTRY_A) == (MINISTRY_B,)
    with pytest.raises(RoutingError) as err:
        view.expand(["group:no-such-group"])
    assert err.value.reason == Reason.UNKNOWN_RECIPIENT
    with pytest.raises(RoutingError) as err:
        view.expand([MINISTRY_A], sender=MINISTRY_A)
    assert err.value.reason == Reason.NO_RECIPIENTS


def test_the_signed_header_decides_key_and_partition() -> None:
    from lienthong.transport.client import key_partition
    from router.decisions import Placement

    pki, view = make_pki()
    message = document_message(recipients=(MINISTRY_A,))
    value = ENV.seal(message, pki.signers[OFFICE])
    root = message.header.root_id.encode()
    right = Placement(root, key_partition(root, 3), key_partition(root, 3))
    assert isinstance(decide(value, view, ENV, NOW, SKEW, placement=right), Accepted)
    for wrong in (Placement(b"other-key", right.partition, key_partition(b"other-key", 3)),
                  Placement(root, (right.partition + 1) % 3, right.key_home)):
        decision = decide(value, view, ENV, NOW, SKEW, placement=wrong)
        assert isinstance(decision, Rejected) and decision.reason == Reason.KEY_MISMATCH


def test_a_document_id_must_name_its_sender() -> None:
    from tests.support import document

    pki, view = make_pki()
    foreign = document(sender=MINISTRY_A)  # document id starts with MINISTRY_A's code
    message = document_message(sender=OFFICE, doc=foreign, recipients=(MINISTRY_B,))
    decision = decide(ENV.seal(message, pki.signers[OFFICE]), view, ENV, NOW, SKEW)
    assert isinstance(decision, Rejected) and decision.reason == Reason.SENDER_MISMATCH
    assert "names another agency" in decision.detail


def test_old_messages_are_refused_as_stale() -> None:
    pki, view = make_pki()
    old = document_message(created_at=NOW - dt.timedelta(days=8))
    decision = decide(ENV.seal(old, pki.signers[OFFICE]), view, ENV, NOW, SKEW, window=dt.timedelta(days=7))
    assert isinstance(decision, Rejected) and decision.reason == Reason.STALE


def test_a_cached_certificate_check_does_not_carry_over_to_another_ca() -> None:
    from lienthong.directory.view import DirectoryView

    pki, view = make_pki()
    value = ENV.seal(document_message(recipients=(MINISTRY_A,)), pki.signers[OFFICE])
    assert isinstance(decide(value, view, ENV, NOW, SKEW), Accepted)  # checked and cached under the bus CA
    other, _ = make_pki()
    foreign = DirectoryView(other.ca.certificate)  # same certificates, another trust anchor
    for code in view.agencies:
        foreign.apply(pki.entries({code: pki.signers[code]})[0])
        foreign.apply(pki.entries({code: pki.signers[code]})[1])
    decision = decide(value, foreign, ENV, NOW, SKEW)
    assert isinstance(decision, Rejected) and decision.reason == Reason.CERTIFICATE_NOT_VALID


def signed_raw(content: dict[str, object], signer_code: str = PROVINCE) -> tuple[bytes, DirectoryView]:
    """A SignedContent record encoded as given, around every model check, and signed: what a hostile or broken
    gateway can publish."""
    pki, view = make_pki()
    content_bytes = ENV.codec.encode("gov.lienthong.SignedContent", content)
    return ENV.seal_bytes(content_bytes, pki.signers[signer_code]), view


def header_record(kind: str, root_id: str, to: str, message_id: str = "m-1") -> dict[str, object]:
    return {"message_id": message_id, "kind": kind, "sender": PROVINCE, "recipients": [to], "root_id": root_id,
            "created_at": int(NOW.timestamp() * 1000)}


def test_dates_beyond_what_python_can_hold_are_refused_not_crashed_on() -> None:
    batch = f"{PROVINCE},b-1"
    event = {"dossier_code": "D-1", "procedure_code": "P", "field": "f", "owner_kind": "CITIZEN",
             "received_date": 10**7, "due_date": None, "status": "RECEIVED", "handling_unit": "u", "handler": "",
             "time": int(NOW.timestamp() * 1000)}
    raw, view = signed_raw({"header": header_record("DOSSIER_STATUS", batch, OFFICE),
                            "payload": ("gov.lienthong.DossierStatusBatch", {"batch_id": batch, "events": [event]})})
    decision = decide(raw, view, ENV, NOW, SKEW)
    assert isinstance(decision, Rejected) and decision.reason == Reason.INVALID_CONTENT
    # The signature held: the refusal is attributed to its signed header.
    assert decision.header is not None and (decision.header.message_id, decision.header.root_id) == ("m-1", batch)
    events = audit_events(decision, Position("t.ingress", 0, 9, NOW), NOW)
    assert [(e.event, e.sender) for e in events] == [(AuditEventType.SUBMITTED, PROVINCE),
                                                    (AuditEventType.REJECTED, PROVINCE)]


def test_a_report_for_a_period_far_in_the_future_is_refused_not_crashed_on() -> None:
    from lienthong.directory.entries import RegimeEntry
    from lienthong.reports import Indicator, PeriodType, Regime

    regime = Regime(code="BC-01", name="Báo cáo", period_type=PeriodType.MONTH, reporting=(PROVINCE,),
                    receiving=OFFICE, indicators=(Indicator(code="GDP", name="GDP", unit="tỷ đồng"),),
                    accept_days=3660)
    for period in ("9999-M12", "2999-M12"):
        report_id = f"{PROVINCE},BC-01,{period}"
        raw, view = signed_raw({"header": header_record("REPORT", report_id, OFFICE), "payload": (
            "gov.lienthong.Report", {"report_id": report_id, "regime": "BC-01", "period": period, "note": "",
                                     "values": [{"indicator": "GDP", "value": "1", "note": ""}],
                                     "time": int(NOW.timestamp() * 1000)})})
        view.apply(RegimeEntry(regime=regime))
        decision = decide(raw, view, ENV, NOW, SKEW)
        assert isinstance(decision, Rejected) and decision.reason == Reason.PERIOD_NOT_OPEN, decision
