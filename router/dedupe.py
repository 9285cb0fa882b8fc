"""Which message ids the router has delivered, per ingress partition, within the duplicate window."""

from __future__ import annotations

from collections.abc import Callable, Iterable


class SeenIds:
    """Delivered message ids by ingress partition. A partition is loaded before its first record is routed,
    and forgotten when it is revoked; the loading itself is the caller's (it reads the seen topic)."""

    def __init__(self, load: Callable[[int], Iterable[tuple[str, int]]], window_ms: int) -> None:
        self._load = load
        self._window_ms = window_ms
        self._by_partition: dict[int, dict[str, int]] = {}

    def _ids(self, partition: int) -> dict[str, int]:
        if partition not in self._by_partition:
            self._by_partition[partition] = dict(self._load(partition))
        return self._by_partition[partition]

    def seen(self, partition: int, message_id: str) -> bool:
        return message_id in self._ids(partition)

    def add(self, partition: int, message_id: str, created_ms: int) -> None:
        self._ids(partition)[message_id] = created_ms

    def forget(self, partitions: Iterable[int] | None = None) -> None:
        """Drop loaded partitions (all of them after an aborted transaction); they reload when next used."""
        if partitions is None:
            self._by_partition.clear()
        for partition in partitions or ():
            self._by_partition.pop(partition, None)

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

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._by_partition.values())
