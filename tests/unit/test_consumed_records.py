"""What the bus client makes of a consumed Kafka record: plain types, headers as bytes."""

from __future__ import annotations

from collections import namedtuple

from lienthong.transport.client import _to_record

Raw = namedtuple("Raw", "topic partition offset key value headers timestamp")


def test_a_header_without_a_value_reads_as_empty_bytes() -> None:
    # Kafka allows a header with a null value (the Java client writes one); forwarded as None, kafka-python's send
    # and its record accumulator both raise TypeError, and the router stopped on that record.
    record = _to_record(Raw("bus.ingress", 1, 7, b"root", b"value", [("ce_id", b"1"), ("x-empty", None)], 1_000))
    assert record.headers == {"ce_id": b"1", "x-empty": b""}
    assert all(isinstance(v, bytes) for v in record.headers.values())


def test_a_record_without_headers_has_none() -> None:
    assert _to_record(Raw("t", 0, 0, None, None, None, 0)).headers == {}
