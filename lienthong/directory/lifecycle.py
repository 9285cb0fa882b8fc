"""Certificate lifecycle: revoke an agency's signing certificates, rotate its signing key.

Both change the operator's SQL directory and are then published like any directory change; routers and
receivers read the directory topic to its end before each batch they handle, so a revocation published before a
message is routed applies to it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update

from lienthong.certificates import agency_of, fingerprint, generate_key
from lienthong.directory.store import DirectoryStore, certificates
from lienthong.errors import NotFoundError, ValidationError
from lienthong.wiring import Bus


def revoke(store: DirectoryStore, code: str, at: dt.datetime, certificate: str | None = None) -> list[str]:
    """Mark the agency's certificates (or one of them) revoked from `at` on; returns their fingerprints.

    Messages signed before `at` stay verifiable by that time; anything verified at or after it is refused.
    A certificate revoked earlier keeps its earlier time."""
    store.agency(code)
    c = certificates.c
    with store.engine.begin() as conn:
        query = select(c.fingerprint, c.revoked_at).where(c.agency == code)
        if certificate is not None:
            query = query.where(c.fingerprint.startswith(certificate.lower()))
        rows = conn.execute(query).all()
        if not rows:
            raise NotFoundError(f"agency {code} has no certificate {certificate or ''}".rstrip())
        if certificate is not None and len(rows) > 1:
            raise ValidationError(f"{certificate!r} matches {len(rows)} certificates of {code}; give more digits")
        fresh = [r.fingerprint for r in rows if r.revoked_at is None]
        if fresh:
            conn.execute(update(certificates).where(c.fingerprint.in_(fresh)).values(revoked_at=at))
    return fresh


@dataclass(frozen=True)
class Rotated:
    new_fingerprint: str
    retired: list[str]
    retired_at: dt.datetime


def rotate_key(bus: Bus, code: str, key_type: str, grace: dt.timedelta) -> Rotated:
    """Give the agency a new signing key and certificate; its current certificates end after `grace`.

    Messages signed with the old key until then (an outbox that still holds some, say) are delivered;
    messages signed with it before its end stay verifiable afterwards."""
    store = bus.directory_store()
    try:
        agency = store.agency(code)
        keystore = bus.keystore()
        old = keystore.signer(code).certificate if keystore.has(code) else None
        key = generate_key(key_type)
        cert = bus.ca().issue(code, agency.name, key.public_key())
        if agency_of(cert) != code:
            raise ValidationError("the new certificate does not name the agency")
        store.add_certificate(cert)
        retired_at = dt.datetime.now(dt.UTC) + grace
        retired = []
        if old is not None:
            retired = revoke(store, code, retired_at, certificate=fingerprint(old))
        keystore.save(code, key, cert)  # from now on this agency signs with the new key
        return Rotated(fingerprint(cert), retired, retired_at)
    finally:
        store.close()
