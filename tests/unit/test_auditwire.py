"""The router's AuditEvents writer writes exactly fastavro's bytes, and steps aside for a schema it does not know."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import random
from typing import Any

import pytest

from lienthong.auditwire import AuditWriter, framer
from lienthong.codec import SingleObjectCodec
from lienthong.records import AUDIT_EVENTS, AUDIT_EVENTS_PER_RECORD, decode_audit
from lienthong.schemas import SchemaSet

SCHEMAS = SchemaSet()
CODEC = SingleObjectCodec(SCHEMAS)
WRITER = AuditWriter.for_schemas(SCHEMAS)
EVENTS = ["SUBMITTED", "ROUTED", "DELIVERED", "REJECTED", "STATUS"]
TEXTS = ["", "a", "000.00.01.G01", "Bộ Tài chính — công văn số 7816/VPCP-TTĐT", "x" * 63, "y" * 64, "z" * 300,
         "ký tự \u0000 nul", "😀" * 40]


def _maybe(rng: random.Random, value: Any) -> Any:
    return None if rng.random() < 0.4 else value


def _events(rng: random.Random, count: int) -> list[dict[str, Any]]:
    common = {"message_id": _maybe(rng, rng.choice(TEXTS)), "root_id": _maybe(rng, rng.choice(TEXTS)),
              "kind": _maybe(rng, rng.choice(TEXTS)), "sender": _maybe(rng, rng.choice(TEXTS)),
              "source_topic": rng.choice(TEXTS), "source_partition": rng.choice([0, 1, 63, 64, 2**31 - 1]),
              "source_offset": rng.choice([0, 1, 63, 64, 8191, 8192, 2**40 + 7, 2**63 - 1]),
              "content_sha256": _maybe(rng, rng.randbytes(32))}
    out = []
    for n in range(count):
        # Mostly one decision's events (shared fields alike), sometimes not, to cover the writer's caches.
        shared = common if rng.random() < 0.8 else {**common, "message_id": f"other-{n}", "source_offset": n}
        out.append({"event_id": f"{rng.choice(TEXTS)}/{n}", "event": rng.choice(EVENTS),
                    "at": rng.choice([0, 1, -1, 1_795_758_071_000 + n, 2**62, -(2**62)]),
                    "recipient": _maybe(rng, rng.choice(TEXTS)), "status": _maybe(rng, rng.choice(["01", "03", "13"])),
                    "reason_code": _maybe(rng, rng.choice(TEXTS)), "reason": _maybe(rng, rng.choice(TEXTS)),
                    "envelope": _maybe(rng, rng.randbytes(rng.choice([0, 1, 100, 2_000]))), **shared})
    return out


def test_the_project_schema_gets_the_fast_writer() -> None:
    assert WRITER is not None


@pytest.mark.parametrize("count", [0, 1, 3, 12, 62, 100])
def test_bytes_equal_fastavros(count: int) -> None:
    assert WRITER is not None
    rng = random.Random(count)
    for _ in range(200):
        events = _events(rng, count)
        assert WRITER.encode(events) == CODEC.encode(AUDIT_EVENTS, {"events": events})


def test_what_it_writes_reads_back_as_the_events() -> None:
    assert WRITER is not None
    events = _events(random.Random(7), 5)
    for n, event in enumerate(events):
        event.update(event="DELIVERED", at=1_795_758_071_000 + n)
    decoded = decode_audit(CODEC, WRITER.encode(events))
    assert [e.event_id for e in decoded] == [e["event_id"] for e in events]


def _changed(mutate: Any) -> SchemaSet:
    schemas = SchemaSet()
    wire = schemas[AUDIT_EVENTS]
    json = copy.deepcopy(wire.json)
    mutate(json["fields"][0]["type"]["items"]["fields"])
    schemas._by_name[AUDIT_EVENTS] = dataclasses.replace(wire, json=json)
    return schemas


@pytest.mark.parametrize("mutate", [
    lambda fields: fields.append({"name": "added", "type": ["null", "string"], "default": None}),
    lambda fields: fields.reverse(),
    lambda fields: fields[3].update(type="string"),
    lambda fields: fields.pop(),
], ids=["a field added", "fields reordered", "a union made plain", "a field removed"])
def test_another_layout_gets_no_writer(mutate: Any) -> None:
    assert AuditWriter.for_schemas(_changed(mutate)) is None


def test_the_framer_is_the_writer_or_fastavro() -> None:
    events = _events(random.Random(11), 3)
    fast = framer(CODEC)
    assert isinstance(getattr(fast, "__self__", None), AuditWriter), "the project's schema gets the fast writer"
    assert fast(events, 1 << 20) == [CODEC.encode(AUDIT_EVENTS, {"events": events})]
    changed = _changed(lambda fields: fields.reverse())  # the writer steps aside; fastavro writes the frame
    assert framer(SingleObjectCodec(changed))(events, 1 << 20) == [
        SingleObjectCodec(changed).encode(AUDIT_EVENTS, {"events": events})]


@pytest.mark.parametrize("seed", range(20))
def test_frames_split_by_exact_size_in_order_and_greedily(seed: int) -> None:
    assert WRITER is not None
    rng = random.Random(seed)
    events = _events(rng, rng.choice([1, 5, 40, 130]))
    limit = rng.choice([600, 2_500, 10_000, 1 << 20])
    frames = WRITER.frames(events, limit)
    chunks, start = [], 0
    for frame in frames:
        count = len(CODEC.decode(frame, AUDIT_EVENTS)["events"])
        chunks.append(events[start:start + count])
        start += count
    assert start == len(events), "every event once"
    for frame, chunk in zip(frames, chunks, strict=True):
        assert frame == CODEC.encode(AUDIT_EVENTS, {"events": chunk}), "each frame is fastavro's bytes for its events"
        assert len(frame) <= limit or len(chunk) == 1, "within the limit, unless one event alone is not"
        assert len(chunk) <= AUDIT_EVENTS_PER_RECORD
    for chunk, after in itertools.pairwise(chunks):  # greedy: the next event would not have fitted
        grown = CODEC.encode(AUDIT_EVENTS, {"events": [*chunk, after[0]]})
        assert len(chunk) == AUDIT_EVENTS_PER_RECORD or len(grown) > limit


def test_a_frame_may_be_exactly_the_limit_and_not_a_byte_more() -> None:
    assert WRITER is not None
    for count in (2, 3, 63, 64, 70):  # the count's varint takes a second byte from 64 items on
        events = _events(random.Random(count), count)
        whole = len(CODEC.encode(AUDIT_EVENTS, {"events": events}))
        assert len(WRITER.frames(events, whole)) == 1
        assert len(WRITER.frames(events, whole - 1)) == 2


def test_no_frame_holds_more_than_max_count_events() -> None:
    assert WRITER is not None
    events = _events(random.Random(9), 250)
    for event in events:
        event.update(envelope=None)
    sizes = [len(CODEC.decode(f, AUDIT_EVENTS)["events"]) for f in WRITER.frames(events, 1 << 24)]
    assert sizes == [AUDIT_EVENTS_PER_RECORD, AUDIT_EVENTS_PER_RECORD, 50]
    assert [len(CODEC.decode(f, AUDIT_EVENTS)["events"]) for f in WRITER.frames(events[:7], 1 << 24, 3)] == [3, 3, 1]


def test_an_event_larger_than_the_limit_goes_alone() -> None:
    assert WRITER is not None
    small = _events(random.Random(3), 3)
    for event in small:
        event.update(envelope=None, reason=None)
    big = dict(small[1], envelope=bytes(5_000))
    frames = WRITER.frames([small[0], big, small[2]], 2_000)
    assert [CODEC.decode(f, AUDIT_EVENTS)["events"] for f in frames] == [[small[0]], [big], [small[2]]]
    assert WRITER.frames([], 2_000) == []


def test_a_long_beyond_64_bits_is_refused_as_fastavro_refuses_it() -> None:
    assert WRITER is not None
    events = _events(random.Random(1), 1)
    for too_big in (2**63, -(2**63) - 1):
        events[0]["at"] = too_big
        with pytest.raises(OverflowError):
            CODEC.encode(AUDIT_EVENTS, {"events": events})
        with pytest.raises(OverflowError):
            WRITER.encode(events)
    events[0]["at"] = -(2**63)  # the smallest long is still written
    assert WRITER.encode(events) == CODEC.encode(AUDIT_EVENTS, {"events": events})
