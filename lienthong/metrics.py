"""Prometheus metrics: one registry per process, built at the entry point and passed down."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RouterMetrics:
    """What the router counts: messages by outcome and reason, deliveries, batch time."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.messages = Counter("lienthong_router_messages_total", "Ingress messages handled",
                                ["outcome", "reason"], registry=self.registry)
        self.deliveries = Counter("lienthong_router_deliveries_total", "Records delivered to inbox topics",
                                  registry=self.registry)
        self.transactions = Counter("lienthong_router_transactions_total", "Kafka transactions by outcome",
                                    ["outcome"], registry=self.registry)
        self.batch_seconds = Histogram("lienthong_router_batch_seconds", "Time to route and commit one batch",
                                       buckets=BUCKETS, registry=self.registry)


class ProjectorMetrics:
    """What the audit projector counts."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.events = Counter("lienthong_projector_events_total", "Audit records read, by outcome",
                              ["outcome"], registry=self.registry)


class ReceiverMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.received = Counter("lienthong_receiver_messages_total", "Inbox messages handled",
                                ["outcome", "reason"], registry=self.registry)


def serve(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> None:
    """Serve /metrics on host:port (loopback unless configured otherwise)."""
    start_http_server(port, addr=host, registry=registry)
