"""State a router keeps per ingress partition, loaded from its topic on first use and forgotten when the partition
is revoked or a transaction aborts (it reloads from the topic, which holds only committed state)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

V = TypeVar("V")


class PartitionState(Generic[V]):
    """Values by key, by ingress partition; `load` gives a partition's (key, value) pairs from its topic."""

    def __init__(self, load: Callable[[int], Iterable[tuple[str, V]]]) -> None:
        self._load = load
        self._by_partition: dict[int, dict[str, V]] = {}

    def _of(self, partition: int) -> dict[str, V]:
        if partition not in self._by_partition:
            self._by_partition[partition] = dict(self._load(partition))
        return self._by_partition[partition]

    def forget(self, partitions: Iterable[int] | None = None) -> None:
        """Drop loaded partitions (all of them after an aborted transaction); they reload when next used."""
        if partitions is None:
            self._by_partition.clear()
        for partition in partitions or ():
            self._by_partition.pop(partition, None)

    def __len__(self) -> int:
        return sum(len(values) for values in self._by_partition.values())
