"""The benchmarks' direct use of kafka-python: the raw pipe, the group's committed offsets, the delivery count.

lienthong keeps Kafka I/O in `lienthong/transport/`; the benchmarks reach past it here, in this one module, because
the raw pipe must measure the client itself with no lienthong code in the way, and because counting deliveries
over sixty inbox topics wants one consumer assigned to all of them.

Run as a program, it is the raw pipe: `python -m bench.kafka_io --bootstrap … --source … --dest … --count N`;
with --dest given several times it copies each record to every one of them, as the router fans out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    GroupIdNotFoundError,
    NotCoordinatorError,
)
from kafka.structs import OffsetAndMetadata

from lienthong.transport.client import shorten_transaction_retry

CLIENT_VERSION: str = kafka.__version__


def _producer(bootstrap: str, transactional_id: str | None, batch_size: int | None) -> KafkaProducer:
    # The settings of lienthong.transport.client.Publisher, so that the comparison is like for like; batch_size
    # None keeps kafka-python's default (16 KiB), which the Publisher does not change.
    config: dict[str, Any] = dict(bootstrap_servers=bootstrap.split(","), client_id="bench-pipe", acks="all",
                                  enable_idempotence=True, linger_ms=5, max_request_size=1_065_536)
    if batch_size:
        config["batch_size"] = batch_size
    if transactional_id:
        config.update(transactional_id=transactional_id, transaction_timeout_ms=15_000)
    return KafkaProducer(**config)


def _consumer(bootstrap: str, group: str | None, max_poll_records: int = 500) -> KafkaConsumer:
    # As lienthong.transport.client.Subscriber configures the router's consumer.
    return KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=group, client_id="bench-pipe",
                         enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed",
                         max_poll_records=max_poll_records, session_timeout_ms=10_000, heartbeat_interval_ms=2_000)


@dataclass(frozen=True)
class PipeResult:
    records: int
    batches: int
    seconds: float  # from the first poll that returned records to the last commit or flush


def pipe(bootstrap: str, source: str, dests: list[str], count: int, *, transactional: bool, group: str,
         batch_size: int | None = None, timeout_s: float = 300.0) -> PipeResult:
    """Consume `count` records from `source` and produce the same bytes, key and headers to each of `dests`.

    Transactional: one transaction per polled batch holding the records and the consumed offsets, exactly as the
    router commits. Plain: records are sent and the offsets committed asynchronously, with no transaction.
    """
    producer = _producer(bootstrap, f"{group}.tx" if transactional else None, batch_size)
    consumer = _consumer(bootstrap, group)
    consumer.subscribe([source])
    if transactional:
        shorten_transaction_retry(producer)  # as the router's Publisher does
        producer.init_transactions()
    done = batches = 0
    started: float | None = None
    deadline = time.monotonic() + timeout_s
    try:
        while done < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw pipe moved {done} of {count} records within {timeout_s:.0f} s")
            polled = consumer.poll(timeout_ms=500)
            if not polled:
                continue
            if started is None:
                started = time.perf_counter()
            if transactional:
                producer.begin_transaction()
            for records in polled.values():
                for record in records:
                    headers = list(record.headers or [])
                    for dest in dests:
                        producer.send(dest, value=record.value, key=record.key, headers=headers)
                done += len(records)
            if transactional:
                offsets = {tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in consumer.assignment()}
                producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
                producer.commit_transaction()
            else:
                consumer.commit_async()
            batches += 1
        if not transactional:
            producer.flush()
            consumer.commit()
        return PipeResult(done, batches, time.perf_counter() - (started or time.perf_counter()))
    finally:
        consumer.close()
        producer.close(timeout=10)


@dataclass
class Deliveries:
    """Records found on a set of topics (read_committed): how many, when the first and last were written."""

    records: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    ids: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.ids.values() if n > 1)


def read_deliveries(bootstrap: str, topics: Iterable[str], timeout_s: float = 120.0, id_header: str = "ce_id",
                    only: set[str] | None = None) -> Deliveries:
    """Everything committed on `topics` (or only the records whose `id_header` is in `only`), read from the
    beginning with one consumer assigned to all of them.

    Record timestamps are the producer's (CreateTime): for an inbox, the moment the router sent the delivery.
    """
    consumer = _consumer(bootstrap, None, max_poll_records=5000)
    out = Deliveries()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)  # read_committed: the last stable offsets
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {len(tps)} partitions to their end within {timeout_s:.0f} s")
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    ident = dict(record.headers or []).get(id_header, b"").decode()
                    if only is not None and ident not in only:
                        continue
                    out.records += 1
                    ts = record.timestamp
                    out.first_ms = ts if out.first_ms is None else min(out.first_ms, ts)
                    out.last_ms = ts if out.last_ms is None else max(out.last_ms, ts)
                    out.ids[(ident, tp.topic)] += 1
    finally:
        consumer.close()
    return out


class GroupOffsets:
    """Reads how far a consumer group has committed: the benchmark's way to know the router is done."""

    def __init__(self, bootstrap: str) -> None:
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="bench-progress")

    def committed(self, group: str) -> int:
        """Sum of the group's committed offsets over all its partitions (0 before its first commit)."""
        try:
            found = self._admin.list_group_offsets({group: None}).get(group, {})
        except (CoordinatorNotAvailableError, NotCoordinatorError, CoordinatorLoadInProgressError,
                GroupIdNotFoundError):
            return 0  # the group (or the offsets topic) does not exist yet
        return sum(max(meta.offset, 0) for meta in found.values())

    def close(self) -> None:
        self._admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The raw pipe: kafka-python consume → produce, no decoding.")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--dest", required=True, action="append", help="one or more (the same bytes to each)")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--transactional", action="store_true")
    parser.add_argument("--batch-size", type=int, default=None, help="producer batch.size (default: the client's)")
    args = parser.parse_args(argv)
    result = pipe(args.bootstrap, args.source, args.dest, args.count, transactional=args.transactional,
                  group=args.group, batch_size=args.batch_size)
    print(json.dumps({"records": result.records, "batches": result.batches, "seconds": result.seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
