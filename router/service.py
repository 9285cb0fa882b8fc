"""The router loop: poll ingress, decide, and commit deliveries, audit events, DLQ records, the ids it has
delivered and the consumed offsets in one Kafka transaction."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from lienthong import auditwire, heap
from lienthong.agencies import check_agency_code
from lienthong.directory.entries import AgencyEntry
from lienthong.directory.sync import DirectoryFollower
from lienthong.errors import BrokerAuthorizationError, BrokerError, FencedError, LienthongError, Reason
from lienthong.messages import utc_now
from lienthong.metrics import RouterMetrics
from lienthong.records import ROUTER_STORY, SEEN_MESSAGES, decode_seen, seen_chunks, to_millis
from lienthong.transport.client import (
    Admin,
    Checkpoint,
    Outgoing,
    Publisher,
    Record,
    Subscriber,
    key_partition,
    written_end,
)
from lienthong.wiring import Bus
from router.decisions import (
    Accepted,
    Decision,
    Placement,
    Position,
    Rejected,
    as_duplicate,
    audit_records,
    decide,
)
from router.dedupe import SeenIds
from router.stories import BALLOT, Story, StoryBook, advance, has_story, story_model, story_record

log = logging.getLogger(__name__)

CLOSE_COMMIT_WAIT_S = 10.0  # how long close() waits for a commit in flight before it closes the producer anyway


@dataclass
class Pending:
    """What the records of a batch share, written once for the batch (`Router.batched`): per ingress partition, the
    ids delivered and the audit events."""

    seen: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    audit: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Committing:
    """A transaction whose commit runs in the background."""

    future: Future[None]
    now: dt.datetime  # the time its decisions were made
    written: dict[tuple[str, int], Any]  # the futures of its last records on the seen and stories partitions


@dataclass
class _Connections:
    admin: Admin
    follower: DirectoryFollower
    consumer: Subscriber
    producer: Publisher
    seen: SeenIds
    stories: StoryBook


def dlq_headers(record: Record, decision: Rejected) -> list[tuple[str, bytes]]:
    # Keep what the sender set, so the record can be replayed as it came; our own headers cannot be forged.
    kept = [(k, v) for k, v in record.headers.items() if not k.startswith("lienthong_")]
    return [
        *kept,
        ("lienthong_reason_code", decision.reason.value.encode()),
        ("lienthong_reason", decision.detail.encode()),
        ("lienthong_source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
    ]


class Router:
    """One router instance; several in one group share the ingress partitions.

    The instance name is its static group membership and its transactional id: a restarted instance takes its
    partitions back at once and fences whatever its previous incarnation left open.
    """

    def __init__(self, bus: Bus, instance: str = "router-1", metrics: RouterMetrics | None = None,
                 clock: Callable[[], dt.datetime] = utc_now, *, settle_heap: bool = False) -> None:
        """`settle_heap` is for a process that runs this router alone (`lienthong router run`): the router then
        freezes what survives garbage collection once started and every heap.SETTLE_EVERY_S after, between
        transactions (lienthong.heap), which changes the collector for the whole process. Between transactions no
        record is in flight: kafka-python's per-record futures form reference cycles, and one frozen while in flight
        would never be freed."""
        self.bus = bus
        self.instance = instance
        self.metrics = metrics or RouterMetrics()
        self.clock = clock
        settings = bus.settings
        self._skew = dt.timedelta(seconds=settings.clock_skew_s)
        self._window = dt.timedelta(seconds=settings.duplicate_window_s)
        self._conn: _Connections | None = None
        # With as many audit partitions as ingress ones (the default), a record's audit events go to the ingress
        # record's partition number, which is where its root id hashes: no murmur2 in Python per audit record.
        self._audit_follows_ingress = False
        self._pruned_at = time.monotonic()
        self._heap = heap.Keeper(settle_heap)
        self._audit_frames = auditwire.framer(bus.envelopes.codec)
        self._committing: _Committing | None = None  # the transaction whose commit runs in the background
        # Per (seen or stories topic, partition): the offset after the last record a committed transaction of this
        # router wrote there, which a reload of that partition must read up to.
        self._state_written: dict[tuple[str, int], int] = {}
        self._state_topics = frozenset((bus.topics.router_seen, bus.topics.router_stories))
        self.ready = threading.Event()

    @property
    def conn(self) -> _Connections:
        if self._conn is None:
            raise BrokerError("the router is not connected: call start() first")
        return self._conn

    def _transactional_id(self) -> str:
        return f"{self.bus.topics.prefix}.{self.instance}"

    def _publisher(self) -> Publisher:
        return self.bus.publisher(self._transactional_id(), client_id=self.instance,
                                  transaction_timeout_ms=self.bus.settings.router_transaction_timeout_ms,
                                  batch_size=self.bus.settings.router_producer_batch_bytes)

    def _read_partition(self, topic: str, partition: int, decode: Callable[[bytes], list[dict[str, Any]]],
                        since_ms: int | None = None) -> Iterator[dict[str, Any]]:
        """The decoded records of one partition of a router topic, to its end, and at least to the end of what this
        router's committed transactions wrote there (the broker writes their markers after it confirms a commit, and
        a partition revoked and given back while a commit was in flight is loaded right after it); an unreadable one
        is logged and skipped."""
        reader = self.bus.topic_reader(topic, partitions=[partition], since_ms=since_ms)
        written = self._state_written.get((topic, partition))
        try:
            for record in reader.read_to_end(at_least={partition: written} if written is not None else None):
                try:
                    decoded = decode(record.value or b"")
                except LienthongError:
                    log.error("unreadable record skipped", extra={"topic": topic, "offset": record.offset})
                    continue
                yield from decoded
        finally:
            reader.close()

    def _load_seen(self, partition: int) -> Iterator[tuple[str, int]]:
        """The ids delivered from one ingress partition within the window, from the seen topic."""
        since = to_millis(self.clock() - self._window)
        codec = self.bus.envelopes.codec
        for seen in self._read_partition(self.bus.topics.router_seen, partition,
                                         functools.partial(decode_seen, codec), since):
            yield seen["message_id"], seen["created_at"]

    def _load_stories(self, partition: int) -> Iterator[Story]:
        """The stories of one ingress partition, from the compacted stories topic, in order (the last one of a root
        id is its state)."""
        codec = self.bus.envelopes.codec
        for rec in self._read_partition(self.bus.topics.router_stories, partition,
                                        lambda data: [codec.decode(data, ROUTER_STORY)]):
            yield story_model(rec)

    def start(self) -> None:
        bus, settings = self.bus, self.bus.settings
        admin = bus.admin()
        bus.ensure_core_topics(admin)
        follower = bus.directory_follower()
        entries = follower.catch_up()
        bus.ensure_inboxes(admin, [e.code for e in entries if isinstance(e, AgencyEntry)])
        producer = self._publisher()
        consumer = bus.subscriber([bus.topics.ingress], bus.topics.router_group(), client_id=self.instance,
                                  max_poll_records=settings.router_batch_size, instance_id=self.instance,
                                  session_timeout_ms=settings.router_session_timeout_ms)
        self._audit_follows_ingress = (consumer.partition_count(bus.topics.audit)
                                       == consumer.partition_count(bus.topics.ingress))
        seen = SeenIds(lambda p: list(self._load_seen(p)), settings.duplicate_window_s * 1000)
        stories = StoryBook(lambda p: list(self._load_stories(p)))
        self._conn = _Connections(admin, follower, consumer, producer, seen, stories)
        self._heap.settle()  # the imports' objects, about 130,000, are never garbage
        log.info("router started", extra={"instance": self.instance, "agencies": len(follower.view.agencies)})

    def _follow_directory(self) -> None:
        """Read the directory topic to its current end before routing a batch: a revocation or a new agency
        published before a message is routed applies to that message (one offsets request per batch)."""
        codes = [e.code for e in self.conn.follower.catch_up() if isinstance(e, AgencyEntry)]
        if codes:
            self.bus.ensure_inboxes(self.conn.admin, codes)

    def _placement(self, record: Record) -> Placement:
        # Outside any catch-all: a metadata hiccup is the broker's trouble (abort and retry), not the record's.
        partitions = self.conn.consumer.partition_count(record.topic)
        return Placement(record.key, record.partition,
                         key_partition(record.key, partitions) if record.key is not None else None)

    def decide_batch(self, records: Sequence[Record], now: dt.datetime) -> list[Decision]:
        """The decisions of a polled batch, in its order, all made before the first record is sent; a bug becomes
        that record's rejection.

        Deciding first is what keeps the signature checks fast. The signature library releases the GIL while it
        verifies; a thread that releases the GIL waits to get it back for as long as another thread holds it, up to
        the interpreter's 5 ms switch interval. Once records are sent, kafka-python's network thread has work and
        holds the GIL often, and routing one record after another (decide, then send) made most signature checks
        wait for it: 44% of the router's thread was spent in `verify`, about 630 µs per document against 114 µs
        measured alone. Deciding the whole batch while the producer is idle, then sending, doubled the documents
        per second (bench/README.md, "what-if"). The decisions do not depend on each other: duplicates and stories
        are applied afterwards, in order.
        """
        view, envelopes, decisions = self.conn.follower.view, self.bus.envelopes, []
        for record in records:
            placement = self._placement(record)
            try:
                decisions.append(decide(record.value, view, envelopes, now, self._skew, self._window, placement,
                                        record.time or now))  # ingress is LogAppendTime: the broker's time
            except Exception as exc:
                log.exception("unexpected error deciding a record", extra={"offset": record.offset})
                decisions.append(Rejected(Reason.INTERNAL_ERROR, f"internal error: {exc!r}"))
        return decisions

    def route(self, record: Record, now: dt.datetime, decision: Decision, pending: Pending) -> list[Outgoing]:
        """Everything one ingress record and its decision turn into: deliveries or a DLQ record and its story; the id
        delivered and its audit events are added to `pending`, for the caller to write with those of the rest of the
        batch (`Router.batched`)."""
        arrived = record.time or now
        topics, seen = self.bus.topics, self.conn.seen
        out: list[Outgoing] = []
        if isinstance(decision, Accepted) and seen.seen(record.partition, decision.message.header.message_id):
            decision = as_duplicate(decision)
        if isinstance(decision, Accepted) and has_story(decision.message):
            decision, story = self._advance_story(decision, record.partition, arrived)
            if story is not None:
                out.append(Outgoing(topics.router_stories, self.bus.envelopes.codec.encode(
                    ROUTER_STORY, story_record(story)), story.root_id.encode(), partition=record.partition))
        if isinstance(decision, Accepted):
            header = decision.message.header
            seen.add(record.partition, header.message_id, to_millis(header.created_at))
            pending.seen.setdefault(record.partition, []).append({
                "message_id": header.message_id, "root_id": header.root_id,
                "created_at": to_millis(header.created_at), "ingress_offset": record.offset,
            })
            headers = list(record.headers.items())
            for recipient in decision.recipients:
                # Inboxes have one partition (Bus.ensure_inboxes): naming it spares the partitioner's hashing.
                out.append(Outgoing(topics.inbox(check_agency_code(recipient)), record.value, record.key, headers,
                                    partition=0))
            self.metrics.messages.labels("routed", "").inc()
            self.metrics.deliveries.inc(len(decision.recipients))
        else:
            if decision.to_dlq:
                out.append(Outgoing(topics.dlq, record.value, record.key, dlq_headers(record, decision)))
            self.metrics.messages.labels("rejected", decision.reason.value).inc()
            log.info("rejected", extra={"offset": record.offset, "partition": record.partition,
                                        "reason": decision.reason.value, "detail": decision.detail})
        position = Position(record.topic, record.partition, record.offset, arrived)
        events = audit_records(decision, position, now, record.value)
        if self._audit_follows_ingress:
            pending.audit.setdefault(record.partition, []).extend(events)
        else:
            out.extend(self._audit(events))  # by key: with the events of this decision only
        return out

    def batched(self, pending: Pending) -> list[Outgoing]:
        """The records a batch's decisions share: per ingress partition, the ids delivered in SeenMessages records
        and the audit events in AuditEvents records, as few as fit (one SeenMessage and one AuditEvents record per
        document had been two of the four records a document to one recipient cost)."""
        codec, limit, out = self.bus.envelopes.codec, self.bus.settings.max_message_bytes, []
        for partition, entries in pending.seen.items():
            out += [Outgoing(self.bus.topics.router_seen, codec.encode(SEEN_MESSAGES, {"messages": chunk}),
                             chunk[0]["message_id"].encode(), partition=partition)
                    for chunk in seen_chunks(entries, limit)]
        for partition, events in pending.audit.items():
            out += self._audit(events, partition)
        return out

    def _advance_story(self, decision: Accepted, partition: int,
                       arrived: dt.datetime) -> tuple[Decision, Story | None]:
        """The story rules (state machine, lifecycle, ballots): the decision stands with the story's new state,
        or becomes a rejection naming the rule broken."""
        stories = self.conn.stories
        header = decision.message.header
        before = stories.get(partition, header.root_id)
        try:
            story = advance(before, decision.message, decision.recipients, arrived)
        except LienthongError as exc:
            return Rejected(exc.reason, exc.message, decision.message), None
        except Exception as exc:  # a bug must cost this message, not stop the router on it again and again
            log.exception("unexpected error applying the story rules", extra={"root_id": header.root_id})
            return Rejected(Reason.INTERNAL_ERROR, f"internal error: {exc!r}", decision.message), None
        # A document's status changes two characters of its record; new parties or a ballot's answer (the option's
        # text) can change more: only then is the size worth estimating again.
        grew = before is None or len(story.parties) != len(before.parties) or story.kind == BALLOT
        if grew and story.record_size_estimate() > self.bus.settings.max_message_bytes:
            # Its stories record could never be written: every transaction of this partition would fail.
            return Rejected(Reason.MESSAGE_TOO_LARGE, f"story {header.root_id} would have {len(story.parties):,} "
                            "parties, more than the router can keep in one record; address fewer recipients per "
                            "document", decision.message), None
        stories.put(partition, story)
        return decision, story

    def _audit(self, events: list[dict[str, Any]], partition: int | None = None) -> list[Outgoing]:
        """Audit events in as few AuditEvents records as fit: those of one decision, or, when the audit partition
        follows the ingress one, those of a whole batch's decisions on one partition (the events of 33 documents with
        one recipient in one record). Each record stays within the producer's limit (`max_message_bytes`, and 100
        events), so a SUBMITTED event carrying a large document goes with few others."""
        if not events:
            return []
        key = (events[0]["root_id"] or events[0]["event_id"]).encode()
        return [Outgoing(self.bus.topics.audit, frame, key, partition=partition)
                for frame in self._audit_frames(events, self.bus.settings.max_message_bytes)]

    def run_once(self, timeout_ms: int = 500) -> int:
        """Poll one batch and route it in one transaction; returns the number of ingress records handled.

        The transaction's commit (the flush of its records, its consumed offsets, its end) runs in the background
        while the next call polls and decides the next batch, which needs neither the broker nor the transaction:
        waiting for the broker had left the router's thread idle for 25-50 ms per transaction (bench/README.md). A
        call waits for the commit in flight before it sends anything, and a failed commit rewinds the consumer to
        the last committed offsets, dropping what was read ahead, as a failure inside the transaction does."""
        conn = self.conn
        records = conn.consumer.poll(timeout_ms)
        revoked = [r.partition for r in conn.consumer.take_revoked()]
        conn.seen.forget(revoked)
        conn.stories.forget(revoked)
        if not records:
            self.finish_commit()
            return 0
        # The positions and the group generation as the poll left them: they go with these records' transaction.
        checkpoint = conn.consumer.checkpoint()
        self._follow_directory()
        now = self.clock()
        decisions = self.decide_batch(records, now)
        if not self.finish_commit():
            return 0  # these records come again: the consumer was rewound to before the failed transaction's
        self._heap.due()  # between transactions: the stories and ids of the documents routed since the last time
        started = time.perf_counter()
        state_topics = self._state_topics
        written: dict[tuple[str, int], Any] = {}
        try:
            conn.producer.begin()
            pending = Pending()
            for record, decision in zip(records, decisions, strict=True):
                written.update(conn.producer.send_all(self.route(record, now, decision, pending), watch=state_topics))
            written.update(conn.producer.send_all(self.batched(pending), watch=state_topics))
        except FencedError:
            raise
        except BrokerError as exc:
            self._abort(exc)
            return 0
        self._committing = _Committing(self._commit_in_background(conn.producer, checkpoint, started), now, written)
        if len(records) < self.bus.settings.router_batch_size and not self.finish_commit():
            # A batch short of full: the router keeps up, so there is no backlog to read ahead, and a commit running
            # beside the next batch's decisions waits for the interpreter lock, which delays these documents.
            return 0
        return len(records)

    def _commit_in_background(self, producer: Publisher, checkpoint: Checkpoint, started: float) -> Future[None]:
        """Commit on a thread of its own, counted when it is done. A daemon thread, so that a commit kafka-python
        waits on for good (it has no time limit) cannot keep the process from exiting: the broker then aborts the
        transaction, or the next incarnation of this instance fences it."""
        done: Future[None] = Future()

        def commit() -> None:
            try:
                producer.commit(checkpoint)
            except BaseException as exc:  # handed to finish_commit, which aborts or raises
                done.set_exception(exc)
                return
            self.metrics.transactions.labels("committed").inc()
            self.metrics.batch_seconds.observe(time.perf_counter() - started)  # route and commit, as documented
            done.set_result(None)

        threading.Thread(target=commit, name=f"{self.instance}-commit", daemon=True).start()
        return done

    def finish_commit(self) -> bool:
        """Wait for the transaction in flight, if any, to commit; False if it failed (it is then aborted and the
        consumer rewound, so that its records and any read ahead come again)."""
        committing, self._committing = self._committing, None
        if committing is None:
            return True
        try:
            committing.future.result()
        except FencedError:
            raise
        except BrokerError as exc:
            self._abort(exc)
            return False
        for where, future in committing.written.items():
            end = written_end(future)
            if end is not None:
                self._state_written[where] = max(end, self._state_written.get(where, 0))
        if time.monotonic() - self._pruned_at > 60:
            self.conn.seen.prune(to_millis(committing.now))
            self._pruned_at = time.monotonic()
        return True

    def _abort(self, exc: BrokerError) -> None:
        """After a failed send or commit: abort the transaction and go back to the last commit."""
        conn = self.conn
        self.metrics.transactions.labels("aborted").inc()
        log.warning("transaction failed, rewinding to the last commit", extra={"error": str(exc)})
        conn.seen.forget()
        conn.stories.forget()
        try:
            conn.producer.abort()
        except BrokerError:
            log.warning("abort failed; replacing the producer")
            conn.producer.close(1)
            conn.producer = self._publisher()
            self._heap.thaw()  # the next settle collects the closed producer's cycles
        conn.consumer.rewind_to_committed()

    def run(self, stop: threading.Event, retry_s: float = 1.0, max_retry_s: float = 30.0) -> None:
        """Route until stop is set. A broker outage is waited out, reconnecting with a growing pause; being
        fenced by a newer instance of the same name ends the run."""
        pause = retry_s
        while not stop.is_set():
            try:
                if self._conn is None:
                    self.start()
                self.ready.set()
                pause = retry_s
                while not stop.is_set():
                    self.run_once()
                self.finish_commit()  # the last batch's commit, before the caller closes the router
            except FencedError:
                log.error("fenced by a newer instance with the same name; stopping", extra={"instance": self.instance})
                raise
            except BrokerAuthorizationError:
                # Waiting does not fix a missing ACL or a wrong identity: the operator does.
                log.error("the broker refuses this router's identity; stopping", extra={"instance": self.instance})
                raise
            except BrokerError as exc:
                log.warning("broker trouble; reconnecting", extra={"error": str(exc), "retry_s": pause})
                self.close()
                stop.wait(pause)
                pause = min(pause * 2, max_retry_s)

    def close(self) -> None:
        self._heap.thaw()  # a reconnect drops these clients; start() collects them and freezes again
        committing, self._committing = self._committing, None
        if committing is not None:
            # Stopping with a commit in flight (a broker outage, or close() without run()'s last finish_commit): give
            # it a while so the producer is not closed under it. If it fails or takes longer, the broker aborts the
            # transaction (or the next incarnation of this instance fences it), and its records are routed again.
            try:
                committing.future.result(timeout=CLOSE_COMMIT_WAIT_S)
            except FutureTimeout:
                log.warning("closing with a transaction still committing", extra={"waited_s": CLOSE_COMMIT_WAIT_S})
            except (LienthongError, OSError) as exc:
                log.warning("the last transaction did not commit", extra={"error": repr(exc)})
        if self._conn is not None:
            for part in (self._conn.consumer, self._conn.producer, self._conn.follower, self._conn.admin):
                try:
                    part.close()
                except (LienthongError, OSError) as exc:
                    log.warning("close failed", extra={"error": repr(exc)})
            self._conn = None
