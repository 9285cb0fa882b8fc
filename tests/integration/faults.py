"""Tools for the fault tests: router processes to kill, a document stream, and exact delivery counts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lienthong.audit.events import AuditEventType
from lienthong.audit.store import AuditStore
from lienthong.messages import Message
from lienthong.records import decode_audit
from lienthong.transport.client import Outgoing, Publisher, TopicReader
from lienthong.wiring import Bus
from producers.gateway import cloud_event_headers
from tests.support import OFFICE, document, document_message


class RouterProcess:
    """`lienthong router run` as a real process, to be killed with SIGKILL and started again."""

    def __init__(self, bus: Bus, instance: str, log_dir: Path) -> None:
        s = bus.settings
        self.instance = instance
        self.env = {**os.environ, "LIENTHONG_HOME": str(s.home), "LIENTHONG_BOOTSTRAP": s.bootstrap,
                    "LIENTHONG_TOPIC_PREFIX": s.topic_prefix, "LIENTHONG_INGRESS_PARTITIONS": str(s.ingress_partitions),
                    "LIENTHONG_ROUTER_SESSION_TIMEOUT_MS": "6000", "LIENTHONG_ROUTER_TRANSACTION_TIMEOUT_MS": "10000"}
        self.log = log_dir / f"{instance}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lienthong", "router", "run", "--instance", self.instance, "-v"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.starts += 1

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.kills += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def signed_stream(bus: Bus, count: int, recipients: tuple[str, ...], prefix: str = "") -> list[tuple[Message, bytes]]:
    """`count` documents from the Government Office, signed, with distinct ids, ready to publish."""
    signer = bus.keystore().signer(OFFICE)
    out = []
    for n in range(count):
        message = document_message(recipients=recipients, doc=document(number=f"{prefix}{n}"))
        out.append((message, bus.envelopes.seal(message, signer)))
    return out


def outgoing(bus: Bus, message: Message, value: bytes) -> Outgoing:
    return Outgoing(bus.topics.ingress, value, message.header.root_id.encode(), cloud_event_headers(message.header))


@dataclass
class Streamer:
    """Publishes signed documents in chunks on a thread, so that faults can strike in the middle."""

    bus: Bus
    items: list[tuple[Message, bytes]]
    chunk: int = 200
    pause_s: float = 0.05
    done: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    published: int = 0

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="streamer", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        publisher = Publisher(self.bus.settings.bootstrap, client_id="chaos-stream", delivery_timeout_ms=300_000,
                              max_block_ms=300_000)
        try:
            for start in range(0, len(self.items), self.chunk):
                futures = [publisher.send(outgoing(self.bus, m, v)) for m, v in self.items[start:start + self.chunk]]
                for future in futures:
                    future.get(timeout=300)
                self.published += len(futures)
                time.sleep(self.pause_s)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            publisher.close()
            self.done.set()


@dataclass
class Tally:
    """Deliveries counted on the inbox topics (read_committed) against what was expected."""

    expected: set[tuple[str, str]]
    seen: Counter[tuple[str, str]]

    @property
    def delivered(self) -> int:
        return sum(self.seen.values())

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.seen.values() if n > 1)

    @property
    def lost(self) -> int:
        return len(self.expected - set(self.seen))

    @property
    def unexpected(self) -> int:
        return len(set(self.seen) - self.expected)

    def line(self, name: str, sent: int, **more: object) -> str:
        extra = "".join(f" {k}={v}" for k, v in more.items())
        return (f"[{name}] sent={sent} expected_deliveries={len(self.expected)} delivered={self.delivered} "
                f"duplicates={self.duplicates} lost={self.lost} unexpected={self.unexpected}{extra}")


def count_inboxes(bus: Bus, expected: set[tuple[str, str]], timeout_s: float = 120.0) -> Tally:
    """Read every recipient's inbox until all expected (message id, recipient) pairs are there or time is up,
    then a little longer, so that late duplicates are counted too."""
    recipients = sorted({r for _, r in expected})
    readers = {r: TopicReader(bus.settings.bootstrap, bus.topics.inbox(r)) for r in recipients}
    seen: Counter[tuple[str, str]] = Counter()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not expected <= set(seen):
            for recipient, reader in readers.items():
                for record in reader.poll(100):
                    seen[(record.headers["ce_id"].decode(), recipient)] += 1
        settle = time.monotonic() + 2.0
        while time.monotonic() < settle:
            for recipient, reader in readers.items():
                for record in reader.poll(100):
                    seen[(record.headers["ce_id"].decode(), recipient)] += 1
    finally:
        for reader in readers.values():
            reader.close()
    return Tally(expected, seen)


def audit_deliveries_on_topic(bus: Bus) -> Counter[tuple[str, str]]:
    """DELIVERED events on the audit topic (read_committed), before any SQL de-duplication."""
    reader = TopicReader(bus.settings.bootstrap, bus.topics.audit)
    counts: Counter[tuple[str, str]] = Counter()
    try:
        for record in reader.read_to_end(timeout_s=120):
            for event in decode_audit(bus.envelopes.codec, record.value):
                if event.event == AuditEventType.DELIVERED:
                    counts[(event.message_id or "", event.recipient or "")] += 1
    finally:
        reader.close()
    return counts


def audit_deliveries_in_sql(store: AuditStore) -> Counter[tuple[str, str]]:
    return Counter((e.message_id or "", e.recipient or "") for e in store.events()
                   if e.event == AuditEventType.DELIVERED)
