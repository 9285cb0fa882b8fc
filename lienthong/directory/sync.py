"""Publish the directory as CA-signed entries on the compacted topic, and follow it into a DirectoryView."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from lienthong.certificates import BusCA, fingerprint
from lienthong.directory.entries import DirectoryEntry
from lienthong.directory.view import DirectoryView
from lienthong.envelope import EnvelopeCodec
from lienthong.errors import LienthongError, Reason, SignatureError
from lienthong.records import DIRECTORY_ENTRY, directory_entry_model, directory_entry_record
from lienthong.signing import Signer, verify
from lienthong.transport.client import Outgoing, Publisher, Record, TopicReader

log = logging.getLogger(__name__)


class DirectoryPublisher:
    """Signs directory entries with the bus CA key and publishes them, keyed for compaction."""

    def __init__(self, publisher: Publisher, envelopes: EnvelopeCodec, ca: BusCA, topic: str) -> None:
        self._publisher = publisher
        self._envelopes = envelopes
        self._signer = Signer(ca.key, ca.certificate)
        self._topic = topic

    def publish(self, entries: Iterable[DirectoryEntry]) -> int:
        now = dt.datetime.now(dt.UTC)
        futures = []
        for entry in entries:
            content = self._envelopes.codec.encode(DIRECTORY_ENTRY, directory_entry_record(entry, now))
            value = self._envelopes.seal_bytes(content, self._signer)
            futures.append(self._publisher.send(Outgoing(self._topic, value, entry.key.encode())))
        self._publisher.flush(30)
        for future in futures:
            future.get(timeout=30)
        return len(futures)


class DirectoryFollower:
    """Keeps a DirectoryView up to date from the directory topic; entries not signed by the CA are ignored."""

    def __init__(self, reader: TopicReader, envelopes: EnvelopeCodec, view: DirectoryView) -> None:
        self._reader = reader
        self._envelopes = envelopes
        self.view = view
        self._ca_fingerprint = fingerprint(view.ca_certificate)
        self._published: dict[str, int] = {}
        self.rejected = 0

    def _apply(self, record: Record) -> DirectoryEntry | None:
        key = (record.key or b"").decode("utf-8", "replace")
        if record.value is None:
            # A tombstone carries no signature: anyone able to write the topic could erase an agency with it.
            # Entries are retired by publishing a signed entry (a revocation), never by deletion.
            self.rejected += 1
            log.warning("unsigned directory tombstone ignored", extra={"key": key, "offset": record.offset})
            return None
        try:
            envelope = self._envelopes.read(record.value)
            if envelope.certificate_fingerprint != self._ca_fingerprint:
                raise SignatureError("directory entry is not signed by the bus CA", reason=Reason.UNKNOWN_CERTIFICATE)
            verify(self.view.ca_certificate.public_key(), envelope.algorithm,  # type: ignore[arg-type]
                   envelope.content, envelope.signature)
            decoded = self._envelopes.codec.decode(envelope.content, DIRECTORY_ENTRY)
            entry = directory_entry_model(decoded)
            if decoded["key"] != key or decoded["key"] != entry.key:
                raise SignatureError(f"directory entry signed for {decoded['key']!r} found under key {key!r}",
                                     reason=Reason.KEY_MISMATCH)
            if decoded["published_at"] < self._published.get(key, -1):
                raise SignatureError("directory entry older than the one in force (a replay)",
                                     reason=Reason.STALE)
            self._published[key] = decoded["published_at"]
        except LienthongError as exc:
            self.rejected += 1
            log.warning("directory entry ignored", extra={"key": key, "offset": record.offset,
                                                           "reason": exc.reason.value, "detail": exc.message})
            return None
        self.view.apply(entry)
        return entry

    def catch_up(self, timeout_s: float = 30.0) -> list[DirectoryEntry]:
        """Apply everything published so far."""
        return [e for r in self._reader.read_to_end(timeout_s) if (e := self._apply(r)) is not None]

    def poll(self, timeout_ms: int = 0) -> list[DirectoryEntry]:
        """Apply what arrived since the last call."""
        return [e for r in self._reader.poll(timeout_ms) if (e := self._apply(r)) is not None]

    def close(self) -> None:
        self._reader.close()
