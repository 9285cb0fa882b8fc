"""The audit projector: audit topic in, SQL rows out, idempotently, so the store can be rebuilt from the topic."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from lienthong.audit.events import AuditEvent
from lienthong.audit.store import AuditStore
from lienthong.codec import SingleObjectCodec
from lienthong.errors import LienthongError
from lienthong.metrics import ProjectorMetrics
from lienthong.records import decode_audit
from lienthong.transport.client import Record, Subscriber
from lienthong.wiring import Bus

log = logging.getLogger(__name__)


class AuditProjector:
    """Reads committed audit events and writes each once; offsets are committed after the rows."""

    def __init__(self, bus: Bus, store: AuditStore, consumer: Subscriber,
                 metrics: ProjectorMetrics | None = None) -> None:
        self.bus = bus
        self.store = store
        self.consumer = consumer
        self.metrics = metrics or ProjectorMetrics()

    @classmethod
    def connect(cls, bus: Bus, store: AuditStore, group: str | None = None,
                metrics: ProjectorMetrics | None = None) -> AuditProjector:
        # Large batches: one SQL transaction and one offset commit per batch are most of the fixed cost.
        consumer = bus.subscriber([bus.topics.audit], group or bus.topics.projector_group(),
                                  client_id="audit-projector", max_poll_records=5000)
        return cls(bus, store, consumer, metrics)

    def run_once(self, timeout_ms: int = 500) -> int:
        records = self.consumer.poll(timeout_ms)
        decoded = 0

        def events() -> Iterator[AuditEvent]:
            # Decoded while the store writes: on PostgreSQL the rows already made stream to the server meanwhile.
            nonlocal decoded
            for record in records:
                read = _decoded(self.bus.envelopes.codec, record)
                if read is None:
                    self.metrics.events.labels("unreadable").inc()
                    continue
                decoded += len(read)
                yield from read

        self.store.add(events())
        self.metrics.events.labels("projected").inc(decoded)
        if records:
            self.consumer.commit()
        return decoded

    def run(self, stop: threading.Event) -> None:
        checked = time.monotonic()
        while not stop.is_set():
            self.run_once()
            if time.monotonic() - checked >= 1.0:  # a checkpoint when one is due by time
                self.store.checkpoint()
                checked = time.monotonic()

    def close(self) -> None:
        self.consumer.close()


def _decoded(codec: SingleObjectCodec, record: Record) -> list[AuditEvent] | None:
    """The events of one audit topic record; None, logged, if it cannot be read (it is skipped, not retried)."""
    try:
        return decode_audit(codec, record.value)
    except LienthongError as exc:
        log.error("audit record unreadable, skipped",
                  extra={"partition": record.partition, "offset": record.offset, "reason": exc.reason.value})
        return None


def rebuild(bus: Bus, store: AuditStore, chunk: int = 5_000) -> int:
    """Write every committed audit event on the topic into store (rows already there are kept as they are).

    Returns the number of events read. Replaying into an empty database gives the rows the projector wrote.
    """
    reader = bus.topic_reader(bus.topics.audit)
    events: list[AuditEvent] = []
    total = 0
    try:
        for record in reader.read_to_end(timeout_s=600):
            events.extend(_decoded(bus.envelopes.codec, record) or ())
            if len(events) >= chunk:
                store.add(events)
                total += len(events)
                events = []
        store.add(events)
        return total + len(events)
    finally:
        reader.close()
