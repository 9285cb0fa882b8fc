"""Evidence bundles: one file proving what happened to one document, checkable offline without the database.

A bundle holds the document's signed messages and the certificates that signed them, the document's audit rows,
and the chain from its first row to a checkpoint signed by the operator: for the rows of other documents in
between only their digests, so the bundle shows nothing of other agencies' traffic.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lienthong.audit.chain import FIELDS, link_digest, row_digest
from lienthong.audit.store import AuditStore, Checkpoint, checkpoint_checker, event_from_values
from lienthong.certificates import agency_of, check_certificate, fingerprint
from lienthong.codec import SingleObjectCodec
from lienthong.envelope import EnvelopeCodec, TrustedCertificate
from lienthong.errors import LienthongError, NotFoundError, Reason, SignatureError, ValidationError
from lienthong.signing import SignatureAlgorithm

FORMAT = "lienthong-evidence-v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def export(store: AuditStore, document_id: str, operator: x509.Certificate,
           certificates: dict[str, x509.Certificate]) -> dict[str, Any]:
    """Build the bundle of one document; `certificates` are the directory's, by fingerprint."""
    events = store.events(document_id)
    if not events:
        raise NotFoundError(f"no audit record for document {document_id!r}")
    event_ids = {e.event_id for e in events}
    rows_of_document = [r for r in store.chain_rows() if r.values[0] in event_ids]
    first, last = rows_of_document[0].seq, rows_of_document[-1].seq
    checkpoints = store.checkpoints()
    covering = min((seq for seq in checkpoints if seq >= last), default=None)
    if covering is None:
        raise ValidationError(f"the rows of {document_id} (up to row {last}) are not yet covered by a signed "
                              "checkpoint; run `lienthong audit checkpoint` and export again")
    chain = []
    for row in store.chain_rows(first, covering):
        entry: dict[str, Any] = {"seq": row.seq}
        if row.values[0] in event_ids:
            entry["values"] = list(row.values)
        else:
            entry["digest"] = row_digest(row.values).hex()
        chain.append(entry)
    message_ids = sorted({e.message_id for e in events if e.message_id})
    envelopes = store.envelopes(message_ids)
    cp = checkpoints[covering]
    return {
        "format": FORMAT,
        "document_id": document_id,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(),
        "operator_certificate": _pem(operator),
        "certificates": {fp: _pem(c) for fp, c in certificates.items()},
        "messages": {mid: _b64(env) for mid, env in envelopes.items()},
        "chain": {"fields": list(FIELDS), "start_prev_hash": rows_of_document[0].prev_hash.hex(), "rows": chain},
        "checkpoint": {"seq": cp.seq, "statement": _b64(cp.statement), "signature": _b64(cp.signature),
                       "algorithm": cp.algorithm.value, "certificate_fingerprint": cp.certificate_fingerprint},
    }


@dataclass
class BundleReport:
    document_id: str
    operator_fingerprint: str
    rows: int = 0
    document_rows: int = 0
    messages: int = 0
    checkpoint_seq: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Certificates:
    """The bundle's certificates, as a verifier's certificate source."""

    def __init__(self, operator: x509.Certificate, certs: dict[str, x509.Certificate]) -> None:
        self._operator = operator
        self._certs = certs

    @property
    def ca_certificate(self) -> x509.Certificate:
        return self._operator

    def certificate(self, fp: str) -> TrustedCertificate:
        if fp not in self._certs:
            raise SignatureError(f"the bundle lacks certificate {fp[:16]}…", reason=Reason.UNKNOWN_SENDER)
        return TrustedCertificate(agency_of(self._certs[fp]), self._certs[fp])


def verify_bundle(bundle: dict[str, Any], codec: SingleObjectCodec,
                  trusted_operator: x509.Certificate | None = None) -> BundleReport:
    """Check a bundle offline: the chain to the signed checkpoint, the checkpoint, and every signed message."""
    if bundle.get("format") != FORMAT:
        raise ValidationError(f"not a lienthong evidence bundle (format {bundle.get('format')!r})")
    operator = x509.load_pem_x509_certificate(bundle["operator_certificate"].encode())
    report = BundleReport(bundle["document_id"], fingerprint(operator))
    if trusted_operator is not None and fingerprint(trusted_operator) != report.operator_fingerprint:
        report.problems.append("the bundle's operator certificate is not the one you trust")
        return report
    chain = bundle["chain"]
    if chain["fields"] != list(FIELDS):
        report.problems.append("the bundle's rows use another field list than this verifier")
        return report
    # 1. The rows chain up to the checkpoint's hash.
    prev = bytes.fromhex(chain["start_prev_hash"])
    expected_seq = None
    document_events = []
    for entry in chain["rows"]:
        if expected_seq is not None and entry["seq"] != expected_seq:
            report.problems.append(f"row {expected_seq} is missing from the bundle's chain")
            return report
        if "values" in entry:
            values = tuple(entry["values"])
            digest = row_digest(values)
            document_events.append(event_from_values(values))
        else:
            digest = bytes.fromhex(entry["digest"])
        prev = link_digest(prev, digest)
        expected_seq = entry["seq"] + 1
        report.rows += 1
    report.document_rows = len(document_events)
    cp = bundle["checkpoint"]
    report.checkpoint_seq = cp["seq"]
    if not chain["rows"] or chain["rows"][-1]["seq"] != cp["seq"]:
        report.problems.append("the chain in the bundle does not end at the checkpoint")
        return report
    checkpoint = Checkpoint(cp["seq"], _unb64(cp["statement"]), _unb64(cp["signature"]),
                            cp["certificate_fingerprint"], SignatureAlgorithm(cp["algorithm"]))
    error = checkpoint_checker({checkpoint.seq: checkpoint}, operator, codec)(checkpoint.seq, prev)
    if error:
        report.problems.append(f"checkpoint at row {checkpoint.seq}: {error}")
        return report
    # 2. Every row is about this document, and every signed message checks out against its row.
    if any(e.root_id != report.document_id for e in document_events):
        report.problems.append("the bundle shows rows of another document as this document's")
    certs = {fp: x509.load_pem_x509_certificate(pem.encode()) for fp, pem in bundle["certificates"].items()}
    source = _Certificates(operator, certs)
    envelopes = EnvelopeCodec(codec)
    # Accepted messages: their SUBMITTED row carries the digest of the signed content. A refused copy or a duplicate
    # has no digest (nothing of it was delivered), and rows from before AuditEvent v2 have none either.
    submitted = {e.message_id: e for e in document_events
                 if e.event.value == "SUBMITTED" and e.message_id and e.content_sha256 is not None}
    for message_id, encoded in bundle["messages"].items():
        try:
            envelope = envelopes.read(_unb64(encoded))
            signer = source.certificate(envelope.certificate_fingerprint)
            check_certificate(signer.certificate, operator, submitted[message_id].at)
            envelopes.verify(envelope, source, submitted[message_id].at)
            message = envelopes.decode_content(envelope)
        except (LienthongError, KeyError) as exc:
            report.problems.append(f"message {message_id}: {exc}")
            continue
        row = submitted[message_id]
        if row.content_sha256 != envelope.content_digest or message.header.message_id != message_id:
            report.problems.append(f"message {message_id} is not the one its audit row records")
        elif message.header.root_id != report.document_id:
            report.problems.append(f"message {message_id} belongs to another document")
        report.messages += 1
    missing = set(submitted) - set(bundle["messages"])
    if missing:
        report.problems.append(f"the bundle lacks the signed messages {sorted(missing)}")
    return report


def dump(bundle: dict[str, Any]) -> str:
    return json.dumps(bundle, ensure_ascii=False, indent=1)
