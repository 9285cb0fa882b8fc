"""Dossier status events through the real router: events/s for several batch sizes, on a broker of its own.

Run: `.venv/bin/python -m bench.dossiers` (or `make bench-dossiers`). A provincial portal's signed status batches go
to the national portal's inbox through `lienthong router run` (transactional, as shipped), fed and timed as the
router throughput of `make bench` (bench/throughput.py): warm-up batches first, then the measured batches,
published faster than the router drains them, timed from the first delivery to the group's commit of the last.
Events/s = batches/s × batch size; events per router CPU second = events/s ÷ the cores the router used meanwhile,
the figure to read on a shared machine, where the router gets only a share of a core. Batch size 1 shows the
per-message cost (signature check, decoding, the audit and seen records, a delivery) that batching spreads over many
events. Prints a table and writes bench/results/dossiers.json. Target (issue 5): at least 10,000 events/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import machine
from bench.environment import REPO, BenchHome, Item, bench_broker
from bench.processes import py_spy
from bench.profiling import summary
from bench.throughput import RouterRun, run_router
from lienthong.agencies import AgencyKind
from lienthong.dossiers import DossierStatusBatch, DossierStatusEvent, OwnerKind
from lienthong.messages import Message, MessageHeader, MessageKind, utc_now
from lienthong.provisioning import add_agency
from lienthong.reports import VIETNAM
from lienthong.settings import Settings
from lienthong.wiring import Bus
from producers.gateway import cloud_event_headers

NATIONAL = "000.00.00.G22"  # the Government Office runs the National Public Service Portal
PORTAL = "000.00.00.H29"  # the Hanoi provincial portal
TARGET = 10_000
WARMUP_BATCHES = 20
STATUSES = ("RECEIVED", "IN_PROGRESS", "IN_PROGRESS", "SUPPLEMENT_REQUESTED", "RESULT_READY", "RETURNED")
UNITS = ("UBND phường Hàng Bạc, quận Hoàn Kiếm", "Sở Tư pháp thành phố Hà Nội", "UBND quận Ba Đình",
         "Sở Kế hoạch và Đầu tư thành phố Hà Nội")
HANDLERS = ("Nguyễn Thị Lan", "Trần Văn Minh", "Lê Thu Hà", "")


def events(count: int, tag: str) -> list[DossierStatusEvent]:
    """Status events as a provincial portal reports them: many dossiers, a few events each, the last hour."""
    now = dt.datetime.now(VIETNAM).replace(microsecond=0)
    out = []
    for n in range(count):
        at = now - dt.timedelta(seconds=n % 3600)
        received = at.date() - dt.timedelta(days=n % 10)
        out.append(DossierStatusEvent(
            dossier_code=f"000.00.07.H29-{received:%y%m%d}-{tag}{n // 3:06d}", procedure_code="1.004227.000.00.00.H29",
            field="Hộ tịch" if n % 2 else "Đăng ký kinh doanh",
            owner_kind=OwnerKind.CITIZEN if n % 2 else OwnerKind.BUSINESS, received_date=received,
            due_date=received + dt.timedelta(days=5 + n % 10), status=STATUSES[n % len(STATUSES)],
            handling_unit=UNITS[n % len(UNITS)], handler=HANDLERS[n % len(HANDLERS)], time=at))
    return out


def sign_batches(bus: Bus, batches: int, size: int, tag: str) -> list[Item]:
    """`batches` signed DOSSIER_STATUS messages of `size` events each, from the portal to the national portal."""
    signer = bus.keystore().signer(PORTAL)
    pool = events(size * batches, tag)
    items = []
    for n in range(batches):
        batch = DossierStatusBatch(batch_id=f"{PORTAL},{tag}-{n}", events=tuple(pool[n * size:(n + 1) * size]))
        header = MessageHeader(kind=MessageKind.DOSSIER_STATUS, sender=PORTAL, recipients=(NATIONAL,),
                               root_id=batch.batch_id, created_at=utc_now())
        value = bus.envelopes.seal(Message(header=header, payload=batch), signer)
        items.append(Item(header.message_id, header.root_id.encode(), value, tuple(cloud_event_headers(header))))
    return items


def decode_us_per_event(bus: Bus, items: list[Item], size: int) -> float:
    """In this process, median µs per event to read the envelope and decode the content (Avro and pydantic),
    without the signature check: the part of the router's work that grows with the batch."""
    times = []
    for item in items[:50]:
        started = time.perf_counter()
        bus.envelopes.decode_content(bus.envelopes.read(item.value))
        times.append((time.perf_counter() - started) / size * 1e6)
    return round(statistics.median(times), 2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dossiers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,100,500", help="batch sizes, events per signed message")
    parser.add_argument("--events", type=int, default=50_000, help="measured events per run (batch size > 1)")
    parser.add_argument("--single-events", type=int, default=3_000, help="measured events per run of batch size 1")
    parser.add_argument("--reps", type=int, default=3, help="runs per batch size (the median is reported)")
    parser.add_argument("--profile", action="store_true", help="also run the largest batch size once under py-spy "
                        "(bench/results/profile-router-dossiers.txt)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "dossiers.json")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each: does it work?")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.single_events, args.reps = 5_000, 500, 1
    return args


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    started = time.monotonic()

    def say(text: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f} s[/dim]  {text}", highlight=False)

    sizes = [int(v) for v in args.sizes.split(",") if v]
    run_id = dt.datetime.now().strftime("%H%M%S") + uuid.uuid4().hex[:4]
    results: dict[str, Any] = {"generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                               "machine": machine.describe()}
    results["machine"]["code"] = machine.code_state()
    folder = REPO / "var" / "bench-dossiers"
    home_dir, log_dir = folder / "home", folder / "logs"
    broker = bench_broker(folder / "broker")
    say(f"starting a Kafka broker of our own under {broker.folder.relative_to(REPO)}")
    broker.up()
    runs: dict[int, list[RouterRun]] = {size: [] for size in sizes}
    decode: dict[int, float] = {}
    router_batch_size = 0
    try:
        broker_pid = broker.status().pid
        shutil.rmtree(home_dir, ignore_errors=True)
        home = BenchHome(home_dir, broker.bootstrap, run_id)
        setup = Bus(Settings(home=home_dir, bootstrap=broker.bootstrap, topic_prefix=f"bench-{run_id}-setup"))
        add_agency(setup, NATIONAL, "Văn phòng Chính phủ", AgencyKind.GOVERNMENT)
        add_agency(setup, PORTAL, "Ủy ban nhân dân thành phố Hà Nội", AgencyKind.PROVINCE)
        pair: tuple[str, ...] | None = (PORTAL, NATIONAL)
        phases = {f"s{size}r{rep}": pair for size in sizes for rep in range(1, args.reps + 1)}
        home.prepare(phases | ({"profile": pair} if args.profile else {}))
        say(f"broker on {broker.bootstrap}; topics of {len(sizes) * args.reps} runs created")
        corpora: dict[int, tuple[list[Item], list[Item]]] = {}
        signing = home.bus(f"s{sizes[0]}r1")
        router_batch_size = signing.settings.router_batch_size
        for size in sizes:
            total = args.single_events if size == 1 else args.events
            batches = max(total // size, 1)
            t0 = time.perf_counter()
            signed = sign_batches(signing, WARMUP_BATCHES + batches, size, f"{run_id}s{size}")
            each = (time.perf_counter() - t0) / (len(signed) * size) * 1e6
            corpora[size] = signed[:WARMUP_BATCHES], signed[WARMUP_BATCHES:]
            decode[size] = decode_us_per_event(signing, signed, size)
            say(f"signed {batches:,} batches of {size} events ({len(signed[-1].value):,} bytes each, {each:.1f} µs "
                f"per event at the portal); decoding takes {decode[size]} µs per event")
        for rep in range(1, args.reps + 1):
            for size in sizes:  # interleaved, so that whatever else the machine does weighs on every size alike
                warm, items = corpora[size]
                load = os.getloadavg()[0]
                routed = run_router(home, f"s{size}r{rep}", warm, items, [NATIONAL], broker_pid=broker_pid,
                                    log_dir=log_dir)
                if not routed.complete:
                    raise RuntimeError(f"batch size {size}: {routed.deliveries} deliveries for {routed.docs} "
                                       f"batches, {routed.duplicates} duplicates")
                runs[size].append(routed)
                say(f"batch size {size}, run {rep}/{args.reps}: {routed.docs_per_s * size:,.0f} events/s "
                    f"({routed.docs_per_s:,.0f} batches/s, {routed.seconds} s; cores {routed.cpu_cores}; "
                    f"load {load:.2f})")
        if args.profile:
            results["profile"] = _profile(home, corpora[max(sizes)], broker_pid, log_dir, args.out.parent, say)
    finally:
        broker.down()
        say("broker stopped")
    results["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    results["settings"] = {"sizes": sizes, "events_per_run": args.events, "single_events_per_run": args.single_events,
                           "reps": args.reps, "warmup_batches": WARMUP_BATCHES, "sender": PORTAL,
                           "recipient": NATIONAL, "router_batch_size": router_batch_size,
                           "signature": "ECDSA P-256 / SHA-256"}
    results["events_per_s"] = {str(size): round(statistics.median(r.docs_per_s * size for r in v), 1)
                               for size, v in runs.items()}
    results["batches_per_s"] = {str(size): round(statistics.median(r.docs_per_s for r in v), 1)
                                for size, v in runs.items()}
    # What the router does with a core of its own: on a shared machine it gets a share, and events/s follow it.
    results["events_per_router_cpu_s"] = {
        str(size): round(statistics.median(r.docs_per_s * size / r.cpu_cores["router"] for r in v
                                           if r.cpu_cores.get("router")), 1) if any(
            r.cpu_cores.get("router") for r in v) else None for size, v in runs.items()}
    results["decode_us_per_event"] = {str(k): v for k, v in decode.items()}
    results["target_events_per_s"] = TARGET
    results["target_met"] = {str(size): value >= TARGET for size, value in
                             ((s, results["events_per_s"][str(s)]) for s in sizes)}
    results["runs"] = {str(size): [asdict(r) for r in v] for size, v in runs.items()}
    results["duration_s"] = round(time.monotonic() - started, 1)
    return results


def _profile(home: BenchHome, corpus: tuple[list[Item], list[Item]], broker_pid: int | None, log_dir: Path,
             folder: Path, say: Any) -> str | None:
    if py_spy() is None:
        say("[yellow]--profile needs py-spy: .venv/bin/pip install py-spy[/yellow]")
        return None
    raw = folder / "profile-router-dossiers.collapsed"
    routed = run_router(home, "profile", corpus[0], corpus[1], [NATIONAL], broker_pid=broker_pid, log_dir=log_dir,
                        profile_to=raw)
    text = folder / "profile-router-dossiers.txt"
    text.write_text(summary(raw) + "\n")
    say(f"profiled: {routed.docs_per_s:,.0f} batches/s under py-spy; {text}")
    return str(text)


def print_table(results: dict[str, Any], console: Console) -> None:
    table = Table(title="dossier status events through the router (median of runs)", title_justify="left")
    for column in ("batch size", "events/s", "batches/s", "runs, events/s", "router cores", "events/router-CPU-s",
                   "decode µs/event", "target"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for size, value in results["events_per_s"].items():
        each = ", ".join(f"{r['docs_per_s'] * int(size):,.0f}" for r in results["runs"][size])
        met = "met" if value >= TARGET else "MISSED"
        cores = ", ".join(f"{r['cpu_cores'].get('router', 0):.2f}" for r in results["runs"][size])
        per_cpu = results["events_per_router_cpu_s"][size]
        table.add_row(size, f"{value:,.0f}", f"{results['batches_per_s'][size]:,.1f}", each, cores,
                      f"{per_cpu:,.0f}" if per_cpu else "—", f"{results['decode_us_per_event'][size]}",
                      f">= {TARGET:,}: {met}",
                      style="green" if met == "met" else "red")
    console.print(table)
    m = results["machine"]
    modified = len(m["code"]["modified_files"])
    console.print(f"machine: {m['cores']} cores ({m['cpu_model']}), {m['memory_gb']} GB, {m['os']}; Python "
                  f"{m['python']}, Kafka {m['kafka']} on the same machine; load average {m['load_average_at_start']} "
                  f"at start, {m['load_average_at_end']} at end; commit {m['code']['commit']}"
                  f"{f', {modified} files modified' if modified else ''}",
                  highlight=False)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=None if Console().is_terminal else 140)
    results = run(args, console)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print_table(results, console)
    console.print(f"written: {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
