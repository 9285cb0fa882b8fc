"""Stage profile: microseconds per message for each step the router takes, in this process, on real signatures.

Each stage is timed around the same calls the router makes (router/decisions.py, router/service.py), message by
message, and the median is reported, which a machine shared with other work disturbs least. `route` is the
router's own `Router.route` on the same messages, the sum as the router runs it; `produce` is
`Publisher.send_all` of everything one message turns into, inside transactions of 500 messages as the router's, and
`commit` the commit of such a transaction divided by its messages.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from bench.environment import Item
from lienthong.errors import LienthongError
from lienthong.records import ROUTER_STORY, SEEN_MESSAGE, to_millis
from lienthong.transport.client import Outgoing, Publisher, Record, Subscriber
from lienthong.wiring import Bus
from router.decisions import Accepted, Position, audit_records, authorize, check_identity
from router.service import Pending, Router
from router.stories import StoryBook, advance, story_record

BATCH = 500


@dataclass
class _Conn:
    """Just enough of a connected router for Router.route: the directory view and the partition count."""

    follower: Any
    consumer: Any
    seen: Any
    stories: Any


class _Partitions:
    def __init__(self, count: int) -> None:
        self.count = count

    def partition_count(self, topic: str) -> int:
        return self.count


class _NoSeen:
    def seen(self, partition: int, message_id: str) -> bool:
        return False

    def add(self, partition: int, message_id: str, created_ms: int) -> None:
        pass


def stage_profile(bus: Bus, items: list[Item], *, partitions: int) -> dict[str, float | None]:
    """µs per message for each stage over `items` (published to this bus's ingress beforehand)."""
    follower = bus.directory_follower()
    follower.catch_up()
    view, envelopes, codec = follower.view, bus.envelopes, bus.envelopes.codec
    subscriber, records, consumed = _consume(bus, len(items))
    times: dict[str, list[float]] = defaultdict(list)
    now = dt.datetime.now(dt.UTC)
    skew = dt.timedelta(seconds=bus.settings.clock_skew_s)
    window = dt.timedelta(seconds=bus.settings.duplicate_window_s)
    router = Router(bus, "bench-stages")
    router._conn = _Conn(follower, _Partitions(partitions), _NoSeen(),  # type: ignore[assignment]
                         StoryBook(lambda partition: []))
    publisher = bus.publisher(f"{bus.topics.prefix}.bench-stages", client_id="bench-stages")
    outgoing: list[list[Outgoing]] = []
    try:
        # First the work done in Python, with no Kafka traffic in this process: a busy producer thread would take
        # the GIL in the middle of a stage and inflate it.
        for record in records:
            value = record.value or b""
            clock = time.perf_counter_ns
            t0 = clock()
            envelope = envelopes.read(value)
            t1 = clock()
            signer = envelopes.verify(envelope, view, now)
            t2 = clock()
            message = envelopes.decode_content(envelope)
            t3 = clock()
            if signer.subject_agency != signer.agency:
                raise LienthongError("certificate subject and directory disagree")
            placement = router._placement(record)
            check_identity(message, signer.agency, placement)
            if not (now - window <= message.header.created_at <= now + skew):
                raise LienthongError("message time outside the window")
            recipients = authorize(message, view)
            t4 = clock()
            header = message.header
            seen = Outgoing(bus.topics.router_seen, codec.encode(SEEN_MESSAGE, {
                "message_id": header.message_id, "root_id": header.root_id,
                "created_at": to_millis(header.created_at), "ingress_offset": record.offset,
            }), header.message_id.encode(), partition=record.partition)
            t5 = clock()
            story = advance(None, message, recipients, now)
            story_out = Outgoing(bus.topics.router_stories, codec.encode(ROUTER_STORY, story_record(story)),
                                 header.root_id.encode(), partition=record.partition)
            t5s = clock()
            decision = Accepted(envelope, message, recipients)
            position = Position(record.topic, record.partition, record.offset, record.time or now)
            audits = router._audit(audit_records(decision, position, now, value), record.partition)
            t6 = clock()
            headers = list(record.headers.items())
            deliveries = [Outgoing(bus.topics.inbox(r), value, record.key, headers, partition=0) for r in recipients]
            outgoing.append([seen, story_out, *deliveries, *audits])
            for name, start, end in (("decode_envelope", t0, t1), ("verify", t1, t2), ("decode_content", t2, t3),
                                     ("authorize", t3, t4), ("encode", t4, t5), ("story", t5, t5s),
                                     ("audit", t5s, t6)):
                times[name].append((end - start) / 1000)
            times["decode"].append((t1 - t0 + t3 - t2) / 1000)
            t0 = clock()
            decision = router.decide_batch([record], now)[0]
            t1 = clock()
            pending = Pending()
            router.route(record, now, decision, pending)
            router.batched(pending)  # the shared records, here of one message
            times["decide"].append((t1 - t0) / 1000)
            times["route"].append((clock() - t0) / 1000)  # deciding and routing, as the router does both
        _produce(publisher, subscriber, outgoing, times, bus)
    finally:
        publisher.close()
        subscriber.close()
        follower.close()
    out: dict[str, float | None] = {name: round(statistics.median(values), 1) for name, values in times.items()}
    out["consume"] = round(consumed, 1) if consumed is not None else None
    out["messages"] = len(records)
    return out


def _produce(publisher: Publisher, subscriber: Subscriber, outgoing: list[list[Outgoing]],
             times: dict[str, list[float]], bus: Bus) -> None:
    """Then the sending, as the router does it: everything one message becomes, in transactions of BATCH
    messages (or all of them, if fewer) committed with the consumed offsets."""
    # A producer blocks on its first record to each topic until it has the topic's metadata: pay that here, in a
    # transaction that is aborted, not in the timings.
    publisher.begin()
    for topic in sorted({o.topic for batch in outgoing[:5] for o in batch}):
        publisher.send(Outgoing(topic, b"warm-up", b"warm-up"))
    publisher.flush()
    publisher.abort()
    clock = time.perf_counter_ns
    publisher.begin()
    size = min(BATCH, len(outgoing))
    for n, batch in enumerate(outgoing[:len(outgoing) // size * size], start=1):
        t0 = clock()
        publisher.send_all(batch)  # as Router.run_once queues what one record becomes
        t1 = clock()
        times["produce"].append((t1 - t0) / 1000)
        if n % size == 0:
            publisher.flush()
            t2 = clock()
            publisher.commit(subscriber.checkpoint())  # the consumed offsets and the end of the transaction
            t3 = clock()
            times["flush"].append((t2 - t1) / 1000 / size)
            times["commit"].append((t3 - t2) / 1000 / size)
            publisher.begin()
    publisher.abort()


def _consume(bus: Bus, count: int) -> tuple[Subscriber, list[Record], float | None]:
    """Read `count` records from ingress with the router's Subscriber; µs per record spent in its poll. The
    subscriber stays open: the produce stage commits its offsets as the router does."""
    subscriber = Subscriber(bus.settings.bootstrap, [bus.topics.ingress], f"{bus.topics.prefix}.bench-stages",
                            client_id="bench-stages", max_poll_records=BATCH)
    records: list[Record] = []
    spent = timed = 0
    deadline = time.monotonic() + 60
    while len(records) < count and time.monotonic() < deadline:
        t0 = time.perf_counter_ns()
        batch = subscriber.poll(500)
        if batch and records:  # the group join and the first fetch are not the per-record cost
            spent += time.perf_counter_ns() - t0
            timed += len(batch)
        records.extend(batch)
    if len(records) < count:
        subscriber.close()
        raise TimeoutError(f"stage profile: read {len(records)} of {count} ingress records")
    return subscriber, records, (spent / 1000 / timed) if timed else None
