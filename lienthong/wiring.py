"""Builds the collaborators every entry point needs from one Settings object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lienthong.audit.store import AuditStore
from lienthong.certificates import BusCA, read_certificate
from lienthong.codec import SingleObjectCodec
from lienthong.directory.store import DirectoryStore
from lienthong.directory.sync import DirectoryFollower, DirectoryPublisher
from lienthong.directory.view import DirectoryView
from lienthong.envelope import EnvelopeCodec
from lienthong.errors import ConfigurationError
from lienthong.keystore import KeyStore
from lienthong.schemas import SchemaSet
from lienthong.settings import Settings
from lienthong.signing import Signer
from lienthong.topics import Topics
from lienthong.transport.client import Admin, Publisher, Subscriber, TlsClientConfig, TopicReader

COMPACTED = {"cleanup.policy": "compact"}


@dataclass
class Bus:
    """The settings, the codecs and the topic names, shared by every component of a process."""

    settings: Settings
    schemas: SchemaSet = field(init=False)
    envelopes: EnvelopeCodec = field(init=False)
    topics: Topics = field(init=False)

    def __post_init__(self) -> None:
        self.schemas = SchemaSet()
        self.envelopes = EnvelopeCodec(SingleObjectCodec(self.schemas))
        self.topics = Topics(self.settings.topic_prefix)

    @property
    def tls(self) -> TlsClientConfig | None:
        """The mutual TLS identity this process presents to the broker; None over PLAINTEXT (local demo only)."""
        files = self.settings.tls_files()
        return TlsClientConfig(*files) if files else None

    def admin(self) -> Admin:
        return Admin(self.settings.bootstrap, tls=self.tls)

    def publisher(self, transactional_id: str | None = None, client_id: str = "lienthong",
                  **options: int) -> Publisher:
        return Publisher(self.settings.bootstrap, transactional_id=transactional_id, client_id=client_id,
                         max_request_size=self.settings.max_message_bytes + 65_536, tls=self.tls, **options)

    def subscriber(self, topics: list[str], group: str, **options: Any) -> Subscriber:
        """A group consumer with this process's TLS identity; options as Subscriber takes them."""
        return Subscriber(self.settings.bootstrap, topics, group, tls=self.tls, **options)

    def topic_reader(self, topic: str, **options: Any) -> TopicReader:
        """A group-less reader with this process's TLS identity; options as TopicReader takes them."""
        return TopicReader(self.settings.bootstrap, topic, tls=self.tls, **options)

    def ensure_core_topics(self, admin: Admin) -> None:
        s, t = self.settings, self.topics
        # The broker stamps ingress records, so "submitted" times come from the bus, not from a sender's clock.
        admin.ensure_topics([t.ingress], partitions=s.ingress_partitions, replication=s.replication_factor,
                            configs={"message.timestamp.type": "LogAppendTime"})
        admin.ensure_topics([t.dlq, t.audit], partitions=s.ingress_partitions, replication=s.replication_factor,
                            configs={"retention.ms": str(s.audit_retention_ms)})
        admin.ensure_topics([t.directory], partitions=1, replication=s.replication_factor, configs=COMPACTED)
        admin.ensure_topics([t.router_seen], partitions=s.ingress_partitions, replication=s.replication_factor,
                            configs={"retention.ms": str(s.duplicate_window_s * 1000 * 2)})
        admin.ensure_topics([t.router_stories], partitions=s.ingress_partitions, replication=s.replication_factor,
                            configs=COMPACTED)

    def ensure_inboxes(self, admin: Admin, agencies: list[str]) -> list[str]:
        return admin.ensure_topics([self.topics.inbox(code) for code in agencies], partitions=1,
                                   replication=self.settings.replication_factor,
                                   configs={"retention.ms": str(self.settings.inbox_retention_ms)})

    def ca(self, *, create: bool = False) -> BusCA:
        """The bus CA (the operator's key). Only the operator's set-up commands create one (`agency add`, and the
        TLS commands of `lienthong kafka`): anything else signing with a fresh CA would sign what no follower or
        auditor trusts."""
        if create:
            return BusCA.load_or_create(self.settings.ca_dir)
        if not (self.settings.ca_dir / "ca.key.pem").exists():
            raise ConfigurationError(f"no bus CA key in {self.settings.ca_dir}: this command signs as the operator; "
                                     "run it where the operator key is, or check LIENTHONG_HOME")
        return BusCA.load(self.settings.ca_dir)

    def directory_store(self) -> DirectoryStore:
        return DirectoryStore(self.settings.directory_db_url())

    def directory_publisher(self, publisher: Publisher) -> DirectoryPublisher:
        # Publishing never creates a CA: entries signed by a fresh one would be ignored by every follower.
        ca_key = self.settings.ca_dir / "ca.key.pem"
        if not ca_key.exists():
            raise ConfigurationError(f"no bus CA in {self.settings.ca_dir}; is LIENTHONG_HOME right? "
                                     "(`lienthong agency add` creates the CA on first use)")
        return DirectoryPublisher(publisher, self.envelopes, BusCA.load(self.settings.ca_dir), self.topics.directory)

    def directory_follower(self) -> DirectoryFollower:
        view = DirectoryView(read_certificate(self.settings.ca_dir / "ca.cert.pem"))
        return DirectoryFollower(self.topic_reader(self.topics.directory), self.envelopes, view)

    def directory_view(self) -> DirectoryView:
        """The directory as published on the bus now (what the router checks against), read once."""
        follower = self.directory_follower()
        try:
            follower.catch_up()
        finally:
            follower.close()
        return follower.view

    def audit_store(self, url: str | None = None, *, writer: bool = False, read_only: bool = False) -> AuditStore:
        """The audit store; a writer (the projector) signs checkpoints with the operator key; a read-only one
        does not touch the schema, so it can run on a database role that may only SELECT."""
        settings = self.settings
        signer = None
        if writer:
            ca = self.ca()
            signer = Signer(ca.key, ca.certificate)
        return AuditStore(url or settings.audit_db_url(), self.envelopes.codec, signer,
                          settings.checkpoint_rows, settings.checkpoint_seconds, upgrade=not read_only)

    def keystore(self) -> KeyStore:
        return KeyStore(self.settings.keys_dir)
