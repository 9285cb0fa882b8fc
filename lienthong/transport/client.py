"""The bus client: producers, consumers and topic administration over kafka-python, behind plain types."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    AuthorizationError,
    KafkaError,
    ProducerFencedError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)
from kafka.partitioner.default import murmur2
from kafka.structs import OffsetAndMetadata

from lienthong.errors import BrokerAuthorizationError, BrokerError, ConfigurationError, FencedError

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class TlsClientConfig:
    """Mutual TLS to the broker: the CA that issued the broker's certificate, and this client's certificate and key.

    The broker takes this client's Kafka principal from the certificate's subject, so the files say who the
    client is; there is no other credential.
    """

    cafile: Path
    certfile: Path
    keyfile: Path
    check_hostname: bool = True

    def kafka_options(self) -> dict[str, Any]:
        """The kafka-python options for an SSL connection with these files."""
        for what, path in (("CA certificate", self.cafile), ("certificate", self.certfile), ("key", self.keyfile)):
            if not path.is_file():
                raise ConfigurationError(f"TLS {what} {path} does not exist; issue the identity with "
                                         "`lienthong kafka tls issue` or set LIENTHONG_TLS_CA/_CERT/_KEY")
        return {"security_protocol": "SSL", "ssl_cafile": str(self.cafile), "ssl_certfile": str(self.certfile),
                "ssl_keyfile": str(self.keyfile), "ssl_check_hostname": self.check_hostname}


def _security(tls: TlsClientConfig | None) -> dict[str, Any]:
    return tls.kafka_options() if tls is not None else {"security_protocol": "PLAINTEXT"}


def as_broker_error(what: str, exc: KafkaError, *, as_text: bool = False) -> BrokerError:
    """Our error for a failed Kafka call (the error as text or as its repr); a refusal says "not authorized"."""
    if isinstance(exc, AuthorizationError):
        return BrokerAuthorizationError(
            f"{what}: not authorized ({type(exc).__name__}: {exc}); the broker's ACLs do not allow this "
            "client's TLS identity to do it")
    return BrokerError(f"{what}: {exc}" if as_text else f"{what}: {exc!r}")


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

    @functools.cached_property
    def time(self) -> dt.datetime | None:
        """The record's timestamp in UTC (on ingress, the broker's append time); None if it carries none. Computed
        once: the router reads it when it decides a record and again when it routes it."""
        return dt.datetime.fromtimestamp(self.timestamp_ms / 1000, dt.UTC) if self.timestamp_ms else None


@dataclass(frozen=True)
class Outgoing:
    """A record to publish; partition None lets the key choose it."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    partition: int | None = None


def _to_record(raw: Any) -> Record:
    # A header may come without a value (Kafka allows null); it reads as empty bytes, so that whatever forwards the
    # headers (the router's deliveries and DLQ records) has only bytes to write.
    return Record(raw.topic, raw.partition, raw.offset, raw.key, raw.value,
                  {k: b"" if v is None else v for k, v in (raw.headers or [])}, raw.timestamp)


# How long a transactional producer waits before sending again the first AddPartitionsToTxn of a transaction, when
# the broker refused it with CONCURRENT_TRANSACTIONS because it was still writing the previous commit's markers (a
# few ms). The Java client waits 20 ms for that one request instead of retry.backoff.ms (KAFKA-5477). kafka-python
# 3.0 computes the lower value on the request's handler, but its sender thread sleeps its own retry_backoff_ms
# (100 ms), so every transaction that followed another started 100 ms late. Measured here (bench/README.md):
# back-to-back transactions of 10 records took 117 ms to flush with 100 ms, 35 with 20, 16-20 with 5.
TRANSACTION_RETRY_BACKOFF_MS = 5


def shorten_transaction_retry(producer: KafkaProducer, backoff_ms: int = TRANSACTION_RETRY_BACKOFF_MS) -> bool:
    """Make a transactional producer retry a refused first AddPartitionsToTxn after backoff_ms, as the Java client
    does, and every other transactional request after retry_backoff_ms as before.

    Two adjustments to kafka-python's objects: the transaction manager's backoff for that one retry, and the sender
    thread made to sleep the backoff of the request it is about to send (the handler's own value, which is the
    transaction manager's retry_backoff_ms unless that retry lowered it) instead of its fixed setting. Produce
    retries, metadata refreshes and coordinator lookups keep retry_backoff_ms. Returns False, with a warning, on a
    kafka-python whose producer is not built this way (transactions then work as before, only slower).
    """
    sender = getattr(producer, "_sender", None)
    manager = getattr(sender, "_transaction_manager", None)
    sender_config = getattr(sender, "config", None)
    if (manager is None or not isinstance(sender_config, dict) or "retry_backoff_ms" not in sender_config
            or not hasattr(manager, "ADD_PARTITIONS_RETRY_BACKOFF_MS")
            or not callable(getattr(manager, "next_request_handler", None))):
        log.warning("cannot shorten the transactional retry backoff on this kafka-python; back-to-back "
                    "transactions will each wait retry_backoff_ms")
        return False
    manager.ADD_PARTITIONS_RETRY_BACKOFF_MS = backoff_ms
    next_request_handler = manager.next_request_handler

    def next_with_its_backoff(*args: Any, **kwargs: Any) -> Any:
        handler = next_request_handler(*args, **kwargs)
        backoff = getattr(handler, "retry_backoff_ms", None)
        if isinstance(backoff, int):
            sender_config["retry_backoff_ms"] = backoff  # what the sender sleeps before sending it again
        return handler

    manager.next_request_handler = next_with_its_backoff
    return True


# What Publisher.send_all uses of a kafka-python 3.0 producer besides its public methods.
_SEND_PARTS = ("_accumulator", "_transaction_manager", "_metadata", "_sender", "_closed", "_ensure_valid_record_size",
               "_estimate_size_in_bytes")


def written_end(future: Any) -> int | None:
    """The offset after a record whose transaction committed (its future then holds its offset); None if it failed."""
    return int(future.value.offset) + 1 if future.is_done and future.succeeded() else None


class Publisher:
    """A producer: idempotent always, transactional when given a transactional id."""

    def __init__(self, bootstrap: str, *, transactional_id: str | None = None, client_id: str = "lienthong",
                 max_request_size: int = 1_048_576, linger_ms: int = 5, batch_size: int = 16_384,
                 max_block_ms: int = 60_000, delivery_timeout_ms: int = 120_000,
                 transaction_timeout_ms: int = 60_000, tls: TlsClientConfig | None = None) -> None:
        config: dict[str, Any] = dict(
            bootstrap_servers=bootstrap.split(","), client_id=client_id, acks="all", **_security(tls),
            enable_idempotence=True, max_request_size=max_request_size, linger_ms=linger_ms, batch_size=batch_size,
            max_block_ms=max_block_ms, delivery_timeout_ms=delivery_timeout_ms,
            request_timeout_ms=min(30_000, delivery_timeout_ms - linger_ms - 1),
        )
        if transactional_id:
            config["transactional_id"] = transactional_id
            config["transaction_timeout_ms"] = transaction_timeout_ms
        try:
            self._producer = KafkaProducer(**config)
        except KafkaError as exc:
            raise as_broker_error(f"cannot connect a producer to {bootstrap}", exc, as_text=True) from exc
        self.transactional = transactional_id is not None
        self._appends_directly = False
        if self.transactional:
            shorten_transaction_retry(self._producer)
            self._appends_directly = all(hasattr(self._producer, name) for name in _SEND_PARTS)
            if not self._appends_directly:
                log.warning("this kafka-python's producer is not built as send_all expects; sending record by record")
            self._call("init_transactions")

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._producer, method)(*args)
        except ProducerFencedError as exc:
            raise FencedError(f"this producer was fenced by a newer instance: {exc!r}") from exc
        except KafkaError as exc:
            raise as_broker_error(f"Kafka {method} failed", exc) from exc

    def send(self, record: Outgoing) -> Any:
        """Queue a record; returns a future whose .get() raises on failure."""
        try:
            return self._producer.send(record.topic, value=record.value, key=record.key,
                                       headers=list(record.headers), partition=record.partition)
        except KafkaError as exc:
            raise as_broker_error(f"cannot publish to {record.topic}", exc) from exc

    def send_all(self, records: Iterable[Outgoing], watch: frozenset[str] = frozenset()) -> dict[tuple[str, int], Any]:
        """Queue records in the open transaction, each as `send` would, at about two thirds of its cost.

        For the router, which sends 4 records a document with one recipient and 63 with sixty: kafka-python's `send`
        spends about 9 of its 29 µs a record on checks that cannot fail for records that carry bytes and name their
        partition (serializers, header key types, the partitioner, the sticky-partition logic) and on taking the
        transaction's lock for a partition already in it. Here the producer's record accumulator is given the records
        directly. Everything that can fail is still checked: the producer is open, the transaction in progress and
        not failed, each topic's metadata known (a record to a topic without it goes through `send`, which waits for
        it), the partition among the topic's, header values are bytes, each record within the request size. A record
        whose sending fails later fails the transaction's commit, as with `send` (whose futures the router does not
        keep).

        Returns, for the topics in `watch`, the future of the last record queued to each partition it names: once
        the transaction has committed, their offsets say how far a reader must read to see it."""
        last: dict[tuple[str, int], Any] = {}
        if not self._appends_directly:
            for record in records:
                future = self.send(record)
                if record.topic in watch and record.partition is not None:
                    last[(record.topic, record.partition)] = future
            return last
        producer = self._producer
        accumulator, manager, metadata = producer._accumulator, producer._transaction_manager, producer._metadata
        known: dict[str, set[int]] = {}
        added: set[TopicPartition] = set()
        # One document's deliveries share their bytes and headers: sized once. Each entry holds its objects, so that
        # no id is reused within the call.
        sized: dict[tuple[int, int, int], tuple[object, int]] = {}
        wake = False
        topic = ""
        try:
            if producer._closed:
                raise BrokerError("the producer is closed")
            for record in records:
                topic, partition, value = record.topic, record.partition, record.value
                partitions = known.get(topic)
                if partitions is None:
                    partitions = metadata.partitions_for_topic(topic)
                    if partitions is not None:
                        known[topic] = partitions
                if partition is None or value is None or partitions is None or partition not in partitions:
                    # The partitioner, a tombstone, metadata to wait for, or send's own refusal.
                    future = self.send(record)
                    if topic in watch and partition is not None:
                        last[(topic, partition)] = future
                    continue
                tp = TopicPartition(topic, partition)
                if tp not in added:
                    # Once per partition and call, not per record; it raises if the transaction has failed. (Once per
                    # transaction would also do, unless kafka-python clears its partitions mid-transaction, as an epoch
                    # bump does: a batch for a partition it no longer has waits out the delivery timeout.)
                    manager.maybe_add_partition_to_transaction(tp)
                    added.add(tp)
                headers = list(record.headers)
                if headers and not all(type(v) is bytes for _, v in headers):
                    self.send(record)  # send's own refusal: the accumulator would take the record, then raise
                    continue  # (it raises: nothing to watch)
                same = (id(value), id(record.key), id(record.headers))
                entry = sized.get(same)
                if entry is None:
                    entry = sized[same] = (record, producer._estimate_size_in_bytes(record.key, value, headers))
                producer._ensure_valid_record_size(entry[1])
                future, full, new_batch, _ = accumulator.append(tp, None, record.key, value, headers)
                wake = wake or full or new_batch
                if topic in watch:
                    last[(topic, partition)] = future
        except KafkaError as exc:
            raise as_broker_error(f"cannot publish to {topic}", exc) from exc
        finally:
            if wake:
                producer._sender.wakeup()
        return last

    def send_and_wait(self, record: Outgoing, timeout_s: float = 30.0) -> tuple[int, int]:
        """Publish one record and wait until the broker acknowledged it; returns (partition, offset)."""
        future = self.send(record)
        try:
            meta = future.get(timeout=timeout_s)
        except KafkaError as exc:
            raise as_broker_error(f"broker did not acknowledge the record on {record.topic}", exc) from exc
        return meta.partition, meta.offset

    def flush(self, timeout_s: float | None = None) -> None:
        self._call("flush", timeout_s)

    def begin(self) -> None:
        self._call("begin_transaction")

    def commit(self, checkpoint: Checkpoint | None = None) -> None:
        """Commit the open transaction, together with a consumer's positions when given them (`Subscriber.checkpoint`,
        taken when the transaction's records were read: the consumer may have read on since). Safe to call from
        another thread than the one that sent: kafka-python's producer is thread-safe."""
        if checkpoint is not None and checkpoint.offsets:
            offsets = {TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(pos, "", -1)
                       for tp, pos in checkpoint.offsets.items()}
            self._call("send_offsets_to_transaction", offsets, checkpoint.group_metadata)
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


@dataclass(frozen=True)
class Checkpoint:
    """What a transaction commits for its consumer: the next offset to read per partition, and the group generation
    those positions belong to (kafka-python's ConsumerGroupMetadata)."""

    offsets: Mapping[PartitionRef, int]
    group_metadata: Any


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
                 session_timeout_ms: int = 45_000, tls: TlsClientConfig | None = None) -> None:
        self._listener = _Listener()
        self._topics = set(topics)
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap.split(","), group_id=group, client_id=client_id,
                enable_auto_commit=False, auto_offset_reset=auto_offset_reset,
                isolation_level="read_committed" if read_committed else "read_uncommitted",
                max_poll_records=max_poll_records, group_instance_id=instance_id,
                session_timeout_ms=session_timeout_ms,
                heartbeat_interval_ms=max(1000, session_timeout_ms // 5), **_security(tls),
            )
            self._consumer.subscribe(sorted(self._topics), listener=self._listener)
            # Know the partitions before the first join. kafka-python 3.0.12 otherwise may assign nothing (no
            # metadata yet), rejoin when the metadata arrives, and, if that second join outlasts one poll's
            # timeout, drop its assignment and stay in the group with no partitions for good.
            for topic in sorted(self._topics):
                self._consumer.partitions_for_topic(topic)
        except KafkaError as exc:
            raise as_broker_error(f"cannot connect a consumer to {bootstrap}", exc, as_text=True) from exc

    def _check_authorized(self) -> None:
        # kafka-python 3.0 logs a TOPIC_AUTHORIZATION_FAILED metadata answer for a subscribed topic and then polls
        # nothing, for ever; the Java client raises. Raise as Java does, so a refusal never looks like silence.
        cluster = getattr(self._consumer, "_cluster", None)
        refused = set(getattr(cluster, "unauthorized_topics", None) or ()) & self._topics
        if refused:
            cause = TopicAuthorizationFailedError(sorted(refused))
            raise as_broker_error(f"cannot read {', '.join(sorted(refused))}", cause) from cause

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
            raise as_broker_error("poll failed", exc) from exc
        self._check_authorized()
        records = [_to_record(raw) for raws in batch.values() for raw in raws]
        records.sort(key=lambda r: (r.topic, r.partition, r.offset))
        return records

    def positions(self) -> dict[PartitionRef, int]:
        return {PartitionRef(tp.topic, tp.partition): self._consumer.position(tp)
                for tp in self._consumer.assignment()}

    def checkpoint(self) -> Checkpoint:
        """The positions reached and the group generation they were read in, to commit in a transaction later. Its
        generation is the one the records were read in: if the group rebalances before the commit, the broker
        refuses the commit (the partitions may be another member's by then) instead of accepting it."""
        return Checkpoint(self.positions(), self._consumer.group_metadata())

    def commit(self) -> None:
        try:
            self._consumer.commit()
        except KafkaError as exc:
            raise as_broker_error("offset commit failed", exc) from exc

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
                 partitions: Iterable[int] | None = None, since_ms: int | None = None,
                 tls: TlsClientConfig | None = None) -> None:
        self.topic = topic
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap.split(","), enable_auto_commit=False, group_id=None,
                isolation_level="read_committed" if read_committed else "read_uncommitted", **_security(tls),
            )
            existing = self._consumer.partitions_for_topic(topic)
        except KafkaError as exc:
            raise as_broker_error(f"cannot read {topic} from {bootstrap}", exc, as_text=True) from exc
        if not existing:
            if tls is not None:  # the broker hides the topics a principal may not describe
                raise BrokerAuthorizationError(f"topic {topic} does not exist on {bootstrap}, or this client's "
                                               "TLS identity is not authorized to describe it")
            raise BrokerError(f"topic {topic} does not exist on {bootstrap}")
        wanted = sorted(existing if partitions is None else set(partitions) & set(existing))
        self._tps = [TopicPartition(topic, p) for p in wanted]
        self._consumer.assign(self._tps)
        self._consumer.seek_to_beginning(*self._tps)
        if since_ms is not None and self._tps:
            try:
                found = self._consumer.offsets_for_times({tp: since_ms for tp in self._tps})
            except KafkaError as exc:
                raise as_broker_error(f"cannot look up offsets of {topic} by time", exc) from exc
            for tp, hit in found.items():
                if hit is not None:
                    self._consumer.seek(tp, hit.offset)
                else:  # nothing that recent: start at the end
                    self._consumer.seek_to_end(tp)

    def poll(self, timeout_ms: int = 200) -> list[Record]:
        try:
            batch = self._consumer.poll(timeout_ms=timeout_ms)
        except KafkaError as exc:
            raise as_broker_error(f"poll of {self.topic} failed", exc) from exc
        return [_to_record(raw) for raws in batch.values() for raw in raws]

    def read_to_end(self, timeout_s: float = 30.0, at_least: Mapping[int, int] | None = None) -> Iterator[Record]:
        """Every record up to the end offsets as they are now, and at least up to `at_least` (partition → offset):
        for a reader that must see a transaction the caller has just committed. A read_committed end offset stops at
        the first transaction whose markers the broker has not written yet, and the broker writes them after it
        confirms the commit; so this waits for them, until `timeout_s`."""
        try:
            ends = self._consumer.end_offsets(self._tps)
        except KafkaError as exc:
            raise as_broker_error(f"cannot read end offsets of {self.topic}", exc) from exc
        wanted = {tp: max(end, (at_least or {}).get(tp.partition, 0)) for tp, end in ends.items()}
        deadline = time.monotonic() + timeout_s
        while any(self._consumer.position(tp) < end for tp, end in self._existing(ends, wanted).items()):
            if time.monotonic() > deadline:
                raise BrokerError(f"could not read {self.topic} to its end within {timeout_s:.0f} s")
            yield from self.poll()

    def _existing(self, ends: dict[TopicPartition, int],
                  wanted: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """What to read to: the end offsets, and beyond them what `at_least` asked for, but not past a partition's
        high watermark once a fetch has told it. An `at_least` past it names records the log does not have (the topic
        was recreated, or a broker lost them), and waiting for them would never end. (Only the asked-for part is
        capped: a long-lived reader's high watermark is that of its last fetch, older than the end offsets.)"""
        for tp, want in wanted.items():
            high = self._consumer.highwater(tp)
            if want > ends[tp] and high is not None and high < want:
                log.warning("asked to read %s/%d to %d, beyond its end %d", tp.topic, tp.partition, want, high)
                wanted[tp] = max(ends[tp], high)
        return wanted

    def close(self) -> None:
        self._consumer.close()


class Admin:
    """Topic administration."""

    def __init__(self, bootstrap: str, *, tls: TlsClientConfig | None = None) -> None:
        self.bootstrap = bootstrap
        self.tls = tls
        try:
            self._admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="lienthong-admin",
                                           request_timeout_ms=15_000, **_security(tls))
        except KafkaError as exc:
            raise as_broker_error(f"cannot reach the Kafka broker at {bootstrap}", exc, as_text=True) from exc

    def existing_topics(self) -> set[str]:
        try:
            return set(self._admin.list_topics())
        except KafkaError as exc:
            raise as_broker_error("cannot list topics", exc) from exc

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
            raise as_broker_error(f"cannot create topics {missing}", exc) from exc
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
                raise as_broker_error("cannot delete topics", exc) from exc

    def close(self) -> None:
        self._admin.close()


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key (murmur2, as the Java client computes it)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def broker_answers(bootstrap: str, timeout_s: float = 5.0, *, tls: TlsClientConfig | None = None) -> bool:
    """True if a broker at bootstrap answers a metadata request within the timeout (over mutual TLS if given)."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=int(timeout_s * 1000),
                                 bootstrap_timeout_ms=int(timeout_s * 1000), **_security(tls))
    except (KafkaError, ValueError, OSError):
        return False
    try:
        admin.describe_cluster()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()
