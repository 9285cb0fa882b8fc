"""The router loop: poll ingress, decide, and commit deliveries, audit events, DLQ records and offsets together."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from lienthong.agencies import check_agency_code
from lienthong.audit.events import AuditEvent
from lienthong.directory.entries import AgencyEntry
from lienthong.directory.sync import DirectoryFollower
from lienthong.errors import BrokerError, FencedError, Reason
from lienthong.messages import utc_now
from lienthong.metrics import RouterMetrics
from lienthong.records import AUDIT_EVENT, audit_event_record
from lienthong.transport.client import Admin, Outgoing, Publisher, Record, Subscriber
from lienthong.wiring import Bus
from router.decisions import Accepted, Decision, Position, Rejected, audit_events, decide

log = logging.getLogger(__name__)


@dataclass
class _Connections:
    admin: Admin
    follower: DirectoryFollower
    consumer: Subscriber
    producer: Publisher


def dlq_headers(record: Record, decision: Rejected) -> list[tuple[str, bytes]]:
    # Keep what the sender set, so the record can be replayed as it came; our own headers cannot be forged.
    kept = [(k, v) for k, v in record.headers.items() if not k.startswith("lienthong_")]
    return [
        *kept,
        ("lienthong_reason_code", decision.reason.value.encode()),
        ("lienthong_reason", decision.detail.encode()),
        ("lienthong_source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
    ]


class Router:
    """One router instance; several in one group share the ingress partitions."""

    def __init__(self, bus: Bus, instance: str = "router-1", metrics: RouterMetrics | None = None,
                 clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.bus = bus
        self.instance = instance
        self.metrics = metrics or RouterMetrics()
        self.clock = clock
        self._skew = dt.timedelta(seconds=bus.settings.clock_skew_s)
        self._conn: _Connections | None = None
        self.ready = threading.Event()

    @property
    def conn(self) -> _Connections:
        if self._conn is None:
            raise BrokerError("the router is not connected: call start() first")
        return self._conn

    def _transactional_id(self) -> str:
        return f"{self.bus.topics.prefix}.{self.instance}"

    def start(self) -> None:
        bus = self.bus
        admin = bus.admin()
        bus.ensure_core_topics(admin)
        follower = bus.directory_follower()
        entries = follower.catch_up()
        bus.ensure_inboxes(admin, [e.code for e in entries if isinstance(e, AgencyEntry)])
        producer = bus.publisher(self._transactional_id(), client_id=self.instance)
        consumer = Subscriber(bus.settings.bootstrap, [bus.topics.ingress], bus.topics.router_group(),
                              client_id=self.instance, max_poll_records=bus.settings.router_batch_size)
        self._conn = _Connections(admin, follower, consumer, producer)
        log.info("router started", extra={"instance": self.instance, "agencies": len(follower.view.agencies)})

    def _follow_directory(self) -> None:
        codes = [e.code for e in self.conn.follower.poll() if isinstance(e, AgencyEntry)]
        if codes:
            self.bus.ensure_inboxes(self.conn.admin, codes)

    def route(self, record: Record, now: dt.datetime) -> list[Outgoing]:
        """Everything one ingress record turns into: deliveries or a DLQ record, and its audit events."""
        view = self.conn.follower.view
        try:
            decision: Decision = decide(record.value, view, self.bus.envelopes, now, self._skew)
        except Exception as exc:
            log.exception("unexpected error deciding a record", extra={"offset": record.offset})
            decision = Rejected(Reason.INTERNAL_ERROR, f"internal error: {exc!r}")
        position = Position(record.topic, record.partition, record.offset,
                            dt.datetime.fromtimestamp(record.timestamp_ms / 1000, dt.UTC))
        topics = self.bus.topics
        out: list[Outgoing] = []
        if isinstance(decision, Accepted):
            headers = list(record.headers.items())
            for recipient in decision.recipients:
                out.append(Outgoing(topics.inbox(check_agency_code(recipient)), record.value, record.key, headers))
            self.metrics.messages.labels("routed", "").inc()
            self.metrics.deliveries.inc(len(decision.recipients))
        else:
            out.append(Outgoing(topics.dlq, record.value, record.key, dlq_headers(record, decision)))
            self.metrics.messages.labels("rejected", decision.reason.value).inc()
            log.info("rejected", extra={"offset": record.offset, "partition": record.partition,
                                        "reason": decision.reason.value, "detail": decision.detail})
        out.extend(self._audit(e) for e in audit_events(decision, position, now))
        return out

    def _audit(self, event: AuditEvent) -> Outgoing:
        value = self.bus.envelopes.codec.encode(AUDIT_EVENT, audit_event_record(event))
        return Outgoing(self.bus.topics.audit, value, (event.root_id or event.event_id).encode())

    def run_once(self, timeout_ms: int = 500) -> int:
        """Poll one batch and commit it in one transaction; returns the number of ingress records handled."""
        consumer, producer = self.conn.consumer, self.conn.producer
        self._follow_directory()
        records = consumer.poll(timeout_ms)
        if not records:
            return 0
        started = time.perf_counter()
        now = self.clock()
        try:
            producer.begin()
            for record in records:
                for outgoing in self.route(record, now):
                    producer.send(outgoing)
            producer.commit(consumer)
        except FencedError:
            raise
        except BrokerError as exc:
            self.metrics.transactions.labels("aborted").inc()
            log.warning("transaction failed, rewinding to the last commit", extra={"error": str(exc)})
            try:
                producer.abort()
            except BrokerError:
                log.warning("abort failed; replacing the producer")
                producer.close(1)
                self.conn.producer = self.bus.publisher(self._transactional_id(), client_id=self.instance)
            consumer.rewind_to_committed()
            return 0
        self.metrics.transactions.labels("committed").inc()
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return len(records)

    def run(self, stop: threading.Event) -> None:
        """Route until stop is set."""
        if self._conn is None:
            self.start()
        self.ready.set()
        while not stop.is_set():
            self.run_once()

    def close(self) -> None:
        if self._conn is not None:
            for part in (self._conn.consumer, self._conn.producer, self._conn.follower, self._conn.admin):
                part.close()
            self._conn = None
