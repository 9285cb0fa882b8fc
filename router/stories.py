"""What the router remembers of each story — a document with its notices and lifecycle requests, or a ballot with
its answers — and the rules a new message must keep to be routed.

A story's messages share the root id, which is the record key, so one ingress partition and one router instance see
all of them, in order. The state lives on the compacted router stories topic (one partition per ingress partition,
written in the same transaction as the deliveries) and is loaded when a partition is first used, like the seen ids.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from lienthong.ballots import Ballot, BallotAnswer
from lienthong.documents import ConfidentialDocument, OfficialDocument
from lienthong.errors import Reason, RoutingError
from lienthong.messages import Message, asks_agreement, is_lifecycle_request
from lienthong.notices import StatusCode, StatusNotice, stored_status
from lienthong.notices import advance as advance_status
from lienthong.records import from_millis, to_millis
from router.partitioned import PartitionState

DOCUMENT = "DOCUMENT"
BALLOT = "BALLOT"


@dataclass(frozen=True, slots=True)  # one per recipient of every story the router holds
class Party:
    """A recipient of a document (state '' delivered, or its two-digit status now; `before`: the state an open 13
    interrupted) or a ballot member (state '' or the option answered)."""

    state: str
    at: int
    before: str = ""


@dataclass(frozen=True, slots=True)
class Story:
    root_id: str
    kind: str
    sender: str
    opened_at: int
    deadline: int | None = None
    options: tuple[str, ...] = ()
    parties: dict[str, Party] = field(default_factory=dict)

    def record_size_estimate(self) -> int:
        """An upper bound of its encoded RouterStory record's size, in bytes (Avro: each long at most 10 bytes,
        each string its UTF-8 length plus a length of at most 10)."""
        head = len(self.root_id.encode()) + len(self.sender.encode()) + len(self.kind) + 64
        head += sum(len(o.encode()) + 10 for o in self.options)
        return head + sum(len(a) + len(p.state.encode()) + len(p.before) + 40 for a, p in self.parties.items())

    def with_parties(self, changes: dict[str, Party]) -> Story:
        return replace(self, parties={**self.parties, **changes})


def story_record(story: Story) -> dict[str, Any]:
    return {"root_id": story.root_id, "kind": story.kind, "sender": story.sender, "opened_at": story.opened_at,
            "deadline": story.deadline, "options": list(story.options),
            "parties": [{"agency": a, "state": p.state, "at": p.at, "before": p.before}
                        for a, p in story.parties.items()]}


def story_model(rec: dict[str, Any]) -> Story:
    return Story(root_id=rec["root_id"], kind=rec["kind"], sender=rec["sender"], opened_at=rec["opened_at"],
                 deadline=rec["deadline"], options=tuple(rec["options"]),
                 parties={p["agency"]: Party(p["state"], p["at"], p["before"]) for p in rec["parties"]})


class StoryBook(PartitionState[Story]):
    """Stories by ingress partition and root id."""

    def __init__(self, load: Callable[[int], Iterable[Story]]) -> None:
        super().__init__(lambda partition: ((s.root_id, s) for s in load(partition)))

    def get(self, partition: int, root_id: str) -> Story | None:
        return self._of(partition).get(root_id)

    def put(self, partition: int, story: Story) -> None:
        self._of(partition)[story.root_id] = story


def has_story(message: Message) -> bool:
    return isinstance(message.payload, (OfficialDocument, ConfidentialDocument, StatusNotice, Ballot, BallotAnswer))


def _transition(story: Story, agency: str, new: StatusCode, at: int) -> Party:
    """The recipient's party after status `new`, which must follow its state (see lienthong.notices.advance)."""
    party = story.parties[agency]
    state, before = advance_status(stored_status(party.state), stored_status(party.before), new)
    return Party(state.value if state else "", at, before.value if before else "")


def advance(story: Story | None, message: Message, recipients: tuple[str, ...], arrived: dt.datetime) -> Story:
    """The story after this message, or an error naming the rule it breaks. Pure: the caller stores the result."""
    header, payload = message.header, message.payload
    at = to_millis(arrived)
    if isinstance(payload, (OfficialDocument, ConfidentialDocument)):
        if not is_lifecycle_request(message):
            # A new document, or a new delivery of it (which starts each recipient's handling over, even after 02).
            if story is not None and story.kind != DOCUMENT:
                raise RoutingError(f"{header.root_id} is the id of a {story.kind.lower()} already; a document needs "
                                   "an id of its own", reason=Reason.KEY_MISMATCH)
            base = story or Story(header.root_id, DOCUMENT, header.sender, at)
            return base.with_parties({r: Party("", at) for r in recipients})
        return _lifecycle(story, message, recipients, at)
    if isinstance(payload, StatusNotice):
        return _notice(story, message, payload, at)
    if isinstance(payload, Ballot):
        if story is not None and story.kind == BALLOT:
            raise RoutingError(f"ballot {payload.ballot_id} was sent before; a ballot cannot be changed once sent",
                               reason=Reason.INVALID_TRANSITION)
        if story is not None:
            raise RoutingError(f"{payload.ballot_id} is the id of a {story.kind.lower()} already; a ballot needs an "
                               "id of its own", reason=Reason.KEY_MISMATCH)
        if to_millis(payload.deadline) <= at:
            raise RoutingError(f"ballot {payload.ballot_id}: its deadline {payload.deadline:%Y-%m-%d %H:%M} UTC has "
                               "already passed", reason=Reason.PAST_DEADLINE)
        return Story(header.root_id, BALLOT, header.sender, at, to_millis(payload.deadline), payload.options,
                     {m: Party("", at) for m in payload.members})
    if isinstance(payload, BallotAnswer):
        return _answer(story, message, payload, at)
    raise RoutingError(f"{header.kind.value} messages have no story", reason=Reason.WRONG_KIND)


def _lifecycle(story: Story | None, message: Message, recipients: tuple[str, ...], at: int) -> Story:
    header, payload = message.header, message.payload
    if story is None or story.kind != DOCUMENT:
        raise RoutingError(f"document {header.root_id} was never sent through this bus (or longer ago than the "
                           "router remembers); there is nothing to revoke, update or replace",
                           reason=Reason.UNKNOWN_DOCUMENT)
    if story.sender != header.sender:
        # check_identity already binds the root id to the sender; kept so that this rule holds on its own.
        raise RoutingError(f"document {header.root_id} was sent by {story.sender}; only its sender may revoke, "
                           "update or replace it", reason=Reason.SENDER_MISMATCH)
    strangers = [r for r in recipients if r not in story.parties]
    if strangers:
        raise RoutingError(f"{', '.join(strangers)} never received document {header.root_id}",
                           reason=Reason.NOT_A_PARTY)
    if isinstance(payload, OfficialDocument):
        affected = set(payload.business.affected_recipients) - set(recipients)
        if affected:
            raise RoutingError(f"affected recipients {', '.join(sorted(affected))} are not among the recipients "
                               "of this message", reason=Reason.NOT_A_PARTY)
    if not asks_agreement(message):
        # The replacement is a new delivery: each recipient's handling starts over with it.
        return story.with_parties({r: Party("", at) for r in recipients})
    # Revoke and update (and a confidential request, whose type only its recipients can read) ask each recipient
    # to agree (15) or refuse (16): the request is status 13 for each.
    return story.with_parties({r: _transition(story, r, StatusCode.RECALL_REQUESTED, at) for r in recipients})


def _notice(story: Story | None, message: Message, notice: StatusNotice, at: int) -> Story:
    header = message.header
    if story is None or story.kind != DOCUMENT:
        raise RoutingError(f"document {notice.document_id} was never sent through this bus (or longer ago than the "
                           "router remembers)", reason=Reason.UNKNOWN_DOCUMENT)
    to = header.recipients[0]
    if notice.status == StatusCode.RECALL_REQUESTED:
        # 13 comes from the document's sender, to one of its recipients.
        if header.sender != story.sender:
            raise RoutingError(f"only {story.sender}, who sent document {notice.document_id}, may ask to recall or "
                               "update it (13)", reason=Reason.NOT_A_PARTY)
        if to not in story.parties:
            raise RoutingError(f"{to} never received document {notice.document_id}", reason=Reason.NOT_A_PARTY)
        return story.with_parties({to: _transition(story, to, notice.status, at)})
    if header.sender not in story.parties:
        raise RoutingError(f"{header.sender} never received document {notice.document_id}, so it cannot report its "
                           "status", reason=Reason.NOT_A_PARTY)
    if to != story.sender:
        raise RoutingError(f"a status notice about document {notice.document_id} goes to its sender {story.sender}, "
                           f"not to {to}", reason=Reason.NOT_A_PARTY)
    return story.with_parties({header.sender: _transition(story, header.sender, notice.status, at)})


def _answer(story: Story | None, message: Message, answer: BallotAnswer, at: int) -> Story:
    header = message.header
    if story is None or story.kind != BALLOT:
        raise RoutingError(f"ballot {answer.ballot_id} was never sent through this bus", reason=Reason.UNKNOWN_BALLOT)
    if header.recipients[0] != story.sender:
        raise RoutingError(f"an answer to ballot {answer.ballot_id} goes to {story.sender}, who sent it",
                           reason=Reason.NOT_A_PARTY)
    member = story.parties.get(header.sender)
    if member is None:
        raise RoutingError(f"{header.sender} is not a member asked by ballot {answer.ballot_id}",
                           reason=Reason.NOT_A_PARTY)
    if story.deadline is not None and at > story.deadline:
        raise RoutingError(f"ballot {answer.ballot_id} closed at {from_millis(story.deadline):%Y-%m-%d %H:%M:%S} UTC; "
                           f"this answer arrived at {from_millis(at):%Y-%m-%d %H:%M:%S} UTC",
                           reason=Reason.PAST_DEADLINE)
    if member.state:
        raise RoutingError(f"{header.sender} already answered ballot {answer.ballot_id}; each member answers once",
                           reason=Reason.ALREADY_ANSWERED)
    if answer.option not in story.options:
        raise RoutingError(f"{answer.option!r} is not an option of ballot {answer.ballot_id} "
                           f"({' | '.join(story.options)})", reason=Reason.INVALID_CONTENT)
    return story.with_parties({header.sender: Party(answer.option, at)})

