"""Audit topic records: one per routing decision now, one per event before; the projector reads both."""

from __future__ import annotations

import datetime as dt

import pytest

from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.errors import DecodingError, Reason
from lienthong.records import (
    AUDIT_EVENT,
    AUDIT_EVENTS,
    AUDIT_EVENTS_PER_RECORD,
    audit_event_chunks,
    audit_event_record,
    decode_audit,
)
from tests.support import envelopes

CODEC = envelopes().codec
T0 = dt.datetime(2026, 11, 27, 1, 2, 3, 4000, tzinfo=dt.UTC)


def events(n: int) -> list[AuditEvent]:
    return [AuditEvent(event_id=f"t.ingress/0/7/DELIVERED/000.00.{i:02d}.G01", event=AuditEventType.DELIVERED,
                       at=T0, message_id="m", root_id="r", kind="DOCUMENT", sender="000.00.00.G22",
                       recipient=f"000.00.{i:02d}.G01", source_topic="t.ingress", source_partition=0,
                       source_offset=7, envelope=b"signed" if i == 0 else None) for i in range(n)]


@pytest.mark.parametrize("n", [1, 3, AUDIT_EVENTS_PER_RECORD, AUDIT_EVENTS_PER_RECORD + 1, 250])
def test_a_decision_s_events_travel_in_as_few_records_as_fit_and_come_back_in_order(n: int) -> None:
    records = audit_event_chunks([audit_event_record(e) for e in events(n)])
    assert len(records) == -(-n // AUDIT_EVENTS_PER_RECORD)
    read = [e for rec in records for e in decode_audit(CODEC, CODEC.encode(AUDIT_EVENTS, {"events": rec}))]
    assert read == events(n)


def test_a_record_of_one_event_as_routers_wrote_them_before_is_still_read() -> None:
    [event] = events(1)
    assert decode_audit(CODEC, CODEC.encode(AUDIT_EVENT, audit_event_record(event))) == [event]


def test_something_else_on_the_audit_topic_is_refused_with_its_reason() -> None:
    with pytest.raises(DecodingError) as err:
        decode_audit(CODEC, b"not avro at all")
    assert err.value.reason == Reason.NOT_SINGLE_OBJECT
    with pytest.raises(DecodingError) as err:
        decode_audit(CODEC, CODEC.encode("gov.lienthong.SeenMessage", {
            "message_id": "m", "root_id": "r", "created_at": 0, "ingress_offset": 0}))
    assert err.value.reason == Reason.UNKNOWN_SCHEMA
