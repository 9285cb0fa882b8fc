"""The audit hash chain: how a row is hashed onto the one before it, and how a chain is checked.

A row's hash is SHA-256 over a domain tag, the previous row's hash and the SHA-256 of the row's canonical bytes:
the JSON array of its fields in a fixed order (strings, integers and nulls only, so SQLite and PostgreSQL give the
same bytes). Hashing the row's digest rather than its bytes lets an evidence bundle prove that one document's rows
lead to a signed checkpoint while showing only the digests of the other agencies' rows in between.
The row's position (`seq`) is not hashed: order is carried by the links, which is what lets the checker tell a
reordering from a change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any, NamedTuple

GENESIS = bytes(32)
_TAG = b"lienthong-audit-row-v1"

# The hashed fields, in hashing order. Changing this list is a new chain version.
FIELDS = ("event_id", "event", "at_ms", "message_id", "root_id", "kind", "sender", "recipient", "status",
          "reason_code", "reason", "source_topic", "source_partition", "source_offset", "content_sha256")


def _refuse(value: Any) -> Any:
    raise TypeError(f"not a chain value: {value!r}")


# One encoder for every row, built once: json.dumps with options builds a new one per call, which is most of its
# cost. The C encoder gives exactly what json.dumps(values, ensure_ascii=False, separators=(",", ":")) gives.
if c_make_encoder is not None:
    _iterencode = c_make_encoder(None, _refuse, encode_basestring, None, ":", ",", False, False, True)

    def _encode(values: Sequence[Any]) -> str:
        return "".join(_iterencode(values, 0))
else:  # pragma: no cover - CPython always has the C encoder
    _encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # type: ignore[assignment]

_sha256 = hashlib.sha256


def row_bytes(values: Sequence[Any]) -> bytes:
    """Canonical bytes of a row's hashed fields, given in FIELDS order (a list or a tuple: both are arrays)."""
    return _encode(values).encode()


def row_digest(values: Sequence[Any]) -> bytes:
    return _sha256(_encode(values).encode()).digest()


def link_digest(prev_hash: bytes, digest: bytes) -> bytes:
    return _sha256(_TAG + prev_hash + digest).digest()


def link(prev_hash: bytes, values: Sequence[Any]) -> bytes:
    return link_digest(prev_hash, row_digest(values))


class ChainRow(NamedTuple):
    seq: int
    prev_hash: bytes
    row_hash: bytes
    values: tuple[Any, ...]  # FIELDS order


class Problem(StrEnum):
    CHANGED = "changed"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    CHECKPOINT = "checkpoint"


@dataclass(frozen=True)
class Finding:
    problem: Problem
    seq: int
    detail: str

    def __str__(self) -> str:
        return f"row {self.seq}: {self.problem.value}: {self.detail}"


@dataclass
class Report:
    rows: int = 0
    checkpoints: int = 0
    last_seq: int = 0
    last_checkpoint_seq: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def uncovered(self) -> int:
        """Rows after the last signed checkpoint: chained, but not yet vouched for by the operator."""
        return self.last_seq - self.last_checkpoint_seq


CheckpointCheck = Callable[[int, bytes], str | None]  # (seq, row_hash) -> None if a valid checkpoint vouches for it


def verify_chain(rows: Iterable[Sequence[Any]], checkpoint_seqs: set[int], check_checkpoint: CheckpointCheck,
                 start_seq: int = 1, start_hash: bytes = GENESIS, earlier_hash: bytes = b"",
                 last_seq: int | None = None) -> Report:
    """Check rows, flat tuples (seq, prev_hash, row_hash, *FIELDS values) in seq order; stop at the first broken
    row and say what is wrong with it.

    The loop is the hot path of `lienthong audit verify`: per row one JSON encoding and two SHA-256, nothing else.
    Only a row that does not hold goes to the slower classification, which looks one row ahead and two back.
    """
    report = Report(last_seq=start_seq - 1, last_checkpoint_seq=start_seq - 1)
    expected_seq, expected_prev, earlier = start_seq, start_hash, earlier_hash
    encode, sha256, tag = _encode, _sha256, _TAG
    # One set lookup per row for both reasons to look closer: a checkpoint to check, or the end of a range.
    stops = checkpoint_seqs if last_seq is None else checkpoint_seqs | {last_seq}
    iterator = iter(rows)
    for row in iterator:
        # The drivers give bytes for the hashes (psycopg and sqlite3 alike); a buffer would compare and concatenate
        # the same, and the classification below copies them to bytes itself.
        seq, prev_hash, row_hash = row[0], row[1], row[2]
        if (seq != expected_seq or prev_hash != expected_prev
                or sha256(tag + prev_hash + sha256(encode(row[3:]).encode()).digest()).digest() != row_hash):
            after = next(iterator, None)
            report.rows = expected_seq - start_seq + 1  # the rows that held, and this one
            report.findings.append(_classify(row, after, expected_seq, expected_prev, earlier))
            return report
        earlier, expected_prev, expected_seq = expected_prev, row_hash, seq + 1
        if seq in stops:
            if seq in checkpoint_seqs:
                error = check_checkpoint(seq, bytes(row_hash))
                if error:
                    report.rows = seq - start_seq + 1
                    report.findings.append(Finding(Problem.CHECKPOINT, seq, error))
                    return report
                report.checkpoints += 1
                report.last_checkpoint_seq = seq
            if seq == last_seq:  # a range ends here; a following row was only there to look ahead
                break
    report.rows = expected_seq - start_seq
    report.last_seq = expected_seq - 1
    beyond = sorted(s for s in checkpoint_seqs if s > report.last_seq)
    if beyond and last_seq is None:
        report.findings.append(Finding(Problem.DELETED, report.last_seq + 1,
                                       f"a signed checkpoint vouches for row {beyond[0]}, which is not there"))
    return report


def _classify(row: Sequence[Any], after: Sequence[Any] | None, expected_seq: int, expected_prev: bytes,
              earlier: bytes) -> Finding:
    """What is wrong with a row that does not hold, judged from its neighbours."""
    seq, prev_hash, row_hash = row[0], bytes(row[1]), bytes(row[2])
    if seq != expected_seq:
        missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq} to {seq - 1}"
        return Finding(Problem.DELETED, expected_seq, f"row {missing} is missing")
    if link(prev_hash, row[3:]) != row_hash:
        return Finding(Problem.CHANGED, seq, "its content does not match its hash")
    if earlier and prev_hash == earlier:
        return Finding(Problem.INSERTED, seq - 1, f"row {seq} links past it to row {seq - 2}")
    if after is not None and bytes(after[2]) == prev_hash:
        return Finding(Problem.REORDERED, seq, f"it follows row {after[0]}, which now comes after it")
    if after is not None and bytes(after[1]) == expected_prev:
        return Finding(Problem.INSERTED, seq, f"row {after[0]} links to row {seq - 1}, past this one")
    return Finding(Problem.DELETED, seq, "the row it links to is no longer in the chain")
