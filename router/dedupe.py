"""Which message ids the router has delivered, per ingress partition, within the duplicate window."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from router.partitioned import PartitionState


class SeenIds(PartitionState[int]):
    """Delivered message ids (with their creation time, ms) by ingress partition. A partition is loaded before its
    first record is routed, and forgotten when it is revoked; the loading itself is the caller's (it reads the seen
    topic)."""

    def __init__(self, load: Callable[[int], Iterable[tuple[str, int]]], window_ms: int) -> None:
        super().__init__(load)
        self._window_ms = window_ms

    def seen(self, partition: int, message_id: str) -> bool:
        return message_id in self._of(partition)

    def add(self, partition: int, message_id: str, created_ms: int) -> None:
        self._of(partition)[message_id] = created_ms

    def prune(self, now_ms: int) -> int:
        """Forget ids older than the window; returns how many."""
        cutoff = now_ms - self._window_ms
        dropped = 0
        for ids in self._by_partition.values():
            old = [m for m, t in ids.items() if t < cutoff]
            for message_id in old:
                del ids[message_id]
            dropped += len(old)
        return dropped
