"""Audit store benchmark: projector rows/s into SQLite and PostgreSQL, and `audit verify` rows/s.

Run: `.venv/bin/python -m bench.audit` (or `make bench-audit`). Prints a table and writes bench/results/audit.json.
Targets (issue 6): the projector writes at least 10,000 rows/s into each database; verify checks at least
200,000 rows/s.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import sys
import threading
import time
import uuid

from rich.console import Console
from rich.table import Table

from bench.environment import REPO, bench_broker
from consumers.audit_projector import AuditProjector
from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.certificates import BusCA
from lienthong.records import AUDIT_EVENT, audit_event_record
from lienthong.settings import Settings
from lienthong.transport.client import Outgoing, Publisher
from lienthong.wiring import Bus
from tests.integration.postgres import PrivatePostgres, create_database

PROJECTED = int(os.environ.get("LIENTHONG_BENCH_AUDIT_ROWS", "60000"))
VERIFIED = int(os.environ.get("LIENTHONG_BENCH_VERIFY_ROWS", "400000"))
RUNS = int(os.environ.get("LIENTHONG_BENCH_RUNS", "3"))
T0 = dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)
KINDS = [AuditEventType.SUBMITTED, AuditEventType.ROUTED, AuditEventType.DELIVERED, AuditEventType.STATUS]


def events(n: int, salt: str) -> list[AuditEvent]:
    """Audit events shaped like the router's: a document, its routing, deliveries and answers."""
    return [AuditEvent(event_id=f"b.ingress/{i % 3}/{i}/{KINDS[i % 4].value}/{salt}", event=KINDS[i % 4],
                       at=T0 + dt.timedelta(milliseconds=i), message_id=str(uuid.UUID(int=i)),
                       root_id=f"000.00.00.G22,2026/11/26,{i // 8}/VPCP-TTĐT", kind="DOCUMENT",
                       sender="000.00.00.G22", recipient=f"000.00.{i % 60 + 1:02d}.G01",
                       status="03" if i % 4 == 3 else None, content_sha256=bytes(32),
                       source_topic="b.ingress", source_partition=i % 3, source_offset=i)
            for i in range(n)]


def project(bus: Bus, url: str, topic_events: int) -> float:
    """Rows/s of a real projector reading the filled audit topic into a fresh database."""
    store = bus.audit_store(url, writer=True)
    projector = AuditProjector.connect(bus, store, group=f"bench-{uuid.uuid4().hex[:8]}")
    stop = threading.Event()
    started = time.perf_counter()
    thread = threading.Thread(target=projector.run, args=(stop,), daemon=True)
    thread.start()
    # The chain head's seq is the number of rows in a fresh store: one row to read, where COUNT(*) scanned the
    # growing table twenty times a second on the cores the projector and the database share.
    while store.head()[0] < topic_events:
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join(30)
    projector.close()
    rows = store.count()
    store.close()
    if rows != topic_events:
        raise RuntimeError(f"the projector wrote {rows:,} rows for {topic_events:,} events")
    return topic_events / elapsed


def verify_rate(bus: Bus, url: str, rows: int) -> tuple[list[float], list[float]]:
    """Rows/s of `audit verify` over a chain of `rows` rows, RUNS times each: in one process, and in parallel ranges
    (alternating, so that whatever else the machine does weighs on both)."""
    store = bus.audit_store(url, writer=True)
    for start in range(0, rows, 5000):
        store.add(events(5000, f"v{start}")[: min(5000, rows - start)])
    ca = BusCA.load(bus.settings.ca_dir)
    rates: tuple[list[float], list[float]] = ([], [])
    for _ in range(RUNS):
        for workers, into in ((1, rates[0]), (None, rates[1])):
            started = time.perf_counter()
            report = store.verify(ca.certificate, bus.envelopes.codec, workers=workers)
            into.append(report.rows / (time.perf_counter() - started))
            assert report.ok and report.rows == rows, report
    store.close()
    return rates


def main() -> int:
    console = Console()
    folder = REPO / "var" / "bench-audit"
    broker = bench_broker(folder / "broker")
    postgres = PrivatePostgres(folder / "postgres", int(os.environ.get("LIENTHONG_BENCH_PG_PORT", "55432")))
    results: dict[str, list[float]] = {}
    load_before = os.getloadavg()  # the machine is shared: say how busy it was
    try:
        console.print("starting a broker and a PostgreSQL server …")
        broker.up()
        pg_server = postgres.start()
        settings = Settings(home=folder / "home", bootstrap=broker.bootstrap, topic_prefix="bench-audit")
        bus = Bus(settings)
        bus.ca(create=True)
        admin = bus.admin()
        bus.ensure_core_topics(admin)
        admin.close()
        console.print(f"filling {bus.topics.audit} with {PROJECTED:,} audit events …")
        publisher = Publisher(settings.bootstrap)
        for event in events(PROJECTED, "p"):
            value = bus.envelopes.codec.encode(AUDIT_EVENT, audit_event_record(event))
            publisher.send(Outgoing(bus.topics.audit, value, (event.root_id or "").encode()))
        publisher.flush(120)
        publisher.close()
        for run in range(RUNS):
            (folder / f"audit-{run}.db").unlink(missing_ok=True)  # a fresh database for every run
            for name, url in (("sqlite", f"sqlite:///{folder / f'audit-{run}.db'}"),
                              ("postgresql", create_database(pg_server, f"bench_{run}"))):
                results.setdefault(f"projector_{name}_rows_per_s", []).append(project(bus, url, PROJECTED))
                console.print(f"run {run + 1}: projector into {name}: "
                              f"{results[f'projector_{name}_rows_per_s'][-1]:,.0f} rows/s")
        for name, url in (("sqlite", f"sqlite:///{folder / 'verify.db'}"),
                          ("postgresql", create_database(pg_server, "bench_verify"))):
            (folder / "verify.db").unlink(missing_ok=True)
            one, parallel = verify_rate(bus, url, VERIFIED)
            results[f"verify_{name}_rows_per_s_one_process"] = one
            results[f"verify_{name}_rows_per_s"] = parallel
            console.print(f"verify on {name}: {', '.join(f'{r:,.0f}' for r in one)} rows/s in one process, "
                          f"{', '.join(f'{r:,.0f}' for r in parallel)} in parallel")
    finally:
        postgres.stop()
        broker.down()
    medians = {k: round(statistics.median(v)) for k, v in results.items()}
    targets = {"projector_sqlite_rows_per_s": 10_000, "projector_postgresql_rows_per_s": 10_000,
               "verify_sqlite_rows_per_s": 200_000, "verify_postgresql_rows_per_s": 200_000}
    table = Table(title=f"audit store ({PROJECTED:,} projected rows, {VERIFIED:,} verified rows, "
                        f"median of {RUNS} runs each)")
    for column in ("figure", "median", "target", "met"):
        table.add_column(column)
    for key, median in medians.items():
        target = targets.get(key)
        table.add_row(key, f"{median:,}", f"{target:,}" if target else "", "" if not target else
                      ("yes" if median >= target else "NO"))
    console.print(table)
    load_after = os.getloadavg()
    console.print(f"load average (1, 5, 15 min): {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} at the "
                  f"start, {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} at the end")
    out = REPO / "bench" / "results" / "audit.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"medians": medians, "runs": results, "targets": targets,
                               "cores": os.cpu_count(), "load_average": {"start": load_before, "end": load_after},
                               "measured_at": dt.datetime.now(dt.UTC).isoformat()},
                              indent=2))
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
