"""Throughput phases: the raw pipe and the real router, each draining a topic in its own process.

Both are fed and timed the same way. A few warm-up records go first and are waited for, so that start-up (imports,
connections, the group join, the metadata of every output topic) does not count; then the measured records are
published, faster than either drains them. The time runs from the first measured record's timestamp on the output
topics (CreateTime: when the pipe or the router produced it) to the moment the consumer group was seen to have
committed the last input record; the records are counted with read_committed, so that what was written but never
committed does not count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.environment import BenchHome, Item, prefill
from bench.kafka_io import GroupOffsets, read_deliveries
from bench.processes import Child, Profiler, cpu_seconds, module, router, rss_mb, start_live
from lienthong.transport.client import Admin


def _machine_ticks() -> tuple[int, int, int]:
    """(busy ticks, all ticks, cores) of the whole machine so far, from /proc/stat."""
    lines = Path("/proc/stat").read_text().splitlines()
    fields = [int(v) for v in lines[0].split()[1:]]
    idle = fields[3] + fields[4]
    cores = sum(1 for line in lines[1:] if line.startswith("cpu"))
    return sum(fields) - idle, sum(fields), cores


@dataclass
class Sample:
    at_ms: float  # wall clock, as record timestamps
    cpu_s: dict[str, float]
    machine: tuple[int, int, int]
    rss_mb: float | None


@dataclass
class Trace:
    """CPU time of some processes, the machine's busy time and one process's resident size, sampled over time;
    read afterwards for the window in which records were written."""

    pids: dict[str, int]
    rss_of: int
    samples: list[Sample] = field(default_factory=list)

    def sample(self) -> None:
        last = self.samples[-1].cpu_s if self.samples else {}
        cpu = {name: value for name, pid in self.pids.items()
               if (value := cpu_seconds(pid) or last.get(name)) is not None}  # a process that ended keeps its total
        # The main thread apart: the rest of a Python client's CPU is kafka-python's network threads.
        main = cpu_seconds(self.rss_of, self.rss_of) or last.get("process_main_thread")
        if main is not None:
            cpu["process_main_thread"] = main
        self.samples.append(Sample(time.time() * 1000, cpu, _machine_ticks(), rss_mb(self.rss_of)))

    def window(self, first_ms: float | None, last_ms: float | None) -> list[Sample]:
        """The samples from the last one before first_ms to the first one after last_ms."""
        if first_ms is None or last_ms is None or not self.samples:
            return []
        before = [s for s in self.samples if s.at_ms <= first_ms] or self.samples[:1]
        after = [s for s in self.samples if s.at_ms >= last_ms] or self.samples[-1:]
        return [s for s in self.samples if before[-1].at_ms <= s.at_ms <= after[0].at_ms]

    def cores(self, first_ms: float | None, last_ms: float | None) -> dict[str, float]:
        """Average cores used in the window, per process and by the whole machine ("machine")."""
        window = self.window(first_ms, last_ms)
        if len(window) < 2:
            return {}
        a, b = window[0], window[-1]
        wall = max((b.at_ms - a.at_ms) / 1000, 1e-6)
        out = {name: round((b.cpu_s[name] - a.cpu_s[name]) / wall, 2)
               for name in [*self.pids, "process_main_thread"] if name in a.cpu_s and name in b.cpu_s}
        busy = b.machine[0] - a.machine[0]
        out["machine"] = round(busy / max(b.machine[1] - a.machine[1], 1) * b.machine[2], 2)
        return out

    def rss(self, first_ms: float | None, last_ms: float | None) -> float | None:
        """The largest resident size seen while records were being written: the steady state's."""
        values = [s.rss_mb for s in self.window(first_ms, last_ms) if s.rss_mb is not None]
        return round(max(values), 1) if values else None


class Watch:
    """Follows a child that drains a topic as a consumer group: the group's committed offsets, the child's (and the
    broker's) CPU, the child's resident size; optionally py-spy on the child."""

    def __init__(self, child: Child, group: str, *, bootstrap: str, broker_pid: int | None) -> None:
        self.child = child
        self.group = group
        self.progress = GroupOffsets(bootstrap)
        self.trace = Trace({"process": child.pid} | ({"broker": broker_pid} if broker_pid else {}), child.pid)
        self.profiler: Profiler | None = None

    def until(self, total: int, timeout_s: float) -> float:
        """Wait until the group has committed `total` offsets; returns when that was seen (wall clock, ms)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.trace.sample()
            if self.progress.committed(self.group) >= total:
                return time.time() * 1000
            if not self.child.alive():
                raise RuntimeError(f"{self.child.log.name}: exited with {self.child.process.returncode}:\n"
                                   f"{self.child.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.child.log.name}: {total} records not committed within {timeout_s:.0f} s; "
                                   f"its log ends:\n{self.child.tail()}")
            time.sleep(0.05)

    def profile(self, out: Path) -> None:
        self.profiler = Profiler(self.child.pid, out)

    def close(self, wait_exit_s: float = 0.0) -> None:
        """Stop the profiler and the child; one that ends by itself is given `wait_exit_s` to do so."""
        try:
            deadline = time.monotonic() + wait_exit_s
            while self.child.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.trace.sample()
        finally:
            if self.profiler is not None:
                self.profiler.stop()
            self.child.stop()
            self.progress.close()


WARMUP_TIMEOUT_S = 45.0


@dataclass
class Throughput:
    """Records counted and timed on the output topics, from the first measured record's timestamp to the moment
    the consumer group was seen to have committed the last input record."""

    records: int
    duplicates: int
    seconds: float
    per_s: float
    cpu_cores: dict[str, float]  # over that window: the process, the broker, the whole machine ("machine")
    rss_mb: float | None  # the largest resident size sampled in that window


def _measure(watch: Watch, warmup: int, publish: Callable[[], None], total: int, bootstrap: str,
             topics: list[str], measured: set[str], timeout_s: float, profile_to: Path | None,
             wait_exit_s: float = 0.0) -> Throughput:
    try:
        watch.until(warmup, timeout_s=WARMUP_TIMEOUT_S)
        if profile_to is not None:
            watch.profile(profile_to)
        publish()
        done_ms = watch.until(total, timeout_s)
    finally:
        watch.close(wait_exit_s)
    found = read_deliveries(bootstrap, topics, only=measured)
    first = found.first_ms if found.first_ms is not None else done_ms
    seconds = max((done_ms - first) / 1000, 1e-3)
    return Throughput(found.records, found.duplicates, round(seconds, 3), round(found.records / seconds, 1),
                      watch.trace.cores(first, done_ms), watch.trace.rss(first, done_ms))


@dataclass
class RouterRun:
    phase: str
    docs: int
    recipients: int
    deliveries: int
    duplicates: int
    seconds: float
    docs_per_s: float
    deliveries_per_s: float
    rss_mb: float | None  # the largest resident size sampled while it was delivering
    cpu_cores: dict[str, float]  # while it was delivering: the router, the broker, the whole machine
    patches: tuple[str, ...] = ()
    start_stalls: int = 0  # router starts that were assigned no partition (see processes.start_live)

    @property
    def complete(self) -> bool:
        return self.deliveries == self.docs * self.recipients and self.duplicates == 0


def run_router(home: BenchHome, phase: str, warmup: list[Item], items: list[Item], inboxes: list[str], *,
               broker_pid: int | None, log_dir: Path, profile_to: Path | None = None,
               patches: tuple[str, ...] = ()) -> RouterRun:
    """The real router (`lienthong router run`, transactional, as shipped) on a fresh ingress.

    The warm-up documents are routed first, so that the connections, the metadata of every inbox and the seen
    ids are in place; then `items` are published (faster than any router drains them) and timed from their first
    delivery to the moment the router's group has committed the last of them.
    """
    bus = home.bus(phase)
    prefill(home.bootstrap, bus.topics.ingress, warmup)
    group = bus.topics.router_group()
    progress = GroupOffsets(home.bootstrap)
    try:
        child, stalls = start_live(
            lambda n: router(home.env(bus.topics.prefix), log_dir / f"{bus.topics.prefix}.router-{n}.log",
                             instance=f"bench-router-{n}", patches=patches),
            lambda: progress.committed(group) >= len(warmup))
    finally:
        progress.close()
    watch = Watch(child, group, bootstrap=home.bootstrap, broker_pid=broker_pid)
    measured = _measure(watch, len(warmup), lambda: prefill(home.bootstrap, bus.topics.ingress, items),
                        len(warmup) + len(items), home.bootstrap, [bus.topics.inbox(code) for code in inboxes],
                        {item.message_id for item in items}, 60 + len(items) * len(inboxes) / 100, profile_to)
    return RouterRun(phase, len(items), len(inboxes), measured.records, measured.duplicates, measured.seconds,
                     round(len(items) / measured.seconds, 1), measured.per_s, measured.rss_mb,
                     _rename(measured.cpu_cores, "router"), patches, stalls)


@dataclass
class PipeRun:
    transactional: bool
    batch_size: int | None
    fanout: int
    records: int
    duplicates: int
    seconds: float
    msgs_per_s: float
    cpu_cores: dict[str, float]


class RawPipe:
    """kafka-python consuming a topic and producing the same bytes, keys and headers to another (bench.kafka_io),
    in its own process, fed and timed exactly as the router is."""

    def __init__(self, home: BenchHome, partitions: int) -> None:
        self.home = home
        self.prefix = f"bench-{home.run_id}-raw"
        self.partitions = partitions
        self.runs = 0

    def run(self, warmup: list[Item], items: list[Item], *, transactional: bool, batch_size: int | None = None,
            fanout: int = 1, broker_pid: int | None, log_dir: Path, profile_to: Path | None = None) -> PipeRun:
        """Pipe `items` (after `warmup`) to `fanout` topics of one partition each, every record to each."""
        self.runs += 1
        name = f"{self.prefix}.pipe-{self.runs}-{'tx' if transactional else 'plain'}-{batch_size or 'default'}"
        source = f"{name}.source"
        dests = [f"{name}.dest-{n}" for n in range(fanout)]
        admin = Admin(self.home.bootstrap)
        try:
            admin.ensure_topics([source], partitions=self.partitions)  # as ingress
            admin.ensure_topics(dests, partitions=1)  # as inboxes
        finally:
            admin.close()
        prefill(self.home.bootstrap, source, warmup)
        total = len(warmup) + len(items)
        args = ["--bootstrap", self.home.bootstrap, "--source", source, *(a for d in dests for a in ("--dest", d)),
                "--count", str(total),
                "--group", name, *(["--transactional"] if transactional else []),
                *(["--batch-size", str(batch_size)] if batch_size else [])]
        child = module("bench.kafka_io", args, self.home.env(self.prefix), log_dir / f"{name}.log")
        watch = Watch(child, name, bootstrap=self.home.bootstrap, broker_pid=broker_pid)
        measured = _measure(watch, len(warmup), lambda: prefill(self.home.bootstrap, source, items), total,
                            self.home.bootstrap, dests, {item.message_id for item in items},
                            60 + len(items) * fanout / 100, profile_to, wait_exit_s=30)
        if measured.records != len(items) * fanout:
            raise RuntimeError(f"raw pipe wrote {measured.records} of {len(items) * fanout} records:\n{child.tail()}")
        return PipeRun(transactional, batch_size, fanout, measured.records, measured.duplicates, measured.seconds,
                       measured.per_s, _rename(measured.cpu_cores, "pipe"))


def _rename(cores: dict[str, float], name: str) -> dict[str, float]:
    return {k.replace("process", name): v for k, v in cores.items()}
