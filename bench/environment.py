"""What every benchmark phase stands on: a broker of its own, a private home with 61 agencies, signed documents."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lienthong.agencies import AgencyKind
from lienthong.directory.entries import AgencyEntry, CertificateEntry
from lienthong.documents import Attachment
from lienthong.messages import Message, MessageHeader, MessageKind, utc_now
from lienthong.provisioning import add_agency, publish_directory
from lienthong.settings import Settings
from lienthong.transport.client import Outgoing, Publisher
from lienthong.transport.local_broker import LocalBroker
from lienthong.wiring import Bus
from producers.builder import new_document
from producers.gateway import cloud_event_headers

REPO = Path(__file__).resolve().parents[1]
SENDER = "000.00.00.G22"
SENDER_NAME = "Văn phòng Chính phủ"
MINISTRIES = tuple(f"000.00.{n:02d}.G01" for n in range(1, 61))
SUMMARY = ("Văn phòng Chính phủ thông báo ý kiến chỉ đạo của Thủ tướng Chính phủ về việc đẩy mạnh liên thông văn "
           "bản điện tử giữa các cơ quan nhà nước; đề nghị các Bộ, cơ quan ngang Bộ triển khai và báo cáo kết quả.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_broker(folder: Path) -> LocalBroker:
    """A fresh one-node broker on free ports, with the jar cache of `lienthong kafka fetch`."""
    stale = LocalBroker(folder)
    if stale.status().running:  # left behind by an interrupted run of ours
        stale.down()
    shutil.rmtree(folder, ignore_errors=True)
    return LocalBroker(folder, port=free_port(), controller_port=free_port(), libs=REPO / "var" / "kafka" / "libs",
                       maven_repo=os.environ.get("LIENTHONG_MAVEN_REPO", "https://repo1.maven.org/maven2"))


@dataclass(frozen=True)
class Item:
    """One signed document, ready to publish to ingress as the gateway would."""

    message_id: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    def outgoing(self, topic: str) -> Outgoing:
        return Outgoing(topic, self.value, self.key, self.headers)


@dataclass
class BenchHome:
    """A private LIENTHONG_HOME under var/ with the Government Office and 60 ministries, and their keys."""

    home: Path
    bootstrap: str
    run_id: str
    buses: dict[str, Bus] = field(default_factory=dict)

    def settings(self, prefix: str) -> Settings:
        return Settings(home=self.home, bootstrap=self.bootstrap, topic_prefix=prefix)

    def env(self, prefix: str) -> dict[str, str]:
        """The environment a `lienthong` process needs to join the bus under `prefix`."""
        return {**os.environ, "LIENTHONG_HOME": str(self.home), "LIENTHONG_BOOTSTRAP": self.bootstrap,
                "LIENTHONG_TOPIC_PREFIX": prefix}

    def provision(self) -> None:
        bus = Bus(self.settings(f"bench-{self.run_id}-setup"))
        add_agency(bus, SENDER, SENDER_NAME, AgencyKind.GOVERNMENT)
        for n, code in enumerate(MINISTRIES, start=1):
            add_agency(bus, code, f"Bộ thử nghiệm số {n}", AgencyKind.MINISTRY)

    def bus(self, phase: str, agencies: tuple[str, ...] | None = None) -> Bus:
        """A bus under a topic prefix of its own with its directory published: every agency, or only `agencies`
        (and so only their inboxes, which the broker creates much faster than 61). Made once per phase."""
        if phase not in self.buses:
            bus = Bus(self.settings(f"bench-{self.run_id}-{phase}"))
            if agencies is None:
                publish_directory(bus)
            else:
                _publish_some(bus, set(agencies))
            self.buses[phase] = bus
        return self.buses[phase]

    def prepare(self, phases: dict[str, tuple[str, ...] | None]) -> None:
        """Create every phase's topics before anything is measured. A router started right after its ingress
        was created can be assigned no partition at all (kafka-python: "No partition metadata for topic"), and
        creating topics costs the broker time that would otherwise fall into a measurement."""
        for phase, agencies in phases.items():
            self.bus(phase, agencies)


def _publish_some(bus: Bus, codes: set[str]) -> None:
    """publish_directory, for some agencies only: their entries, certificates and inboxes, and the core topics."""
    store = bus.directory_store()
    admin = bus.admin()
    publisher = bus.publisher(client_id="directory-publisher")
    try:
        bus.ensure_core_topics(admin)
        bus.ensure_inboxes(admin, sorted(codes))
        entries = [e for e in store.entries()
                   if (isinstance(e, AgencyEntry) and e.code in codes)
                   or (isinstance(e, CertificateEntry) and e.agency in codes)]
        bus.directory_publisher(publisher).publish(entries)
    finally:
        publisher.close()
        admin.close()
        store.close()


def sign_documents(bus: Bus, count: int, recipients: tuple[str, ...], tag: str,
                   progress: Callable[[int], None] | None = None, attachment_bytes: int = 1024) -> list[Item]:
    """`count` documents from the Government Office with one attachment, signed with its key from the keystore."""
    signer = bus.keystore().signer(SENDER)
    attachment = Attachment.of("cong-van.pdf", os.urandom(attachment_bytes), "application/pdf")
    today = dt.date.today()
    items = []
    for n in range(count):
        document = new_document(SENDER, number=f"{tag}{n}", notation="VPCP-TTĐT", date=today, summary=SUMMARY,
                                subject="Về việc đẩy mạnh liên thông văn bản điện tử", attachments=(attachment,),
                                signer_name="Trần Văn Sơn", signer_position="Bộ trưởng, Chủ nhiệm")
        header = MessageHeader(kind=MessageKind.DOCUMENT, sender=SENDER, recipients=recipients,
                               root_id=document.document_id, created_at=utc_now())
        message = Message(header=header, payload=document)
        value = bus.envelopes.seal(message, signer)
        items.append(Item(header.message_id, header.root_id.encode(), value, tuple(cloud_event_headers(header))))
        if progress and n % 1000 == 999:
            progress(n + 1)
    return items


def prefill(bootstrap: str, topic: str, items: list[Item]) -> None:
    """Publish `items` to `topic` (keyed as the gateway keys them) and wait until the broker has them all."""
    publisher = Publisher(bootstrap, client_id="bench-prefill", linger_ms=20)
    try:
        futures = [publisher.send(item.outgoing(topic)) for item in items]
        publisher.flush(120)
        for future in futures:
            future.get(timeout=120)
    finally:
        publisher.close()
