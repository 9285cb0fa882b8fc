"""The router's seen topic: the ids one transaction delivered from one ingress partition in one SeenMessages record
now, one SeenMessage a record before; a router reloading a partition reads both."""

from __future__ import annotations

import pytest

from lienthong.errors import DecodingError
from lienthong.records import SEEN_MESSAGE, SEEN_MESSAGES, SEEN_PER_RECORD, decode_seen, seen_chunks, seen_size
from tests.support import envelopes

CODEC = envelopes().codec


def seen(n: int, root: str = "000.00.00.G22,7816/2026/VPCP-TTĐT") -> list[dict[str, object]]:
    return [{"message_id": f"m-{i:05d}", "root_id": root, "created_at": 1_795_000_000_000 + i, "ingress_offset": i}
            for i in range(n)]


def test_a_batch_s_ids_come_back_in_order_from_one_record_and_old_records_are_still_read() -> None:
    entries = seen(500)
    [chunk] = seen_chunks(entries, 1_000_000)
    assert decode_seen(CODEC, CODEC.encode(SEEN_MESSAGES, {"messages": chunk})) == entries
    assert decode_seen(CODEC, CODEC.encode(SEEN_MESSAGE, entries[0])) == [entries[0]]
    with pytest.raises(DecodingError):
        decode_seen(CODEC, b"not a frame")


def test_ids_are_grouped_within_the_record_limits() -> None:
    entries = seen(120, root="Ư" * 60)  # root ids in Vietnamese: several bytes a character
    chunks = seen_chunks(entries, max_bytes=5_000)
    assert [e for c in chunks for e in c] == entries and len(chunks) > 1
    for chunk in chunks:
        assert len(CODEC.encode(SEEN_MESSAGES, {"messages": chunk})) <= sum(seen_size(e) for e in chunk) <= 5_000
    assert [len(c) for c in seen_chunks(seen(SEEN_PER_RECORD + 1), 10**9)] == [SEEN_PER_RECORD, 1]
