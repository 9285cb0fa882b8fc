"""Builds the collaborators every entry point needs from one Settings object."""

from __future__ import annotations

from dataclasses import dataclass, field

from lienthong.certificates import BusCA, read_certificate
from lienthong.codec import SingleObjectCodec
from lienthong.directory.store import DirectoryStore
from lienthong.directory.sync import DirectoryFollower, DirectoryPublisher
from lienthong.directory.view import DirectoryView
from lienthong.envelope import EnvelopeCodec
from lienthong.keystore import KeyStore
from lienthong.schemas import SchemaSet
from lienthong.settings import Settings
from lienthong.topics import Topics
from lienthong.transport.client import Admin, Publisher, TopicReader

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

    def admin(self) -> Admin:
        return Admin(self.settings.bootstrap)

    def publisher(self, transactional_id: str | None = None, client_id: str = "lienthong",
                  **options: int) -> Publisher:
        return Publisher(self.settings.bootstrap, transactional_id=transactional_id, client_id=client_id,
                         max_request_size=self.settings.max_message_bytes + 65_536, **options)

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

    def ensure_inboxes(self, admin: Admin, agencies: list[str]) -> list[str]:
        return admin.ensure_topics([self.topics.inbox(code) for code in agencies], partitions=1,
                                   replication=self.settings.replication_factor,
                                   configs={"retention.ms": str(self.settings.inbox_retention_ms)})

    def ca(self) -> BusCA:
        return BusCA.load_or_create(self.settings.ca_dir)

    def directory_store(self) -> DirectoryStore:
        return DirectoryStore(self.settings.directory_db_url())

    def directory_publisher(self, publisher: Publisher) -> DirectoryPublisher:
        return DirectoryPublisher(publisher, self.envelopes, self.ca(), self.topics.directory)

    def directory_follower(self) -> DirectoryFollower:
        view = DirectoryView(read_certificate(self.settings.ca_dir / "ca.cert.pem"))
        return DirectoryFollower(TopicReader(self.settings.bootstrap, self.topics.directory), self.envelopes, view)

    def keystore(self) -> KeyStore:
        return KeyStore(self.settings.keys_dir)
