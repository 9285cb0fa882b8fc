"""Transport isolation on the real broker with mutual TLS and the StandardAuthorizer: each agency reaches ingress,
its own inbox and its own group, and nothing else; the router and the auditor only what their jobs need."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from consumers.receiver import Receiver
from lienthong.certificates import (
    BusCA,
    TlsFiles,
    tls_subject,
    write_certificate,
    write_private_key,
)
from lienthong.cli import kafka_cmd
from lienthong.errors import BrokerAuthorizationError, BrokerError
from lienthong.notices import StatusCode
from lienthong.provisioning import add_agency, publish_directory
from lienthong.settings import Settings
from lienthong.topics import Topics
from lienthong.transport.acls import (
    AUDITOR,
    OPERATOR,
    ROUTER,
    AclAdmin,
    Grant,
    agency_principal,
    bus_grants,
)
from lienthong.transport.client import (
    Outgoing,
    Record,
    Subscriber,
    TlsClientConfig,
    TopicReader,
    broker_answers,
)
from lienthong.transport.local_broker import LocalBroker
from lienthong.wiring import Bus
from producers.connect import gateway as connect_gateway
from router.service import Router
from tests.integration.conftest import REPO, free_port, wait_for
from tests.support import AGENCIES, MINISTRY_A, OFFICE, document

pytestmark = pytest.mark.integration

A = OFFICE  # the Government Office
B = MINISTRY_A  # the Ministry of Finance
PREFIX = "iso"


@dataclass
class SecureBus:
    """A broker with TLS listeners and ACLs, its home folder, and one Bus per transport identity."""

    broker: LocalBroker
    home: Path
    env: dict[str, str]
    applied: dict[str, Any]

    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "lienthong", *args], env=self.env, capture_output=True,
                                text=True, timeout=120)
        if ok:
            assert result.returncode == 0, f"lienthong {' '.join(args)}: {result.stderr}{result.stdout}"
        return result

    def settings(self, identity: str) -> Settings:
        return Settings(home=self.home, bootstrap=self.broker.bootstrap, topic_prefix=PREFIX, ingress_partitions=2,
                        security_protocol="SSL", tls_identity=identity)

    def bus(self, identity: str) -> Bus:
        return Bus(self.settings(identity))

    def tls(self, identity: str) -> TlsClientConfig:
        tls = self.bus(identity).tls
        if tls is None:
            raise AssertionError("the secure bus has no TLS identity")
        return tls

    @property
    def topics(self) -> Topics:
        return Topics(PREFIX)

    def log(self) -> str:
        return self.broker.log_file.read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="module")
def secure() -> Iterator[SecureBus]:
    """The operator's path: `kafka up --tls`, agencies added and published, `kafka acls apply`; stopped at the end."""
    home = REPO / "var" / f"test-isolation-{os.getpid()}" / "home"
    shutil.rmtree(home.parent, ignore_errors=True)
    (home / "kafka").mkdir(parents=True)
    (home / "kafka" / "libs").symlink_to(REPO / "var" / "kafka" / "libs")  # the jar cache of `kafka fetch`
    port, controller_port = free_port(), free_port()
    env = {**os.environ, "LIENTHONG_HOME": str(home), "LIENTHONG_BOOTSTRAP": f"127.0.0.1:{port}",
           "LIENTHONG_BROKER_PORT": str(port), "LIENTHONG_CONTROLLER_PORT": str(controller_port),
           "LIENTHONG_TOPIC_PREFIX": PREFIX, "LIENTHONG_SECURITY_PROTOCOL": "SSL", "COLUMNS": "200"}
    for name in ("LIENTHONG_TLS_IDENTITY", "LIENTHONG_TLS_CA", "LIENTHONG_TLS_CERT", "LIENTHONG_TLS_KEY"):
        env.pop(name, None)
    broker = kafka_cmd.local_broker(Settings(home=home, broker_port=port, controller_port=controller_port,
                                             security_protocol="SSL"))
    s = SecureBus(broker, home, env, {})
    try:
        s.cli("kafka", "up", "--tls")
        operator = s.bus(OPERATOR)
        for code in (A, B):
            name, kind = AGENCIES[code]
            add_agency(operator, code, name, kind)
        publish_directory(operator)  # the operator, a super user, creates the topics and publishes the directory
        s.applied = json.loads(s.cli("kafka", "acls", "apply", "--json").stdout)
        yield s
    finally:
        broker.down()
        shutil.rmtree(home.parent, ignore_errors=True)


def raised_while_polling(poll: Callable[[], object], timeout_s: float = 20.0) -> BrokerError:
    """Poll until the client raises (the refusal comes with the first metadata or group answer)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            poll()
        except BrokerError as exc:
            return exc
    raise AssertionError(f"no error within {timeout_s:.0f} s")


def assert_denial_logged(secure: SecureBus, principal: str, resource: str) -> None:
    """The broker's authorizer log names the principal it mapped from the certificate subject, and the resource."""
    denial = f"Principal = User:{principal} is Denied operation = DESCRIBE from host = 127.0.0.1 on resource = "
    denial += resource
    wait_for(f"the broker's log of {principal} denied {resource}", lambda: denial in secure.log(), timeout_s=10)


def test_the_operator_granted_exactly_the_policy(secure: SecureBus) -> None:
    expected = sorted(set(bus_grants(secure.topics, [A, B])))
    assert sorted(secure.applied["issued"]) == sorted([ROUTER, AUDITOR, agency_principal(A), agency_principal(B)])
    assert [Grant(**g) for g in secure.applied["grants"]] == expected
    admin = AclAdmin(secure.broker.bootstrap, secure.tls(OPERATOR))
    try:
        assert admin.granted() == expected
        assert admin.granted(AUDITOR) == [g for g in expected if g.principal == AUDITOR]
    finally:
        admin.close()
    shown = json.loads(secure.cli("kafka", "acls", "show", "--principal", ROUTER, "--json").stdout)
    assert [Grant(**g) for g in shown] == [g for g in expected if g.principal == ROUTER]
    assert "answering on" in secure.cli("kafka", "status").stdout


def test_an_agency_publishes_to_ingress_without_cluster_rights(secure: SecureBus) -> None:
    # An idempotent producer (acks=all), with WRITE on ingress and no IDEMPOTENT_WRITE on the cluster (KIP-679).
    publisher = secure.bus(agency_principal(A)).publisher(client_id="isolation-a")
    try:
        partition, offset = publisher.send_and_wait(Outgoing(secure.topics.ingress, b"not a frame", key=b"k"))
    finally:
        publisher.close()
    assert partition >= 0 and offset >= 0


def test_an_agency_cannot_read_another_agencys_inbox(secure: SecureBus) -> None:
    t, a = secure.topics, secure.tls(agency_principal(A))
    consumer = Subscriber(secure.broker.bootstrap, [t.inbox(B)], t.receiver_group(A), client_id="a-snooping", tls=a)
    try:
        error = raised_while_polling(lambda: consumer.poll(300))
    finally:
        consumer.close()
    assert isinstance(error, BrokerAuthorizationError), error
    assert type(error.__cause__).__name__ == "TopicAuthorizationFailedError"
    assert "not authorized" in error.message and t.inbox(B) in error.message
    assert_denial_logged(secure, agency_principal(A), f"Topic:LITERAL:{t.inbox(B)}")

    with pytest.raises(BrokerAuthorizationError):  # nor without a group
        TopicReader(secure.broker.bootstrap, t.inbox(B), tls=a)


def test_an_agency_cannot_write_into_another_agencys_inbox(secure: SecureBus) -> None:
    publisher = secure.bus(agency_principal(A)).publisher(client_id="a-forging", max_block_ms=10_000)
    try:
        with pytest.raises(BrokerAuthorizationError) as refused:
            publisher.send_and_wait(Outgoing(secure.topics.inbox(B), b"forged", key=b"k"))
    finally:
        publisher.close()
    assert type(refused.value.__cause__).__name__ == "TopicAuthorizationFailedError"


def test_an_agency_cannot_join_another_agencys_consumer_group(secure: SecureBus) -> None:
    t = secure.topics
    # Its own inbox, which it may read, but in B's group: committing there would move B's offsets.
    consumer = Subscriber(secure.broker.bootstrap, [t.inbox(A)], t.receiver_group(B), client_id="a-in-b-group",
                          tls=secure.tls(agency_principal(A)))
    try:
        error = raised_while_polling(lambda: consumer.poll(300))
    finally:
        consumer.close()
    assert isinstance(error, BrokerAuthorizationError), error
    assert type(error.__cause__).__name__ == "GroupAuthorizationFailedError"
    # The authorizer's log names the principal the broker mapped from A's certificate subject.
    assert_denial_logged(secure, agency_principal(A), f"Group:LITERAL:{t.receiver_group(B)}")


def test_the_own_inbox_and_group_are_open_to_their_agency(secure: SecureBus) -> None:
    t = secure.topics
    consumer = Subscriber(secure.broker.bootstrap, [t.inbox(A)], t.receiver_group(A), client_id="a-own",
                          tls=secure.tls(agency_principal(A)))
    try:
        wait_for("A's own inbox assigned to A's group", lambda: consumer.poll(200) or consumer.positions())
        consumer.commit()  # every step raises if the broker refuses it
    finally:
        consumer.close()


def _apiversions_over_tls(port: int, context: ssl.SSLContext) -> bytes:
    """Send one ApiVersions request over TLS and return what comes back (b'' if the broker hung up)."""
    client_id = b"no-cert"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    with (socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
          context.wrap_socket(raw, server_hostname="127.0.0.1") as tls):
        tls.sendall(struct.pack(">i", len(body)) + body)
        return tls.recv(4)


def test_plaintext_certificateless_and_foreign_clients_are_refused(secure: SecureBus, tmp_path: Path) -> None:
    bootstrap = secure.broker.bootstrap
    assert not broker_answers(bootstrap, timeout_s=2.0), "a plaintext client is refused"

    no_certificate = ssl.create_default_context(cafile=str(secure.tls(OPERATOR).cafile))
    try:
        answer = _apiversions_over_tls(secure.broker.port, no_certificate)
    except (ssl.SSLError, ConnectionError):  # TLS 1.3: the broker's "certificate required" alert comes here
        answer = b""
    assert answer == b"", "a TLS client without a certificate gets no answer"

    # A certificate with the operator's very subject, from a CA the broker does not trust.
    rogue = BusCA.create("rogue CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(tls_subject(OPERATOR)).issuer_name(rogue.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .sign(rogue.key, hashes.SHA256()))
    files = TlsFiles.at(tmp_path, OPERATOR)
    write_private_key(files.key, key)
    write_certificate(files.certificate, cert)
    assert broker_answers(bootstrap, timeout_s=2.0, tls=TlsClientConfig(secure.tls(OPERATOR).cafile,
                                                                        files.certificate, files.key)) is False

    # An agency's signing certificate, from the bus CA, authenticates but is no transport identity: its principal
    # is its whole subject, which no ACL names, so it may not even read its own agency's inbox.
    keys = secure.settings(OPERATOR).keys_dir
    signing = TlsClientConfig(secure.tls(OPERATOR).cafile, keys / f"{A}.cert.pem", keys / f"{A}.key.pem")
    with pytest.raises(BrokerAuthorizationError):
        TopicReader(bootstrap, secure.topics.inbox(A), tls=signing)


def test_the_auditor_reads_the_audit_topic_and_no_inbox(secure: SecureBus) -> None:
    t, auditor = secure.topics, secure.tls(AUDITOR)
    reader = TopicReader(secure.broker.bootstrap, t.audit, tls=auditor)
    try:
        list(reader.read_to_end(timeout_s=10))
    finally:
        reader.close()
    projector = Subscriber(secure.broker.bootstrap, [t.audit], t.projector_group(), client_id="projector",
                           tls=auditor)
    try:
        wait_for("the audit topic assigned to the projector's group",
                 lambda: projector.poll(200) or projector.positions())
        projector.commit()
    finally:
        projector.close()
    for topic in (t.inbox(A), t.ingress, t.dlq):
        with pytest.raises(BrokerAuthorizationError):
            TopicReader(secure.broker.bootstrap, topic, tls=auditor)
    sneaky = Subscriber(secure.broker.bootstrap, [t.inbox(B)], t.projector_group(), client_id="auditor-inbox",
                        tls=auditor)
    try:
        assert isinstance(raised_while_polling(lambda: sneaky.poll(300)), BrokerAuthorizationError)
    finally:
        sneaky.close()


def read_all(secure: SecureBus, identity: str, topic: str) -> list[Record]:
    reader = TopicReader(secure.broker.bootstrap, topic, tls=secure.tls(identity))
    try:
        return list(reader.read_to_end(timeout_s=10))
    finally:
        reader.close()


def test_the_router_routes_a_signed_document_under_tls_and_acls(secure: SecureBus) -> None:
    router_bus = secure.bus(ROUTER)
    stop, errors = threading.Event(), []
    service = Router(router_bus, f"iso-{uuid.uuid4().hex[:6]}")
    closers: list[Callable[[], Any]] = []
    try:
        service.start()
        closers.append(service.close)

        def run() -> None:
            try:
                service.run(stop)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        def stop_router() -> None:
            stop.set()
            thread.join(timeout=30)

        thread = threading.Thread(target=run, name="router", daemon=True)
        thread.start()
        closers.append(stop_router)  # closers run last first: the router stops before it is closed

        gateway = connect_gateway(secure.bus(agency_principal(A)), A)
        closers.append(gateway.close)
        doc = document(A, number=f"ISO{uuid.uuid4().hex[:6]}")
        sent = gateway.send_document(doc, [B])

        receiver_b = Receiver.connect(secure.bus(agency_principal(B)), B)
        closers.append(receiver_b.close)
        receiver_a = Receiver.connect(secure.bus(agency_principal(A)), A)
        closers.append(receiver_a.close)

        def arrived() -> list[Any]:
            if errors:
                raise errors[0]
            return [r for r in receiver_b.poll(200) if r.kind == "document"]

        [item] = wait_for(f"the document verified in {B}'s inbox", arrived)
        assert item.message is not None and item.message.header.message_id == sent.message_id
        stored = receiver_b.store.document(doc.document_id)
        assert stored.last_status is StatusCode.ARRIVED  # and B's 01 went back through ingress, under B's name

        def acknowledged() -> list[Any]:
            if errors:
                raise errors[0]
            return [r for r in receiver_a.poll(200) if r.kind == "notice"]

        [notice] = wait_for(f"{B}'s 01 in {A}'s inbox", acknowledged)
        assert notice.message is not None and notice.message.header.sender == B

        # The router wrote the audit (which the auditor reads) and refused bad input into the DLQ.
        raw = secure.bus(agency_principal(A)).publisher(client_id="a-raw")
        closers.append(raw.close)
        raw.send_and_wait(Outgoing(secure.topics.ingress, b"not a frame", key=b"junk"))
        wait_for("the junk in the DLQ", lambda: any(r.value == b"not a frame" for r in read_all(
            secure, OPERATOR, secure.topics.dlq)))
        audited = read_all(secure, AUDITOR, secure.topics.audit)
        assert any(sent.message_id.encode() in (r.value or b"") for r in audited)
    finally:
        for close in reversed(closers):
            close()
    assert not errors, errors
