"""What-if runs: `lienthong` with prototypes of suggested changes patched in at start, to measure them before anyone
edits the code. Nothing here is used by a normal `make bench`; `python -m bench --what-if` runs the router once
more per workload with each patch set.

    python -m bench.whatif --patch fastavro-audit,no-heap-settle -- router run --instance bench-router

Patches (each the smallest stand-in for the change it names, not the change itself):
- per-event-audit: the router's audit as it was before the AuditEvents record: one AuditEvent record per event
                (to compare the two on one machine in one run).
- decide-per-record: the router deciding each record just before sending what it becomes, as before
                Router.decide_batch, instead of deciding the whole polled batch first.
- switch-1ms, switch-0.2ms: the router's interpreter handing the GIL over every 1 or 0.2 ms instead of 5 ms
                (`sys.setswitchinterval`): how long a thread that released it waits to get it back.
- txn-retry-100: the router's producer retrying a refused AddPartitionsToTxn after kafka-python's 100 ms, as
                before TRANSACTION_RETRY_BACKOFF_MS (to compare the two on one machine in one run).
- fastavro-audit: the router's AuditEvents records written by fastavro, as before lienthong.auditwire.
- send-per-record: the router's records queued by kafka-python's send one by one, as before Publisher.send_all.
- no-heap-settle: `router run` without its heap freezes (lienthong.heap), the collector as CPython ships it.
- commit-inline: each transaction's commit waited for before the next poll, as before the router committed in the
                background while polling and deciding the next batch.
Every patch but the switch intervals undoes a change the project made, to show what it is worth in one run. (The
`batch`, `schemas` and `certificates` prototypes were removed once the project did each itself and they changed
nothing.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import sys
from collections.abc import Callable
from typing import Any

PATCHES = ("per-event-audit", "txn-retry-100", "decide-per-record", "switch-1ms", "switch-0.2ms", "fastavro-audit",
           "send-per-record", "no-heap-settle", "commit-inline")


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

    def decide_then_route(self: Any, record: Any, now: dt.datetime, decision: Any, pending: Any) -> Any:
        # One at a time, between the sends.
        return route(self, record, now, decide_batch(self, [record], now)[0], pending)

    service.Router.decide_batch = nothing_yet  # type: ignore[method-assign]
    service.Router.route = decide_then_route  # type: ignore[method-assign]


def _fastavro_audit() -> None:
    from lienthong import auditwire

    auditwire.framer = lambda codec: functools.partial(auditwire.fastavro_frames, codec)  # type: ignore[assignment]


def _send_per_record() -> None:
    from lienthong.transport import client

    original = client.Publisher.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._appends_directly = False  # send_all's own record-by-record path

    client.Publisher.__init__ = init  # type: ignore[method-assign]


def _no_heap_settle() -> None:
    from router import service

    original = service.Router.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **{**kwargs, "settle_heap": False})

    service.Router.__init__ = init  # type: ignore[method-assign]


def _commit_inline() -> None:
    from router import service

    run_once = service.Router.run_once

    def commit_before_returning(self: Any, timeout_ms: int = 500) -> int:
        handled = run_once(self, timeout_ms)
        self.finish_commit()
        return handled

    service.Router.run_once = commit_before_returning  # type: ignore[method-assign]


def _switch(seconds: float) -> Callable[[], None]:
    def patch() -> None:
        sys.setswitchinterval(seconds)

    return patch


def apply(names: list[str]) -> None:
    for name in names:
        {"per-event-audit": _per_event_audit, "txn-retry-100": _txn_retry_100,
         "decide-per-record": _decide_per_record,
         "switch-1ms": _switch(0.001), "switch-0.2ms": _switch(0.0002), "fastavro-audit": _fastavro_audit,
         "send-per-record": _send_per_record, "no-heap-settle": _no_heap_settle,
         "commit-inline": _commit_inline}[name]()


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
