"""Exactly once under crashes, restarts and rebalances, with real processes killed for real.

Each test prints what it counted and asserts lost == 0 and duplicates == 0. The chaos run's size is set by
LIENTHONG_CHAOS_DOCS (default 5000) and LIENTHONG_CHAOS_KILLS (default 3); see README for the long version.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lienthong.audit.events import AuditEventType
from lienthong.settings import Settings
from lienthong.transport.client import Outgoing, Publisher
from lienthong.transport.local_broker import LocalBroker
from lienthong.wiring import Bus
from producers.connect import gateway as connect_gateway
from producers.connect import outbox_url, relay_for
from producers.outbox import Outbox
from tests.integration.conftest import REPO, BusHarness, make_test_broker, wait_for
from tests.integration.faults import (
    RouterProcess,
    Streamer,
    audit_deliveries_in_sql,
    audit_deliveries_on_topic,
    count_inboxes,
    outgoing,
    signed_stream,
)
from tests.support import MINISTRY_A, MINISTRY_B, OFFICE, PROVINCE, document

pytestmark = pytest.mark.integration
RECIPIENTS = (MINISTRY_A, MINISTRY_B, PROVINCE)


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(f"\n{line}")


def expected_pairs(items: list, recipients: tuple[str, ...] = RECIPIENTS) -> set[tuple[str, str]]:  # type: ignore[type-arg]
    return {(m.header.message_id, r) for m, _ in items for r in recipients}


@pytest.fixture
def routers(harness: BusHarness, tmp_path: Path) -> Iterator[dict[str, RouterProcess]]:
    made: dict[str, RouterProcess] = {}
    yield made
    for router in made.values():
        router.stop()


def router(made: dict[str, RouterProcess], harness: BusHarness, tmp_path: Path, name: str) -> RouterProcess:
    made[name] = RouterProcess(harness.bus, name, tmp_path)
    made[name].start()
    return made[name]


def test_a_chaos_router_killed_at_random_moments(harness: BusHarness, routers: dict[str, RouterProcess],
                                                 tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = int(os.environ.get("LIENTHONG_CHAOS_DOCS", "5000"))
    kills = int(os.environ.get("LIENTHONG_CHAOS_KILLS", "3"))
    harness.add_agencies([OFFICE, *RECIPIENTS])
    harness.start_projector()
    items = signed_stream(harness.bus, docs, RECIPIENTS)
    r1 = router(routers, harness, tmp_path, "router-1")
    # Paced so that the stream lasts about as long as the kills take: every kill lands mid-stream.
    streamer = Streamer(harness.bus, items, chunk=max(50, docs // 40), pause_s=0.3 * max(1, kills / 3))
    streamer.start()
    seed = int(os.environ.get("LIENTHONG_CHAOS_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    published_at_kill = []
    while r1.kills < kills or not streamer.done.is_set():
        time.sleep(rng.uniform(1.0, 3.0))
        published_at_kill.append(streamer.published)
        r1.kill()
        r1.start()
    assert not streamer.errors, streamer.errors
    tally = count_inboxes(harness.bus, expected_pairs(items), timeout_s=300)
    on_topic = audit_deliveries_on_topic(harness.bus)
    in_sql = wait_for("the projector to catch up",
                      lambda: c if len(c := audit_deliveries_in_sql(harness.audit)) >= len(tally.expected) else None,
                      timeout_s=120)
    report(capsys, tally.line("chaos", docs, kills=r1.kills, seed=seed, published_at_kills=published_at_kill,
                              audit_topic_duplicates=sum(n - 1 for n in on_topic.values()),
                              audit_rows=sum(in_sql.values())))
    assert tally.lost == 0 and tally.duplicates == 0 and tally.unexpected == 0
    assert r1.kills >= 3 or kills < 3
    assert set(on_topic) == tally.expected and max(on_topic.values()) == 1, "one DELIVERED event per pair"
    assert set(in_sql) == tally.expected and max(in_sql.values()) == 1, "one delivery row per pair in SQL"


def test_c_two_routers_share_the_work_and_one_takes_over(harness: BusHarness, routers: dict[str, RouterProcess],
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    harness.add_agencies([OFFICE, *RECIPIENTS])
    items = signed_stream(harness.bus, 1500, RECIPIENTS)
    router(routers, harness, tmp_path, "router-1")
    r2 = router(routers, harness, tmp_path, "router-2")
    streamer = Streamer(harness.bus, items, chunk=50, pause_s=0.05)
    streamer.start()
    wait_for("the stream to be half way", lambda: streamer.published >= len(items) // 2, timeout_s=120)
    r2.kill()
    streamer.done.wait(180)
    tally = count_inboxes(harness.bus, expected_pairs(items), timeout_s=180)
    report(capsys, tally.line("two-routers", len(items), killed="router-2", survivor="router-1"))
    assert routers["router-1"].alive()
    assert tally.lost == 0 and tally.duplicates == 0 and tally.unexpected == 0


def test_e_poison_in_the_middle_of_a_batch(harness: BusHarness, capsys: pytest.CaptureFixture[str]) -> None:
    harness.add_agencies([OFFICE, MINISTRY_A])
    items = signed_stream(harness.bus, 400, (MINISTRY_A,))
    publisher = harness.bus.publisher()
    try:
        for n, (message, value) in enumerate(items):
            if n == 200:  # into the partition of the next document, ahead of it, before the router starts
                publisher.send(Outgoing(harness.bus.topics.ingress, b"\xc3\x01poison", message.header.root_id.encode()))
            publisher.send(outgoing(harness.bus, message, value))
        publisher.flush(30)
    finally:
        publisher.close()
    harness.start_router()
    tally = count_inboxes(harness.bus, expected_pairs(items, (MINISTRY_A,)))
    dlq = harness.read_topic(harness.bus.topics.dlq, 1)
    report(capsys, tally.line("poison", len(items) + 1, dlq=len(dlq)))
    assert tally.lost == 0 and tally.duplicates == 0
    assert [r.value for r in dlq] == [b"\xc3\x01poison"]


def test_replayed_bytes_and_gateway_retries_are_delivered_once(harness: BusHarness,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    harness.add_agencies([OFFICE, MINISTRY_A])
    items = signed_stream(harness.bus, 20, (MINISTRY_A,))
    publisher = harness.bus.publisher()

    def publish_all() -> None:
        for message, value in items:
            publisher.send(outgoing(harness.bus, message, value))
        publisher.flush(30)

    try:
        publish_all()
        router = harness.start_router("router-1")
        count_inboxes(harness.bus, expected_pairs(items, (MINISTRY_A,)))
        harness.services.stop.set()  # the instance goes away; a new one must remember what was delivered
        for thread in harness.services.threads:
            thread.join(30)
        router.close()
        harness.services.stop.clear()
        harness.services.threads.clear()
        publish_all()  # the same bytes again, as a gateway retry or a replay would send them
        harness.start_router("router-1")
        harness.start_projector()
    finally:
        publisher.close()
    tally = count_inboxes(harness.bus, expected_pairs(items, (MINISTRY_A,)))

    def duplicates_audited():  # type: ignore[no-untyped-def]
        rows = [e for e in harness.audit.events() if e.reason_code == "duplicate"]
        return rows if len(rows) == len(items) else None

    rows = wait_for("a REJECTED duplicate row per replayed message", duplicates_audited)
    report(capsys, tally.line("replay", 2 * len(items), duplicates_audited=len(rows)))
    assert tally.lost == 0 and tally.duplicates == 0
    assert {e.message_id for e in rows} == {m.header.message_id for m, _ in items}
    assert all(e.event == AuditEventType.REJECTED for e in rows)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of its own, to be stopped and restarted without disturbing the other tests."""
    folder = REPO / "var" / f"fault-broker-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    broker = make_test_broker(folder)
    broker.up()
    try:
        yield broker
    finally:
        broker.down()
        shutil.rmtree(folder, ignore_errors=True)


def own_harness(broker: LocalBroker, tmp_path: Path) -> BusHarness:
    from tests.integration.conftest import Services

    settings = Settings(home=tmp_path / "home", bootstrap=broker.bootstrap, topic_prefix="faults",
                        ingress_partitions=2)
    bus = Bus(settings)
    bus.ca(create=True)
    return BusHarness(bus, Services(), bus.audit_store(writer=True))


def test_b_broker_stopped_and_restarted_mid_stream(own_broker: LocalBroker, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    harness = own_harness(own_broker, tmp_path)
    routers: dict[str, RouterProcess] = {}
    try:
        harness.add_agencies([OFFICE, *RECIPIENTS])
        items = signed_stream(harness.bus, 1500, RECIPIENTS)
        router(routers, harness, tmp_path, "router-1")
        streamer = Streamer(harness.bus, items, chunk=50, pause_s=0.05)
        streamer.start()
        wait_for("a third of the stream", lambda: streamer.published >= len(items) // 3, timeout_s=120)
        first = {(m.header.message_id, r) for m, _ in items[:1] for r in RECIPIENTS}
        assert count_inboxes(harness.bus, first, timeout_s=60).lost == 0, "the router is routing"
        own_broker.down()  # SIGTERM, as an operator restart; the router and the stream must wait it out
        time.sleep(1)
        own_broker.up()
        assert streamer.done.wait(300), "the stream finished after the restart"
        assert not streamer.errors, streamer.errors
        tally = count_inboxes(harness.bus, expected_pairs(items), timeout_s=300)
        report(capsys, tally.line("broker-restart", len(items), router_alive=routers["router-1"].alive()))
        assert tally.lost == 0 and tally.duplicates == 0 and tally.unexpected == 0
        assert routers["router-1"].alive(), "the router waited the outage out"
    finally:
        for r in routers.values():
            r.stop()
        harness.audit.close()


def test_d_gateway_with_kafka_down_queues_and_delivers_exactly_once(own_broker: LocalBroker, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    harness = own_harness(own_broker, tmp_path)
    routers: dict[str, RouterProcess] = {}
    try:
        harness.add_agencies([OFFICE, MINISTRY_A])
        own_broker.down()
        gateway = connect_gateway(harness.bus, OFFICE, outbox=True, wait_s=1.0)
        sent = [gateway.send_document(document(number=f"Q{n}"), [MINISTRY_A]) for n in range(30)]
        gateway.close()  # the gateway stops with everything queued
        assert all(s.queued for s in sent)
        box = Outbox(outbox_url(harness.bus))
        assert box.waiting() == 30, "a restarted gateway finds everything still queued"

        own_broker.up()
        # The relay crashed after the broker took the first ten but before it marked them sent:
        raw = Publisher(harness.bus.settings.bootstrap)
        for entry in box.pending()[:10]:
            raw.send_and_wait(entry.outgoing)
        raw.close()
        result = relay_for(harness.bus, box).flush()
        assert result.published == 30 and result.waiting == 0
        box.close()

        router(routers, harness, tmp_path, "router-1")
        expected = {(s.message_id, MINISTRY_A) for s in sent}
        tally = count_inboxes(harness.bus, expected, timeout_s=120)
        report(capsys, tally.line("outbox", len(sent), published_twice=10))
        assert tally.lost == 0 and tally.duplicates == 0 and tally.unexpected == 0
    finally:
        for r in routers.values():
            r.stop()
        harness.audit.close()
