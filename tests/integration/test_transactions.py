"""The router's transactional producer on the real broker: back-to-back transactions, with the shortened retry of
the AddPartitionsToTxn the broker refuses while it finishes the previous commit."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from kafka import KafkaConsumer, TopicPartition

from lienthong.transport.client import (
    TRANSACTION_RETRY_BACKOFF_MS,
    Admin,
    Outgoing,
    Publisher,
    Record,
    TopicReader,
    written_end,
)


def _fresh_topic(bootstrap: str, partitions: int) -> tuple[str, Publisher]:
    """A new topic, and a transactional producer of its own."""
    topic = f"t-{uuid.uuid4().hex[:8]}"
    admin = Admin(bootstrap)
    admin.ensure_topics([topic], partitions=partitions)
    admin.close()
    return topic, Publisher(bootstrap, transactional_id=f"{topic}.tx")


def test_back_to_back_transactions_commit_with_the_short_transactional_retry(kafka_bootstrap: str) -> None:
    topic, publisher = _fresh_topic(kafka_bootstrap, 2)
    try:
        # The refused first AddPartitionsToTxn of a transaction is retried after 5 ms; the sender sleeps whatever
        # backoff the request it sends has (kafka-python's 100 ms for all others). If a kafka-python upgrade moves
        # these objects, this fails here instead of every transaction silently starting 100 ms late.
        producer = publisher._producer
        manager = producer._sender._transaction_manager
        assert manager.ADD_PARTITIONS_RETRY_BACKOFF_MS == TRANSACTION_RETRY_BACKOFF_MS
        assert producer.config["retry_backoff_ms"] == 100
        wrapped, sent = manager.next_request_handler, []

        def watched(*args: object) -> object:
            handler = wrapped(*args)
            if handler is not None:
                sent.append((type(handler).__name__, handler.is_retry, handler.retry_backoff_ms,
                             producer._sender.config["retry_backoff_ms"]))
            return handler

        manager.next_request_handler = watched
        for batch in range(20):  # each begins right after a commit: the broker refuses the first AddPartitionsToTxn
            publisher.begin()
            for i in range(3):
                publisher.send(Outgoing(topic, f"{batch}/{i}".encode(), partition=None))
            publisher.flush(30)
            publisher.commit()
        assert sent and all(backoff == sleeps for _, _, backoff, sleeps in sent), sent
        assert all(backoff == TRANSACTION_RETRY_BACKOFF_MS for name, retry, backoff, _ in sent
                   if retry and name == "AddPartitionsToTxnHandler"), sent
        assert all(backoff == 100 for name, _, backoff, _ in sent if name != "AddPartitionsToTxnHandler"), sent
    finally:
        publisher.close()
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, isolation_level="read_committed",
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=10_000)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        values = sorted(r.value.decode() for r in consumer)
    finally:
        consumer.close()
    assert values == sorted(f"{b}/{i}" for b in range(20) for i in range(3))


def _committed(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=5_000)
    try:
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()])
        return sorted((r.partition, r.key, r.value, list(r.headers)) for r in consumer)
    finally:
        consumer.close()


def test_send_all_queues_what_send_would_and_its_transaction_decides(kafka_bootstrap: str) -> None:
    inbox, audit, later = (f"t-{uuid.uuid4().hex[:8]}" for _ in range(3))
    admin = Admin(kafka_bootstrap)
    admin.ensure_topics([inbox, audit], partitions=3)
    publisher = Publisher(kafka_bootstrap, transactional_id=f"{inbox}.tx")
    try:
        assert publisher._appends_directly  # else this test would only exercise send, record by record
        headers = [("ce_id", b"1"), ("ce_type", b"gov.lienthong.document")]
        publisher.begin()
        publisher.send_all([Outgoing(inbox, b"doc", b"root", headers, partition=2),
                            Outgoing(audit, b"events", b"root", partition=1),
                            Outgoing(audit, b"by key", b"root")])  # no partition: kafka-python's partitioner
        publisher.flush(30)
        publisher.commit()
        publisher.begin()
        publisher.send_all([Outgoing(inbox, b"aborted", b"root", partition=0)])
        publisher.flush(30)
        publisher.abort()
        # A topic this producer has no metadata for yet: send_all waits for it, as send does.
        admin.ensure_topics([later], partitions=1)
        publisher.begin()
        publisher.send_all([Outgoing(later, b"first", b"k", partition=0),
                            Outgoing(later, b"second", b"k", partition=0)])
        publisher.commit()
        publisher.begin()  # a partition of an earlier transaction is added to this one again
        publisher.send_all([Outgoing(inbox, b"again", b"root", headers, partition=2)])
        publisher.commit()
        publisher.begin()
        with pytest.raises(ValueError, match="Unrecognized partition"):  # kafka-python's own refusal, as from send
            publisher.send_all([Outgoing(inbox, b"nowhere", b"k", partition=7)])
        publisher.abort()
    finally:
        publisher.close()
        admin.close()
    assert _committed(kafka_bootstrap, inbox) == [(2, b"root", b"again", headers), (2, b"root", b"doc", headers)]
    by_key = _committed(kafka_bootstrap, audit)
    assert sorted(value for _, _, value, _ in by_key) == [b"by key", b"events"]
    assert (1, b"root", b"events", []) in by_key
    assert [value for _, _, value, _ in _committed(kafka_bootstrap, later)] == [b"first", b"second"]


def test_send_all_refuses_a_header_value_that_is_not_bytes_as_send_does(kafka_bootstrap: str) -> None:
    topic, publisher = _fresh_topic(kafka_bootstrap, 1)
    try:
        publisher._producer.partitions_for(topic)  # metadata known: send_all would take the record itself
        publisher.begin()
        bad: list[tuple[str, bytes]] = [("x-empty", None)]  # type: ignore[list-item]
        with pytest.raises(TypeError, match="headers"):
            publisher.send_all([Outgoing(topic, b"value", b"k", bad, partition=0)])
        publisher.send_all([Outgoing(topic, b"good", b"k", partition=0)])
        publisher.commit()
    finally:
        publisher.close()
    assert [value for _, _, value, _ in _committed(kafka_bootstrap, topic)] == [b"good"]


def test_read_to_end_reads_up_to_a_transaction_the_caller_committed_waiting_for_its_markers(
        kafka_bootstrap: str) -> None:
    # The router reloads a partition's seen ids and stories right after its own commit when the partition was revoked
    # and given back meanwhile; a read_committed end offset stops before a transaction whose markers are not written.
    topic, publisher = _fresh_topic(kafka_bootstrap, 1)
    try:
        publisher.begin()
        futures = publisher.send_all([Outgoing(topic, b"decided later", b"k", partition=0)], watch=frozenset({topic}))
        publisher.flush(30)
        end = written_end(futures[(topic, 0)])
        assert end == 1
        first = TopicReader(kafka_bootstrap, topic)
        try:
            assert list(first.read_to_end(timeout_s=5)) == [], "an undecided transaction is not read"
        finally:
            first.close()
        got: list[Record] = []
        reader = TopicReader(kafka_bootstrap, topic)
        waiting = threading.Thread(target=lambda: got.extend(reader.read_to_end(timeout_s=30, at_least={0: end})))
        try:
            waiting.start()
            time.sleep(1.0)
            assert waiting.is_alive() and not got, "it waits while the transaction is undecided"
            publisher.commit()
            waiting.join(30)
            assert not waiting.is_alive()
        finally:
            waiting.join(30)
            reader.close()
        assert [r.value for r in got] == [b"decided later"]
        # Asked for more than the log has (a topic recreated since): it reads what there is, rather than wait for ever.
        beyond = TopicReader(kafka_bootstrap, topic)
        try:
            started = time.monotonic()
            assert [r.value for r in beyond.read_to_end(timeout_s=20, at_least={0: 1_000})] == [b"decided later"]
            assert time.monotonic() - started < 10
        finally:
            beyond.close()
    finally:
        publisher.close()
