"""shorten_transaction_retry on a producer it does not know how to adjust: a warning and False, nothing raised."""

from __future__ import annotations

import logging

import pytest

from lienthong.transport.client import shorten_transaction_retry


class _NoSender:
    def __init__(self) -> None:
        self.config = {"retry_backoff_ms": 100}


class _Sender:
    def __init__(self) -> None:
        self.config = {"retry_backoff_ms": 100, "acks": -1}


class _Producer:
    def __init__(self) -> None:
        self._sender = _Sender()
        self.config = {"retry_backoff_ms": 100}


def test_only_the_sender_threads_backoff_changes() -> None:
    producer = _Producer()
    assert shorten_transaction_retry(producer, 7) is True  # type: ignore[arg-type]
    assert producer._sender.config == {"retry_backoff_ms": 7, "acks": -1}
    assert producer.config == {"retry_backoff_ms": 100}


def test_an_unknown_producer_shape_is_left_alone_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    producer = _NoSender()
    with caplog.at_level(logging.WARNING):
        assert shorten_transaction_retry(producer) is False  # type: ignore[arg-type]
    assert producer.config == {"retry_backoff_ms": 100}
    assert "cannot shorten the transactional retry backoff" in caplog.text
