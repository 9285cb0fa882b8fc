"""Processes a benchmark starts and must stop: the router (`lienthong router run`), helpers, a profiler."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MiB (VmRSS), or None once it has gone."""
    return _status_field(pid, "VmRSS")


def _status_field(pid: int, name: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def cpu_seconds(pid: int, thread: int | None = None) -> float | None:
    """User + system CPU time the process (or one of its threads) has used so far."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread is not None else f"/proc/{pid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Child:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def router(env: dict[str, str], log: Path, instance: str = "bench-router", patches: tuple[str, ...] = ()) -> Child:
    """The real router: `lienthong router run`, transactional, in its own process; with `patches`, under
    bench.whatif with those prototypes applied."""
    command = ["router", "run", "--instance", instance]
    if patches:
        return Child([sys.executable, "-m", "bench.whatif", "--patch", ",".join(patches), "--", *command], env, log)
    return Child([sys.executable, "-m", "lienthong", *command], env, log)


STALL = "No partition metadata for topic"


def start_live(start: Callable[[int], Child], is_live: Callable[[], bool], *, attempts: int = 3,
               wait_s: float = 30.0) -> tuple[Child, int]:
    """Start a consumer-group process with start(attempt) and wait until is_live(); returns it and how many
    attempts stalled.

    kafka-python sometimes forms a group before it has the subscribed topic's partition metadata, logs
    "No partition metadata for topic …" and assigns nothing; such a process then idles (dpkp/kafka-python#2377).
    When that is what happened, the process is stopped and the next attempt starts under another instance name
    (a new static member: the stalled one is dropped when its session times out).
    """
    for attempt in range(1, attempts + 1):
        child = start(attempt)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if is_live():
                return child, attempt - 1
            if not child.alive():
                raise RuntimeError(f"{child.log.name}: exited with {child.process.returncode}:\n{child.tail()}")
            time.sleep(0.05)
        stalled = STALL in child.tail(200)
        child.stop()
        if not stalled:
            raise TimeoutError(f"{child.log.name}: not consuming after {wait_s:.0f} s; its log ends:\n{child.tail()}")
    raise TimeoutError(f"{attempts} attempts in a row were assigned no partition ({STALL})")


def module(name: str, args: list[str], env: dict[str, str], log: Path) -> Child:
    return Child([sys.executable, "-m", name, *args], env, log)


def py_spy() -> str | None:
    """The py-spy executable next to this Python, or on the PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profiler:
    """py-spy sampling one process into collapsed stacks, one line per stack with its count, threads apart."""

    def __init__(self, pid: int, out: Path, rate: int = 200) -> None:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
        self.out = out
        self.process = subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                                         "--threads", "--idle", "--output", str(out), "--nonblocking"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> Path:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.out
