"""The bus's Kafka ACLs: which principal may read or write which topic, group and transactional id.

The policy is plain data (`Grant`), built from the topic names and the agency list; `AclAdmin` writes it to the
broker through kafka-python's admin API. Principals are the short names the broker maps from the transport
certificates' subjects (local_broker.PRINCIPAL_MAPPING_RULES): `User:agency-<code>`, `User:router`,
`User:auditor`. The operator and the broker are super users and need no grant.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import KafkaError

from lienthong.agencies import check_agency_code
from lienthong.errors import BrokerError
from lienthong.topics import Topics
from lienthong.transport.client import TlsClientConfig, as_broker_error

log = logging.getLogger(__name__)

ROUTER = "router"
AUDITOR = "auditor"
OPERATOR = "operator"
BROKER = "broker"

_RESOURCES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP,
              "transactional-id": ResourceType.TRANSACTIONAL_ID}
_OPERATIONS = {"READ", "WRITE", "DESCRIBE"}


def agency_principal(code: str) -> str:
    """The transport identity and Kafka principal name of an agency: agency-<code>."""
    return f"agency-{check_agency_code(code)}"


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW rule: User:<principal> may do `operation` on a resource, named exactly or by a name prefix."""

    principal: str
    resource: str
    name: str
    operation: str
    prefixed: bool = False

    def __post_init__(self) -> None:
        if self.resource not in _RESOURCES or self.operation not in _OPERATIONS:
            raise ValueError(f"unsupported grant {self.resource}/{self.operation}")

    def describe(self) -> str:
        return f"User:{self.principal} {self.operation} {self.resource} {self.name}{'*' if self.prefixed else ''}"


def agency_grants(topics: Topics, code: str) -> list[Grant]:
    """An agency writes to ingress, reads its own inbox with its own group, and reads the directory. Nothing else.

    No IDEMPOTENT_WRITE on the cluster: since Kafka 3.0 (KIP-679) WRITE on a topic is enough for the idempotent
    producer, and the isolation test proves an agency publishes without it.
    """
    who = agency_principal(code)
    return [
        Grant(who, "topic", topics.ingress, "WRITE"),
        Grant(who, "topic", topics.ingress, "DESCRIBE"),
        Grant(who, "topic", topics.inbox(code), "READ"),
        Grant(who, "topic", topics.inbox(code), "DESCRIBE"),
        Grant(who, "group", topics.receiver_group(code), "READ"),
        Grant(who, "topic", topics.directory, "READ"),
    ]


def router_grants(topics: Topics, principal: str = ROUTER) -> list[Grant]:
    """A router reads ingress and the directory; writes every inbox, audit, DLQ, its seen ids and its stories; in
    transactions.

    It creates no topic: the operator creates the inboxes before it publishes the agencies in the directory.
    """
    return [
        Grant(principal, "topic", topics.ingress, "READ"),
        Grant(principal, "topic", f"{topics.prefix}.inbox.", "WRITE", prefixed=True),
        Grant(principal, "topic", topics.audit, "WRITE"),
        Grant(principal, "topic", topics.dlq, "WRITE"),
        Grant(principal, "topic", topics.router_seen, "READ"),
        Grant(principal, "topic", topics.router_seen, "WRITE"),
        Grant(principal, "topic", topics.router_stories, "READ"),
        Grant(principal, "topic", topics.router_stories, "WRITE"),
        Grant(principal, "topic", topics.directory, "READ"),
        Grant(principal, "group", topics.router_group(), "READ"),
        # Transactional ids are <prefix>.<instance>: any router instance of this bus, none of another's.
        Grant(principal, "transactional-id", f"{topics.prefix}.", "WRITE", prefixed=True),
        Grant(principal, "transactional-id", f"{topics.prefix}.", "DESCRIBE", prefixed=True),
    ]


def auditor_grants(topics: Topics, principal: str = AUDITOR) -> list[Grant]:
    """An auditor (and the audit projector it runs) reads the audit topic, with the projector's group. Only that."""
    return [
        Grant(principal, "topic", topics.audit, "READ"),
        Grant(principal, "topic", topics.audit, "DESCRIBE"),
        Grant(principal, "group", topics.projector_group(), "READ"),
    ]


def bus_grants(topics: Topics, agencies: Iterable[str]) -> list[Grant]:
    """Every grant of a bus: the router, the auditor and each agency."""
    grants = router_grants(topics) + auditor_grants(topics)
    for code in sorted(set(agencies)):
        grants += agency_grants(topics, code)
    return grants


def _to_acl(grant: Grant) -> ACL:
    pattern = ACLResourcePatternType.PREFIXED if grant.prefixed else ACLResourcePatternType.LITERAL
    return ACL(f"User:{grant.principal}", "*", ACLOperation[grant.operation], ACLPermissionType.ALLOW,
               ResourcePattern(_RESOURCES[grant.resource], grant.name, pattern))


def _from_acl(acl: ACL) -> Grant | None:
    resources = {v: k for k, v in _RESOURCES.items()}
    principal = str(acl.principal)
    if (acl.permission_type != ACLPermissionType.ALLOW or not principal.startswith("User:")
            or acl.resource_pattern.resource_type not in resources or acl.operation.name not in _OPERATIONS):
        return None  # not one of ours: listed by Kafka's own tools, left alone here
    return Grant(principal.removeprefix("User:"), resources[acl.resource_pattern.resource_type],
                 acl.resource_pattern.resource_name, acl.operation.name,
                 acl.resource_pattern.pattern_type == ACLResourcePatternType.PREFIXED)


class AclAdmin:
    """Writes and lists the bus's ACLs; the client must be a super user (the operator's TLS identity)."""

    def __init__(self, bootstrap: str, tls: TlsClientConfig) -> None:
        self.bootstrap = bootstrap
        try:
            self._admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="lienthong-acls",
                                           request_timeout_ms=15_000, **tls.kafka_options())
        except KafkaError as exc:
            raise as_broker_error(f"cannot reach the Kafka broker at {bootstrap}", exc, as_text=True) from exc

    def apply(self, grants: Sequence[Grant]) -> int:
        """Create the grants (an ACL that exists already is left as it is); returns how many were sent."""
        wanted = sorted(set(grants))
        for start in range(0, len(wanted), 200):
            chunk = [_to_acl(g) for g in wanted[start:start + 200]]
            try:
                result = self._admin.create_acls(chunk)
            except KafkaError as exc:
                raise as_broker_error("cannot create ACLs", exc) from exc
            if result["failed"]:
                raise BrokerError(f"the broker refused {len(result['failed'])} of {len(chunk)} ACLs: "
                                  f"{result['failed'][0]!r}")
        log.info("ACLs applied", extra={"count": len(wanted)})
        return len(wanted)

    def granted(self, principal: str | None = None) -> list[Grant]:
        """The ALLOW grants on the broker, for one principal (short name) or for all."""
        acl_filter = ACLFilter(f"User:{principal}" if principal else None, None, ACLOperation.ANY,
                               ACLPermissionType.ANY,
                               ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
        try:
            acls, _ = self._admin.describe_acls(acl_filter)
        except KafkaError as exc:
            raise as_broker_error("cannot list ACLs", exc) from exc
        return sorted(g for g in map(_from_acl, acls) if g is not None)

    def revoke_principal(self, principal: str) -> int:
        """Delete every ACL of one principal (an agency leaving the bus); returns how many were deleted."""
        acl_filter = ACLFilter(f"User:{principal}", None, ACLOperation.ANY, ACLPermissionType.ANY,
                               ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
        try:
            results = self._admin.delete_acls([acl_filter])
        except KafkaError as exc:
            raise as_broker_error(f"cannot delete the ACLs of {principal}", exc) from exc
        return sum(len(matched) for _, matched, _ in results)

    def close(self) -> None:
        self._admin.close()
