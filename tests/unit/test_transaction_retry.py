"""shorten_transaction_retry on stand-ins shaped like kafka-python 3.0's producer: the sender sleeps the backoff of
the request it sends next; a producer of another shape is left alone with a warning."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from lienthong.transport.client import shorten_transaction_retry


class _Handler:
    def __init__(self, backoff_ms: int) -> None:
        self.retry_backoff_ms = backoff_ms


class _Manager:
    ADD_PARTITIONS_RETRY_BACKOFF_MS = 20

    def __init__(self) -> None:
        self.queue: list[_Handler] = []

    def next_request_handler(self, has_incomplete_batches: Any) -> _Handler | None:
        return self.queue.pop(0) if self.queue else None


class _Sender:
    def __init__(self) -> None:
        self.config = {"retry_backoff_ms": 100, "acks": -1}
        self._transaction_manager = _Manager()


class _Producer:
    def __init__(self) -> None:
        self._sender = _Sender()
        self.config = {"retry_backoff_ms": 100}


def test_the_sender_sleeps_the_backoff_of_the_request_it_sends_next() -> None:
    producer = _Producer()
    manager = producer._sender._transaction_manager
    assert shorten_transaction_retry(producer, 7) is True  # type: ignore[arg-type]
    assert manager.ADD_PARTITIONS_RETRY_BACKOFF_MS == 7
    assert _Manager.ADD_PARTITIONS_RETRY_BACKOFF_MS == 20  # this producer's manager only
    # A refused first AddPartitionsToTxn, lowered by kafka-python to the manager's value, then a coordinator lookup.
    manager.queue = [_Handler(7), _Handler(100)]
    assert manager.next_request_handler(lambda: False).retry_backoff_ms == 7
    assert producer._sender.config["retry_backoff_ms"] == 7
    assert manager.next_request_handler(lambda: False).retry_backoff_ms == 100
    assert producer._sender.config["retry_backoff_ms"] == 100
    assert manager.next_request_handler(lambda: False) is None
    assert producer._sender.config == {"retry_backoff_ms": 100, "acks": -1}
    assert producer.config == {"retry_backoff_ms": 100}


class _NoManager:
    def __init__(self) -> None:
        self._sender = type("S", (), {"config": {"retry_backoff_ms": 100}})()


def test_an_unknown_producer_shape_is_left_alone_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    producer = _NoManager()
    with caplog.at_level(logging.WARNING):
        assert shorten_transaction_retry(producer) is False  # type: ignore[arg-type]
    assert producer._sender.config == {"retry_backoff_ms": 100}
    assert "cannot shorten the transactional retry backoff" in caplog.text
