"""The router's transactional producer on the real broker: back-to-back transactions, with the shortened retry of
the AddPartitionsToTxn the broker refuses while it finishes the previous commit."""

from __future__ import annotations

import uuid

from kafka import KafkaConsumer, TopicPartition

from lienthong.transport.client import TRANSACTION_RETRY_BACKOFF_MS, Admin, Outgoing, Publisher


def test_back_to_back_transactions_commit_with_the_short_transactional_retry(kafka_bootstrap: str) -> None:
    topic = f"t-{uuid.uuid4().hex[:8]}"
    admin = Admin(kafka_bootstrap)
    admin.ensure_topics([topic], partitions=2)
    admin.close()
    publisher = Publisher(kafka_bootstrap, transactional_id=f"{topic}.tx")
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
