"""End-to-end latency: gateway send → receiver handler, at a fixed offered load, through the real router.

The sender runs in the benchmark's own process: it publishes signed documents to ingress in the gateway's record
format (key = root id, CloudEvents headers) at a steady rate and notes the wall-clock time of each send. The
receiver is `consumers.receiver.Receiver` in a process of its own (`python -m bench.latency`), reading its inbox
read_committed; its handler notes the wall-clock arrival of each message, then verifies the sender's signature
as every receiver does. Latency is arrival − send, on the same machine's clock.

The handler stops there: it does not store the document or send status 01, which is the agency's own work and
would make one receiver, not the bus, the bottleneck (see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.environment import BenchHome, Item
from bench.kafka_io import GroupOffsets
from bench.processes import Child, module, router, start_live
from lienthong import heap
from lienthong.transport.client import Publisher

WARMUP = 50


@dataclass
class LatencyRun:
    offered_per_s: int
    achieved_per_s: float
    sent: int
    received: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None
    # The first leg: send → the router writing the delivery (the inbox record's timestamp, ms resolution).
    to_router_p50: float | None
    to_router_p99: float | None
    start_stalls: int = 0  # router or receiver starts assigned no partition (see processes.start_live)

    def as_json(self) -> dict[str, float | int | None]:
        return dict(self.__dict__)


def percentile(sorted_values: list[float], fraction: float, total: int) -> float | None:
    """The nearest-rank percentile over `total` samples, of which those missing count as infinitely late."""
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    return round(sorted_values[rank - 1], 1) if rank <= len(sorted_values) else None


def run_latency(home: BenchHome, phase: str, items: list[Item], recipient: str, rate: int, seconds: float, *,
                log_dir: Path, grace_s: float = 15.0) -> LatencyRun:
    """Start a router and a receiver, warm the path up, then send rate × seconds documents at a steady pace."""
    count = int(rate * seconds)
    if len(items) < WARMUP + count:
        raise ValueError(f"{phase}: {WARMUP + count} signed documents needed, {len(items)} given")
    bus = home.bus(phase)
    prefix = bus.topics.prefix
    out = log_dir / f"{prefix}.arrivals.json"
    ready = log_dir / f"{prefix}.ready"
    publisher = Publisher(home.bootstrap, client_id="bench-gateway")
    children: list[Child] = []
    sent_ns: dict[str, int] = {}
    try:
        # The warm-up documents go first: the router is live once its group has committed them, the receiver once
        # it has had them all.
        for item in items[:WARMUP]:
            publisher.send(item.outgoing(bus.topics.ingress))
        publisher.flush(30)
        progress = GroupOffsets(home.bootstrap)
        try:
            routed, stalls = start_live(
                lambda n: router(home.env(prefix), log_dir / f"{prefix}.router-{n}.log", instance=f"bench-router-{n}"),
                lambda: progress.committed(bus.topics.router_group()) >= WARMUP)
        finally:
            progress.close()
        children.append(routed)

        def receiver_process(n: int) -> Child:
            ready.unlink(missing_ok=True)
            return module("bench.latency", ["--agency", recipient, "--expect", str(WARMUP + count),
                                            "--ready-after", str(WARMUP), "--ready-file", str(ready),
                                            "--out", str(out), "--timeout", str(90 + seconds + grace_s)],
                          home.env(prefix), log_dir / f"{prefix}.receiver-{n}.log")

        receiver, receiver_stalls = start_live(receiver_process, ready.exists)
        children.append(receiver)
        stalls += receiver_stalls
        paced = items[WARMUP:WARMUP + count]
        # This process stands in for a gateway but holds every corpus of the run (20,000 signed documents and
        # more); a full collection over them paused the paced sender for 74 ms (measured), counted as the bus's
        # latency. Settled (collected and frozen) for the paced sends, as the router settles its own.
        heap.settle()
        started = time.perf_counter()
        for n, item in enumerate(paced):
            pause = started + n / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            sent_ns[item.message_id] = time.time_ns()
            publisher.send(item.outgoing(bus.topics.ingress))
        elapsed = time.perf_counter() - started
        publisher.flush(30)
        deadline = time.monotonic() + grace_s
        while receiver.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        heap.thaw()
        publisher.close()
        for child in reversed(children):
            child.stop()
    arrivals: dict[str, list[int]] = json.loads(out.read_text())["arrivals"] if out.exists() else {}
    found = [(sent_ns[m], *arrivals[m]) for m in sent_ns if m in arrivals]
    latencies = sorted((arrived - sent) / 1e6 for sent, arrived, _ in found)
    to_router = sorted(routed - sent / 1e6 for sent, _, routed in found)
    total = len(sent_ns)
    return LatencyRun(rate, round(total / elapsed, 1), total, len(latencies), percentile(latencies, 0.50, total),
                      percentile(latencies, 0.95, total), percentile(latencies, 0.99, total),
                      round(latencies[-1], 1) if len(latencies) == total and latencies else None,
                      percentile(to_router, 0.50, len(to_router)), percentile(to_router, 0.99, len(to_router)),
                      stalls)


def _wait_for(path: Path, timeout_s: float, children: tuple[Child, ...]) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        for child in children:
            if not child.alive():
                raise RuntimeError(f"{child.log.name}: exited with {child.process.returncode}:\n{child.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the warm-up documents did not reach the receiver within {timeout_s:.0f} s")
        time.sleep(0.05)


def receive(agency: str, expect: int, ready_after: int, ready_file: Path, out: Path, timeout_s: float) -> int:
    """The receiver process: note each message's arrival at the handler, verify it, stop after `expect`."""
    from consumers.receiver import Received, Receiver
    from lienthong import logs
    from lienthong.envelope import ensure_bytes
    from lienthong.errors import LienthongError
    from lienthong.settings import Settings
    from lienthong.signals import stop_on_signals
    from lienthong.transport.client import Record
    from lienthong.wiring import Bus

    logs.configure(logging.WARNING)  # kafka-python's warnings (a group formed without metadata) go to our log
    bus = Bus(Settings())
    receiver = Receiver.connect(bus, agency)
    arrivals: dict[str, tuple[int, int]] = {}  # message id → (arrival ns, inbox record's timestamp ms)
    failed = 0

    def handle(record: Record) -> Received:
        nonlocal failed
        arrived = time.time_ns()
        try:
            _, message = bus.envelopes.open(ensure_bytes(record.value), receiver.follower.view, receiver.clock())
        except LienthongError as exc:
            failed += 1
            return Received("quarantined", None, exc.message)
        arrivals.setdefault(message.header.message_id, (arrived, record.timestamp_ms))
        return Received("document", message)

    receiver.handle = handle  # type: ignore[method-assign]
    stop = threading.Event()
    deadline = time.monotonic() + timeout_s
    keeper = heap.Keeper(True)  # as docs/integrators.md advises a receiver that runs for long
    keeper.settle()
    try:
        with stop_on_signals(stop):
            while len(arrivals) < expect and time.monotonic() < deadline and not stop.is_set():
                receiver.poll(100)
                keeper.due()
                if len(arrivals) >= ready_after and not ready_file.exists():
                    ready_file.write_text(str(len(arrivals)))
    finally:
        out.write_text(json.dumps({"arrivals": arrivals, "failed": failed}))
        receiver.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A receiver that times each message's arrival at its handler.")
    parser.add_argument("--agency", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--ready-after", type=int, default=WARMUP)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    return receive(args.agency, args.expect, args.ready_after, args.ready_file, args.out, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
