"""verify_chain on rows in memory: what it counts and where it stops (the tampering cases themselves are tested on
SQLite and PostgreSQL in tests/integration/test_audit_chain.py)."""

from __future__ import annotations

from typing import Any

from lienthong.audit.chain import FIELDS, GENESIS, Problem, link, verify_chain


def chain(n: int) -> list[tuple[Any, ...]]:
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        values = tuple(f"v{seq}" if i % 2 else seq for i in range(len(FIELDS)))
        row_hash = link(prev, values)
        rows.append((seq, prev, row_hash, *values))
        prev = row_hash
    return rows


def no_checkpoint_problem(seq: int, row_hash: bytes) -> str | None:
    return None


def test_a_whole_chain_counts_every_row_and_every_checkpoint() -> None:
    report = verify_chain(chain(10), {3, 9}, no_checkpoint_problem)
    assert report.ok and report.rows == 10 and report.last_seq == 10
    assert report.checkpoints == 2 and report.last_checkpoint_seq == 9 and report.uncovered == 1


def test_a_range_stops_at_its_last_row_and_leaves_the_look_ahead_row_to_the_next() -> None:
    rows = chain(10)
    report = verify_chain(rows[3:7], {5, 7}, no_checkpoint_problem, start_seq=4, start_hash=rows[2][2],
                          earlier_hash=rows[1][2], last_seq=6)
    assert report.ok and report.rows == 3 and report.last_seq == 6 and report.checkpoints == 1


def test_a_changed_row_is_named_and_counted() -> None:
    rows = chain(10)
    rows[6] = (*rows[6][:4], "changed", *rows[6][5:])
    report = verify_chain(rows, set(), no_checkpoint_problem)
    assert [(f.problem, f.seq) for f in report.findings] == [(Problem.CHANGED, 7)] and report.rows == 7


def test_a_deleted_row_is_named_where_it_is_missing() -> None:
    rows = chain(10)
    del rows[4]
    report = verify_chain(rows, set(), no_checkpoint_problem)
    assert [(f.problem, f.seq) for f in report.findings] == [(Problem.DELETED, 5)] and report.rows == 5


def test_a_checkpoint_that_does_not_hold_stops_the_check_at_its_row() -> None:
    def refuse_4(seq: int, row_hash: bytes) -> str | None:
        assert isinstance(row_hash, bytes)
        return "not signed by the operator" if seq == 4 else None

    report = verify_chain(chain(10), {2, 4, 8}, refuse_4)
    assert [(f.problem, f.seq) for f in report.findings] == [(Problem.CHECKPOINT, 4)]
    assert report.rows == 4 and report.checkpoints == 1
