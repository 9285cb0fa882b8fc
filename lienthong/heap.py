"""Keeping the cyclic garbage collector's pauses short in a long-running service.

CPython's collector checks every tracked object on each full (oldest-generation) collection. A router holds the
objects of its imports (about 130,000) and, growing with uptime, its stories; a full collection over them paused
the router for 64–121 ms every few seconds at 500 documents/s, and 64–132 ms every second or two routing at full
speed, during which no document moved (bench/README.md).
Objects that survive a collection are frozen (`gc.freeze`): moved to a permanent generation that later collections
skip. Frozen objects are still freed by reference counting when the last reference goes, as a pruned duplicate id
or a replaced story is; only a reference cycle among frozen objects would stay until the process ends, and the
collection just before each freeze clears the cycles that are garbage by then. A caller freezes when none of its
short-lived objects that form cycles (kafka-python's per-record futures) is alive: the router does it between
transactions. Objects another thread has in flight at that moment (a prefetched fetch, a heartbeat) are frozen too;
a service that drops what it froze (a closed client on reconnect) calls thaw() first.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Settled:
    seconds: float  # how long the collection and the freeze paused the process
    collected: int  # unreachable objects found
    frozen: int  # objects in the permanent generation afterwards


def settle() -> Settled:
    """Collect the garbage among the objects not yet frozen, then freeze the survivors: later automatic collections
    look only at objects made since. A service calls this once started and then every few seconds, at a moment when
    nothing it sent is in flight."""
    started = time.perf_counter()
    collected = gc.collect()
    gc.freeze()
    return Settled(time.perf_counter() - started, collected, gc.get_freeze_count())


def thaw() -> None:
    """Put every frozen object back under the collector. For a service about to drop objects it froze while they were
    alive, such as a closed Kafka client's connections and metadata, which form reference cycles: the next settle()
    then collects them instead of keeping them frozen for good."""
    gc.unfreeze()
