"""Audit topic records: the events of a transaction's decisions grouped now, one event per record before; the
projector reads both."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.errors import DecodingError, Reason
from lienthong.records import (
    AUDIT_EVENT,
    AUDIT_EVENTS,
    AUDIT_EVENTS_PER_RECORD,
    audit_event_chunks,
    audit_event_record,
    audit_event_size,
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
    records = audit_event_chunks([audit_event_record(e) for e in events(n)], max_bytes=1_000_000)
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


def test_a_batch_s_events_are_grouped_in_order_within_the_byte_limit() -> None:
    # As the router groups a transaction's events per audit partition: SUBMITTED events carry signed documents.
    records = [audit_event_record(e) for e in events(40)]
    for i, record in enumerate(records):
        record["envelope"] = bytes(300 + 50 * (i % 7)) if i % 3 == 0 else None
    limit = 2_000
    chunks = audit_event_chunks(records, max_bytes=limit)
    assert [r for chunk in chunks for r in chunk] == records, "every event once, in order"
    assert all(sum(audit_event_size(r) for r in chunk) <= limit for chunk in chunks)
    # Greedy: each chunk but the last is full, in that the next event would not have fitted.
    assert all(sum(audit_event_size(r) for r in chunk) + audit_event_size(after[0]) > limit
               for chunk, after in itertools.pairwise(chunks))
    big = dict(records[1], envelope=bytes(limit))
    assert audit_event_chunks([records[0], big, records[2]], max_bytes=limit) == [[records[0]], [big], [records[2]]]
    assert len(audit_event_chunks(records * 5, max_bytes=10**9)) == 2, "and never more than 100 events a record"


def test_an_event_s_size_over_estimates_its_encoding_whatever_its_text() -> None:
    records = [audit_event_record(e) for e in events(3)]
    # A refusal's reason is free text in Vietnamese, of any length: up to 3 bytes a character in UTF-8.
    records.append(dict(records[0], reason="Không đúng thẩm quyền giải quyết; đề nghị chuyển Bộ Tư pháp. " * 100,
                        reason_code="NOT_AUTHORIZED", status="06", recipient="000.00.01.G01"))
    records.append(dict(records[1], reason="ỗ" * 5_000, envelope=bytes(200_000)))
    for record in records:
        assert audit_event_size(record) >= len(CODEC.encode(AUDIT_EVENT, record))
    limit = 100_000
    chunks = audit_event_chunks(records[3:4] * 40, max_bytes=limit)
    assert len(chunks) > 1
    for chunk in chunks:
        assert len(CODEC.encode(AUDIT_EVENTS, {"events": chunk})) <= limit, "what is written fits, not its estimate"
