"""The bus client: producers, consumers and topic administration over kafka-python, behind plain types."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, ProducerFencedError, TopicAlreadyExistsError
from kafka.partitioner.default import murmur2
from kafka.structs import OffsetAndMetadata

from lienthong.errors import BrokerError, FencedError

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class Record:
    """A record read from the bus, with no Kafka types attached."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes] = field(default_factory=dict)
    timestamp_ms: int = 0


@dataclass(frozen=True)
class Outgoing:
    """A record to publish; partition None lets the key choose it."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    partition: int | None = None


def _to_record(raw: Any) -> Record:
    return Record(raw.topic, raw.partition, raw.offset, raw.key, raw.value,
                  {k: v for k, v in (raw.headers or [])}, raw.timestamp)


class Publisher:
    """A producer: idempotent always, transactional when given a transactional id."""

    def __init__(self, bootstrap: str, *, transactional_id: str | None = None, client_id: str = "lienthong",
                 max_request_size: int = 1_048_576, linger_ms: int = 5,
                 max_block_ms: int = 60_000, delivery_timeout_ms: int = 120_000,
                 transaction_timeout_ms: int = 60_000) -> None:
        config: dict[str, Any] = dict(
            bootstrap_servers=bootstrap.split(","), client_id=client_id, acks="all",
            enable_idempotence=True, max_request_size=max_request_size, linger_ms=linger_ms,
            max_block_ms=max_block_ms, delivery_timeout_ms=delivery_timeout_ms,
            request_timeout_ms=min(30_000, delivery_timeout_ms - linger_ms - 1),
        )
        if transactional_id:
            config["transactional_id"] = transactional_id
            config["transaction_timeout_ms"] = transaction_timeout_ms
        try:
            self._producer = KafkaProducer(**config)
        except KafkaError as exc:
            raise BrokerError(f"cannot connect a producer to {bootstrap}: {exc}") from exc
        self.transactional = transactional_id is not None
        if self.transactional:
            self._call("init_transactions")

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._producer, method)(*args)
        except ProducerFencedError as exc:
            raise FencedError(f"this producer was fenced by a newer instance: {exc!r}") from exc
        except KafkaError as exc:
            raise BrokerError(f"Kafka {method} failed: {exc!r}") from exc

    def send(self, record: Outgoing) -> Any:
        """Queue a record; returns a future whose .get() raises on failure."""
        try:
            return self._producer.send(record.topic, value=record.value, key=record.key,
                                       headers=list(record.headers), partition=record.partition)
        except KafkaError as exc:
            raise BrokerError(f"cannot publish to {record.topic}: {exc!r}") from exc

    def send_and_wait(self, record: Outgoing, timeout_s: float = 30.0) -> tuple[int, int]:
        """Publish one record and wait until the broker acknowledged it; returns (partition, offset)."""
        future = self.send(record)
        try:
            meta = future.get(timeout=timeout_s)
        except KafkaError as exc:
            raise BrokerError(f"broker did not acknowledge the record on {record.topic}: {exc!r}") from exc
        return meta.partition, meta.offset

    def flush(self, timeout_s: float | None = None) -> None:
        self._call("flush", timeout_s)

    def begin(self) -> None:
        self._call("begin_transaction")

    def commit(self, consumer: Subscriber) -> None:
        """Commit the open transaction together with the consumer's current positions."""
        offsets = {TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(pos, "", -1)
                   for tp, pos in consumer.positions().items()}
        if offsets:
            self._call("send_offsets_to_transaction", offsets, consumer.group_metadata())
        self._call("commit_transaction")

    def abort(self) -> None:
        self._call("abort_transaction")

    def close(self, timeout_s: float = 10.0) -> None:
        try:
            self._producer.close(timeout=timeout_s)
        except KafkaError as exc:
            log.warning("producer close failed: %r", exc)


@dataclass(frozen=True)
class PartitionRef:
    topic: str
    partition: int


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells the owner which partitions it gained and lost; runs on the client's IO loop, so it only records."""

    def __init__(self) -> None:
        self.revoked: set[PartitionRef] = set()

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.revoked |= {PartitionRef(tp.topic, tp.partition) for tp in revoked}

    def on_partitions_assigned(self, assigned: Any) -> None:
        pass

    def on_partitions_lost(self, lost: Any) -> None:
        self.on_partitions_revoked(lost)


class Subscriber:
    """A consumer in a group, reading committed records only."""

    def __init__(self, bootstrap: str, topics: Iterable[str], group: str, *, client_id: str = "lienthong",
                 read_committed: bool = True, max_poll_records: int = 500,
                 auto_offset_reset: str = "earliest", instance_id: str | None = None,
                 session_timeout_ms: int = 45_000) -> None:
        self._listener = _Listener()
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap.split(","), group_id=group, client_id=client_id,
                enable_auto_commit=False, auto_offset_reset=auto_offset_reset,
                isolation_level="read_committed" if read_committed else "read_uncommitted",
                max_poll_records=max_poll_records, group_instance_id=instance_id,
                session_timeout_ms=session_timeout_ms,
                heartbeat_interval_ms=max(1000, session_timeout_ms // 5),
            )
            self._consumer.subscribe(list(topics), listener=self._listener)
        except KafkaError as exc:
            raise BrokerError(f"cannot connect a consumer to {bootstrap}: {exc}") from exc

    def partition_count(self, topic: str) -> int:
        partitions = self._consumer.partitions_for_topic(topic)
        if not partitions:
            raise BrokerError(f"no partitions known for {topic}")
        return len(partitions)

    def take_revoked(self) -> set[PartitionRef]:
        """Partitions revoked or lost since the last call."""
        revoked, self._listener.revoked = self._listener.revoked, set()
        return revoked

    def poll(self, timeout_ms: int = 500) -> list[Record]:
        try:
            batch = self._consumer.poll(timeout_ms=timeout_ms)
        except KafkaError as exc:
            raise BrokerError(f"poll failed: {exc!r}") from exc
        records = [_to_record(raw) for raws in batch.values() for raw in raws]
        records.sort(key=lambda r: (r.topic, r.partition, r.offset))
        return records

    def positions(self) -> dict[PartitionRef, int]:
        return {PartitionRef(tp.topic, tp.partition): self._consumer.position(tp)
                for tp in self._consumer.assignment()}

    def group_metadata(self) -> Any:
        return self._consumer.group_metadata()

    def commit(self) -> None:
        try:
            self._consumer.commit()
        except KafkaError as exc:
            raise BrokerError(f"offset commit failed: {exc!r}") from exc

    def rewind_to_committed(self) -> None:
        """After an aborted transaction: go back to what the group committed, so nothing is skipped."""
        for tp in self._consumer.assignment():
            committed = self._consumer.committed(tp)
            if committed is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, committed)

    def close(self) -> None:
        try:
            self._consumer.close()
        except KafkaError as exc:
            log.warning("consumer close failed: %r", exc)


class TopicReader:
    """Reads a topic (or some of its partitions) from the beginning or from a time, without a group."""

    def __init__(self, bootstrap: str, topic: str, *, read_committed: bool = True,
                 partitions: Iterable[int] | None = None, since_ms: int | None = None) -> None:
        self.topic = topic
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap.split(","), enable_auto_commit=False, group_id=None,
                isolation_level="read_committed" if read_committed else "read_uncommitted",
            )
            existing = self._consumer.partitions_for_topic(topic)
        except KafkaError as exc:
            raise BrokerError(f"cannot read {topic} from {bootstrap}: {exc}") from exc
        if not existing:
            raise BrokerError(f"topic {topic} does not exist on {bootstrap}")
        wanted = sorted(existing if partitions is None else set(partitions) & set(existing))
        self._tps = [TopicPartition(topic, p) for p in wanted]
        self._consumer.assign(self._tps)
        self._consumer.seek_to_beginning(*self._tps)
        if since_ms is not None and self._tps:
            try:
                found = self._consumer.offsets_for_times({tp: since_ms for tp in self._tps})
            except KafkaError as exc:
                raise BrokerError(f"cannot look up offsets of {topic} by time: {exc!r}") from exc
            for tp, hit in found.items():
                if hit is not None:
                    self._consumer.seek(tp, hit.offset)
                else:  # nothing that recent: start at the end
                    self._consumer.seek_to_end(tp)

    def poll(self, timeout_ms: int = 200) -> list[Record]:
        try:
            batch = self._consumer.poll(timeout_ms=timeout_ms)
        except KafkaError as exc:
            raise BrokerError(f"poll of {self.topic} failed: {exc!r}") from exc
        return [_to_record(raw) for raws in batch.values() for raw in raws]

    def read_to_end(self, timeout_s: float = 30.0) -> Iterator[Record]:
        """Every record up to the end offsets as they are now."""
        try:
            ends = self._consumer.end_offsets(self._tps)
        except KafkaError as exc:
            raise BrokerError(f"cannot read end offsets of {self.topic}: {exc!r}") from exc
        deadline = time.monotonic() + timeout_s
        while any(self._consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise BrokerError(f"could not read {self.topic} to its end within {timeout_s:.0f} s")
            yield from self.poll()

    def close(self) -> None:
        self._consumer.close()


class Admin:
    """Topic administration."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        try:
            self._admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="lienthong-admin",
                                           request_timeout_ms=15_000)
        except KafkaError as exc:
            raise BrokerError(f"cannot reach the Kafka broker at {bootstrap}: {exc}") from exc

    def existing_topics(self) -> set[str]:
        try:
            return set(self._admin.list_topics())
        except KafkaError as exc:
            raise BrokerError(f"cannot list topics: {exc!r}") from exc

    def ensure_topics(self, names: Iterable[str], *, partitions: int = 1, replication: int = 1,
                      configs: Mapping[str, str] | None = None) -> list[str]:
        """Create the topics that do not exist yet; returns the names created."""
        missing = sorted(set(names) - self.existing_topics())
        if not missing:
            return []
        new = [NewTopic(name, partitions, replication, topic_configs=dict(configs or {})) for name in missing]
        try:
            self._admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass
        except KafkaError as exc:
            raise BrokerError(f"cannot create topics {missing}: {exc!r}") from exc
        self._wait_for_metadata(missing)
        return missing

    def _wait_for_metadata(self, names: list[str], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not set(names) <= self.existing_topics():
            if time.monotonic() > deadline:
                raise BrokerError(f"topics {names} were created but did not appear within {timeout_s:.0f} s")
            time.sleep(0.1)

    def delete_topics(self, names: Iterable[str]) -> None:
        existing = self.existing_topics()
        doomed = [n for n in names if n in existing]
        if doomed:
            try:
                self._admin.delete_topics(doomed)
            except KafkaError as exc:
                raise BrokerError(f"cannot delete topics: {exc!r}") from exc

    def close(self) -> None:
        self._admin.close()


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key (murmur2, as the Java client computes it)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def broker_answers(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True if a broker at bootstrap answers a metadata request within the timeout."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=int(timeout_s * 1000),
                                 bootstrap_timeout_ms=int(timeout_s * 1000))
    except (KafkaError, ValueError, OSError):
        return False
    try:
        admin.describe_cluster()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()
