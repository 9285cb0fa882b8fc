"""The local broker as `lienthong kafka up | down | status` runs it."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from lienthong.errors import BrokerError
from lienthong.transport.local_broker import LocalBroker
from tests.integration.conftest import make_test_broker

pytestmark = pytest.mark.integration


def test_a_second_up_while_it_runs_is_harmless(local_broker: LocalBroker | None) -> None:
    if local_broker is None:
        pytest.fail("this test needs the broker the session starts; unset LIENTHONG_BOOTSTRAP")
    before = local_broker.status()
    started = time.monotonic()
    after = local_broker.up()
    assert time.monotonic() - started < 10
    assert before.running and after.running and after.answering and after.pid == before.pid


def test_up_fails_clearly_with_the_log_tail_when_the_broker_cannot_start(tmp_path: Path) -> None:
    broker = make_test_broker(tmp_path / "broken", start_timeout_s=60.0)
    with socket.socket() as taken:  # the client port is already in use
        taken.bind(("127.0.0.1", broker.port))
        taken.listen()
        with pytest.raises(BrokerError) as err:
            broker.up()
    message = err.value.message
    assert "last lines of its log" in message
    assert str(broker.port) in message
    assert not broker.status().running
    assert broker.down() is False, "nothing left running"


def test_status_and_down_of_a_broker_that_never_ran(tmp_path: Path) -> None:
    broker = make_test_broker(tmp_path / "never")
    state = broker.status()
    assert not state.running and state.describe() == "not running"
    assert broker.down() is False
