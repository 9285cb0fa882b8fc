"""The router commits each transaction in the background while it polls and decides the next batch: a commit that
fails there is aborted, and the batch and whatever was read ahead come again, each delivered once."""

from __future__ import annotations

import pytest

from lienthong.errors import BrokerError
from lienthong.records import decode_seen
from lienthong.transport.client import Checkpoint, PartitionRef, Record, TopicReader
from lienthong.wiring import Bus
from router.service import Router
from tests.integration.conftest import BusHarness
from tests.support import MINISTRY_A, OFFICE, document

pytestmark = pytest.mark.integration


def _message_ids(harness: BusHarness, records: list[Record]) -> list[str]:
    envelopes = harness.bus.envelopes
    return [envelopes.decode_content(envelopes.read(r.value or b"")).header.message_id for r in records]


def test_a_commit_that_fails_in_the_background_is_aborted_and_its_batch_routed_again(harness: BusHarness) -> None:
    harness.add_agencies([OFFICE, MINISTRY_A])
    gateway = harness.gateway(OFFICE)
    # Waiting before the router starts, in batches of 5: while the first batch commits, the next is polled and
    # decided (read ahead).
    sent = {gateway.send_document(document(number=str(n)), [MINISTRY_A]).message_id for n in range(1, 21)}
    router = Router(Bus(harness.bus.settings.model_copy(update={"router_batch_size": 5})), "router-1")
    router.start()
    harness.closers.append(router.close)
    producer = router.conn.producer
    real_commit = producer.commit
    failed: list[Checkpoint] = []
    committed_before = [0]

    def commit_failing_once(consumed: Checkpoint | None = None) -> None:
        assert isinstance(consumed, Checkpoint)
        reached = sum(consumed.offsets.values())
        batch, committed_before[0] = reached - committed_before[0], reached
        # The first full batch's commit: only a full batch's commit runs beside the next batch's poll (a short one
        # is waited for at once), and a first poll may return fewer.
        if not failed and batch == 5:
            failed.append(consumed)
            raise BrokerError("injected: the commit of a full batch fails")
        real_commit(consumed)

    producer.commit = commit_failing_once  # type: ignore[method-assign]
    # How many records the router had polled when it aborted: more than the failed batch's, if it read ahead.
    consumer, polled, polled_at_abort = router.conn.consumer, [0], []
    real_poll, real_abort = consumer.poll, router._abort

    def counting_poll(timeout_ms: int = 500) -> list[Record]:
        records = real_poll(timeout_ms)
        polled[0] += len(records)
        return records

    def noting_abort(exc: BrokerError) -> None:
        polled_at_abort.append(polled[0])
        real_abort(exc)

    consumer.poll = counting_poll  # type: ignore[method-assign]
    router._abort = noting_abort  # type: ignore[method-assign]
    harness.services.run("router-1", router.run)

    inbox = harness.bus.topics.inbox(MINISTRY_A)
    records = harness.read_topic(inbox, len(sent))
    # Each document once: what the aborted transaction delivered is gone, what was read ahead came again.
    assert sorted(_message_ids(harness, records)) == sorted(sent)
    assert len(failed) == 1, "a full batch's commit was refused"
    assert all(isinstance(p, PartitionRef) for p in failed[0].offsets)
    assert polled_at_abort[0] > sum(failed[0].offsets.values()), "the next batch was read ahead before the abort"
    # At least the injected one (a rejoin while a commit is in flight would abort one more, exactly once all the same).
    assert router.metrics.transactions.labels("aborted")._value.get() >= 1

    later = gateway.send_document(document(number="21"), [MINISTRY_A]).message_id
    records = harness.read_topic(inbox, len(sent) + 1)
    assert later in _message_ids(harness, records), "the router goes on routing after the abort"
    assert len(records) == len(sent) + 1

    # What a reload of a partition's seen ids must read up to: the end of this router's last committed seen record
    # there (checked through the router's private record of it: the race it guards, a reload between a commit and its
    # markers, cannot be arranged from outside).
    harness.services.stop.set()  # run() ends with the last commit
    for thread in harness.services.threads:
        thread.join(30)
    harness.services.check()
    reader = TopicReader(harness.bus.settings.bootstrap, harness.bus.topics.router_seen)
    try:
        seen = list(reader.read_to_end())
    finally:
        reader.close()
    ids = [entry["message_id"] for r in seen for entry in decode_seen(harness.bus.envelopes.codec, r.value)]
    assert sorted(ids) == sorted([*sent, later]), "one seen entry per document delivered"
    last = {p: max(r.offset for r in seen if r.partition == p) + 1 for p in {r.partition for r in seen}}
    assert {p: end for (topic, p), end in router._state_written.items() if topic == harness.bus.topics.router_seen} \
        == last
