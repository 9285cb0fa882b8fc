"""What-if runs: `lienthong` with prototypes of suggested changes patched in at start, to measure them before anyone
edits the code. Nothing here is used by a normal `make bench`; `python -m bench --what-if` runs the router once
more per workload with each patch set.

    python -m bench.whatif --patch batch,schemas,certificates -- router run --instance bench-router

Patches (each the smallest stand-in for the change it names, not the change itself):
- batch:        the router's producer with batch.size 1 MiB instead of kafka-python's 16 KiB default;
- schemas:      fastavro given schemas parsed once with its own marker (`parse_schema` with the write hint), so that
                schemaless_reader/writer stop re-parsing the whole schema on every call;
- certificates: a certificate's issuer signature checked once per certificate and CA, its validity dates on every
                message.
- per-event-audit: the router's audit as it was before the AuditEvents record: one AuditEvent record per event
                (to compare the two on one machine in one run).
- decide-per-record: the router deciding each record just before sending what it becomes, as before
                Router.decide_batch, instead of deciding the whole polled batch first.
- switch-1ms, switch-0.2ms: the router's interpreter handing the GIL over every 1 or 0.2 ms instead of 5 ms
                (`sys.setswitchinterval`): how long a thread that released it waits to get it back.
- txn-retry-100: the router's producer retrying a refused AddPartitionsToTxn after kafka-python's 100 ms, as
                before TRANSACTION_RETRY_BACKOFF_MS (to compare the two on one machine in one run).
Since commit 75e557d the project does the last two itself; on such code those patches change nothing.
- fastavro-audit: the router's AuditEvents records written by fastavro, as before lienthong.auditwire.
- send-per-record: the router's records queued by kafka-python's send one by one, as before Publisher.send_all.
- no-heap-settle: `router run` without its heap freezes (lienthong.heap), the collector as CPython ships it.
The last three undo changes of the second sitting of 2026-11-27 (docs/architecture.md, 5g).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import sys
from collections.abc import Callable
from typing import Any

PATCHES = ("batch", "schemas", "certificates", "per-event-audit", "txn-retry-100", "decide-per-record", "switch-1ms",
           "switch-0.2ms", "fastavro-audit", "send-per-record", "no-heap-settle")


def _batch(size: int = 1_048_576) -> None:
    from lienthong.transport import client

    original = getattr(client, "KafkaProducer")  # noqa: B009 - the name lienthong's client module imported

    @functools.wraps(original)
    def producer(**config: Any) -> Any:
        config.setdefault("batch_size", size)
        return original(**config)

    setattr(client, "KafkaProducer", producer)  # noqa: B010


def _schemas() -> None:
    from fastavro import parse_schema

    from lienthong import schemas

    original = schemas.SchemaSet.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        hinted = {id(s): dataclasses.replace(s, parsed=parse_schema(s.json)) for s in self._by_name.values()}
        self._by_name = {name: hinted[id(s)] for name, s in self._by_name.items()}
        self._by_fingerprint = {fp: hinted.get(id(s), s) for fp, s in self._by_fingerprint.items()}

    schemas.SchemaSet.__init__ = init  # type: ignore[method-assign]


def _certificates() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from lienthong import envelope

    original: Callable[[x509.Certificate, x509.Certificate, dt.datetime], None] | None = getattr(
        envelope, "check_certificate", None)
    if original is None:  # the envelope no longer checks the chain per message: nothing to patch
        return
    issued: set[tuple[bytes, bytes]] = set()

    def check(cert: x509.Certificate, ca: x509.Certificate, at: dt.datetime) -> None:
        key = (cert.fingerprint(hashes.SHA256()), ca.fingerprint(hashes.SHA256()))
        if key not in issued:
            original(cert, ca, at)  # the full check, issuer signature included, once
            issued.add(key)
            return
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            original(cert, ca, at)  # let the original say why

    setattr(envelope, "check_certificate", check)  # noqa: B010


def _per_event_audit() -> None:
    from lienthong.records import AUDIT_EVENT
    from lienthong.transport.client import Outgoing
    from router import service

    def audit(self: Any, events: list[dict[str, Any]], partition: int | None = None) -> list[Outgoing]:
        encode = self.bus.envelopes.codec.encode
        return [Outgoing(self.bus.topics.audit, encode(AUDIT_EVENT, e), (e["root_id"] or e["event_id"]).encode(),
                         partition=partition) for e in events]

    service.Router._audit = audit  # type: ignore[method-assign]


def _txn_retry_100() -> None:
    from lienthong.transport import client

    original = client.shorten_transaction_retry

    def kafka_python_default(producer: Any, backoff_ms: int = 100) -> bool:
        return original(producer, 100)

    client.shorten_transaction_retry = kafka_python_default  # type: ignore[assignment]


def _decide_per_record() -> None:
    from router import service

    decide_batch, route = service.Router.decide_batch, service.Router.route

    def nothing_yet(self: Any, records: Any, now: dt.datetime) -> list[Any]:
        return [None] * len(records)

    def decide_then_route(self: Any, record: Any, now: dt.datetime, decision: Any) -> Any:
        return route(self, record, now, decide_batch(self, [record], now)[0])  # one at a time, between the sends

    service.Router.decide_batch = nothing_yet  # type: ignore[method-assign]
    service.Router.route = decide_then_route  # type: ignore[method-assign]


def _fastavro_audit() -> None:
    from lienthong import auditwire
    from router import service

    original = service.Router.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._encode_audit = functools.partial(auditwire.fastavro_frame, self.bus.envelopes.codec)

    service.Router.__init__ = init  # type: ignore[method-assign]


def _send_per_record() -> None:
    from lienthong.transport import client

    def one_by_one(self: Any, records: Any) -> None:
        for record in records:
            self.send(record)

    client.Publisher.send_all = one_by_one  # type: ignore[method-assign]


def _no_heap_settle() -> None:
    from router import service

    original = service.Router.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **{**kwargs, "settle_heap": False})

    service.Router.__init__ = init  # type: ignore[method-assign]


def _switch(seconds: float) -> Callable[[], None]:
    def patch() -> None:
        sys.setswitchinterval(seconds)

    return patch


def apply(names: list[str]) -> None:
    for name in names:
        {"batch": _batch, "schemas": _schemas, "certificates": _certificates,
         "per-event-audit": _per_event_audit, "txn-retry-100": _txn_retry_100,
         "decide-per-record": _decide_per_record,
         "switch-1ms": _switch(0.001), "switch-0.2ms": _switch(0.0002), "fastavro-audit": _fastavro_audit,
         "send-per-record": _send_per_record, "no-heap-settle": _no_heap_settle}[name]()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="python -m bench.whatif", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patch", default="", help=f"comma-separated, from: {', '.join(PATCHES)}")
    args = parser.parse_args(argv[:split])
    apply([p for p in args.patch.split(",") if p])
    from lienthong.cli.main import main as lienthong_main

    sys.argv = ["lienthong", *argv[split + 1:]]
    lienthong_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
