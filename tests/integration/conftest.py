"""One real Kafka broker per test session, started the way `lienthong kafka up` starts it; a fresh topic prefix
per test. With LIENTHONG_BOOTSTRAP set, the tests use that broker instead."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from consumers.audit_projector import AuditProjector
from consumers.receiver import Receiver
from lienthong.audit.store import AuditStore
from lienthong.provisioning import add_agency, publish_directory
from lienthong.settings import Settings
from lienthong.transport.client import Record, TopicReader
from lienthong.transport.local_broker import LocalBroker
from lienthong.wiring import Bus
from producers.connect import gateway as connect_gateway
from producers.gateway import Gateway
from router.service import Router
from tests.integration.postgres import PrivatePostgres, create_database
from tests.support import AGENCIES

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_test_broker(folder: Path, **options: float) -> LocalBroker:
    """A LocalBroker on free ports, sharing the jar cache of `lienthong kafka fetch`."""
    return LocalBroker(folder, port=free_port(), controller_port=free_port(), libs=REPO / "var" / "kafka" / "libs",
                       maven_repo=os.environ.get("LIENTHONG_MAVEN_REPO", "https://repo1.maven.org/maven2"),
                       **options)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def local_broker() -> Iterator[LocalBroker | None]:
    """The broker this session started, or None when LIENTHONG_BOOTSTRAP names one."""
    if os.environ.get("LIENTHONG_BOOTSTRAP"):
        yield None
        return
    # A folder per test session: two sessions on one checkout (a developer's run beside CI's) must not share one.
    folder = REPO / "var" / f"test-broker-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    broker = make_test_broker(folder)
    broker.up()
    try:
        yield broker
    finally:
        broker.down()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server URL without a database name (a private server unless LIENTHONG_TEST_PG_URL is set)."""
    if os.environ.get("LIENTHONG_TEST_PG_URL"):
        yield os.environ["LIENTHONG_TEST_PG_URL"].rstrip("/")
        return
    server = PrivatePostgres(REPO / "var" / f"test-postgres-{os.getpid()}", free_port())
    url = server.start()
    try:
        yield url
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite and on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    server = request.getfixturevalue("postgres_server")
    return create_database(server, f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def kafka_bootstrap(local_broker: LocalBroker | None) -> str:
    return local_broker.bootstrap if local_broker else os.environ["LIENTHONG_BOOTSTRAP"]


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 30.0) -> T:
    """Poll until probe returns something truthy; fail with what was awaited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@dataclass
class Services:
    """Router and audit projector running in threads, stopped at teardown."""

    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def run(self, name: str, loop: Callable[[threading.Event], None]) -> None:
        def guarded() -> None:
            try:
                loop(self.stop)
            except BaseException as exc:  # surfaced by check()
                self.errors.append(exc)

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def check(self) -> None:
        if self.errors:
            raise self.errors[0]


@dataclass
class BusHarness:
    """A bus on the session broker under its own topic prefix and home folder."""

    bus: Bus
    services: Services
    audit: AuditStore
    closers: list[Callable[[], None]] = field(default_factory=list)

    def add_agencies(self, codes: list[str] | None = None) -> None:
        for code in codes or list(AGENCIES):
            name, kind = AGENCIES[code]
            add_agency(self.bus, code, name, kind)
        publish_directory(self.bus)

    def start_router(self, instance: str = "router-1") -> Router:
        router = Router(self.bus, instance)
        router.start()
        self.services.run(instance, router.run)
        self.closers.append(router.close)
        return router

    def start_projector(self) -> AuditProjector:
        projector = AuditProjector.connect(self.bus, self.audit)
        self.services.run("projector", projector.run)
        self.closers.append(projector.close)
        return projector

    def gateway(self, code: str) -> Gateway:
        gateway = connect_gateway(self.bus, code)
        self.closers.append(gateway.close)
        return gateway

    def receiver(self, code: str) -> Receiver:
        receiver = Receiver.connect(self.bus, code)
        self.closers.append(receiver.close)
        return receiver

    def read_topic(self, topic: str, count: int, timeout_s: float = 30.0) -> list[Record]:
        """Wait until `topic` holds at least `count` committed records; return them all."""
        reader = TopicReader(self.bus.settings.bootstrap, topic)
        records: list[Record] = []
        try:
            def enough() -> bool:
                self.services.check()
                records.extend(reader.poll(200))
                return len(records) >= count
            wait_for(f"{count} records on {topic} (have {len(records)})", enough, timeout_s)
            records.extend(reader.poll(300))  # anything more that is already there
        finally:
            reader.close()
        return records


@pytest.fixture
def harness(kafka_bootstrap: str, tmp_path: Path) -> Iterator[BusHarness]:
    settings = Settings(home=tmp_path / "home", bootstrap=kafka_bootstrap,
                        topic_prefix=f"test-{uuid.uuid4().hex[:10]}", ingress_partitions=2)
    services = Services()
    bus = Bus(settings)
    bus.ca(create=True)  # the operator's CA exists before anything signs checkpoints
    h = BusHarness(bus, services, bus.audit_store(writer=True))
    try:
        yield h
    finally:
        services.stop.set()
        for thread in services.threads:
            thread.join(timeout=30)
        for close in reversed(h.closers):
            close()
        h.audit.close()
        services.check()
