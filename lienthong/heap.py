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
import logging
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

# How often a service settles its heap. Between two settles the collector's automatic full collections walk
# everything the process kept since the last one; routing 1,500 documents/s, that grew to a 179 ms pause a minute
# after a freeze, and stays at 20-44 ms with 10 s (bench/README.md).
SETTLE_EVERY_S = 10.0


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


class Keeper:
    """When a long-running service settles its heap: once started, then at the quiet moments it reports (`due`) when
    `every_s` has passed; and a thaw before it drops what it froze. A disabled keeper does nothing, for a service
    embedded in another program, since freezing changes the collector for the whole process."""

    def __init__(self, enabled: bool, every_s: float = SETTLE_EVERY_S) -> None:
        self.enabled = enabled
        self.every_s = every_s
        self._settled_at = time.monotonic()

    def settle(self) -> None:
        if not self.enabled:
            return
        settled = settle()
        self._settled_at = time.monotonic()
        log.debug("heap settled", extra={"ms": round(settled.seconds * 1000, 1), "collected": settled.collected,
                                         "frozen": settled.frozen})

    def due(self) -> None:
        """A quiet moment (nothing in flight): settle if `every_s` has passed since the last time."""
        if self.enabled and time.monotonic() - self._settled_at > self.every_s:
            self.settle()

    def thaw(self) -> None:
        if self.enabled:
            thaw()
