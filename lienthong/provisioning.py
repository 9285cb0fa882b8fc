"""Operator actions on the directory: add an agency with its key and certificate, publish the directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lienthong.agencies import Agency, AgencyKind
from lienthong.certificates import fingerprint, generate_key
from lienthong.wiring import Bus


@dataclass(frozen=True)
class AddedAgency:
    agency: Agency
    created: bool
    key_path: Path
    certificate_fingerprint: str
    new_key: bool
    ca_created: bool


def add_agency(bus: Bus, code: str, name: str, kind: AgencyKind, key_type: str = "ecdsa-p256") -> AddedAgency:
    """Record the agency, give it a key and a CA-issued certificate if it has none. Idempotent."""
    agency = Agency(code=code, name=name, kind=kind)
    store = bus.directory_store()
    keystore = bus.keystore()
    ca_created = False
    try:
        created = store.add_agency(agency)
        new_key = not keystore.has(code)
        if new_key:
            ca_created = not (bus.settings.ca_dir / "ca.key.pem").exists()
            ca = bus.ca(create=True)
            key = generate_key(key_type)
            cert = ca.issue(code, name, key.public_key())
            keystore.save(code, key, cert)
        signer = keystore.signer(code)
        store.add_certificate(signer.certificate)
    finally:
        store.close()
    return AddedAgency(agency, created, keystore.folder / f"{code}.key.pem",
                       fingerprint(signer.certificate), new_key, ca_created)


def publish_directory(bus: Bus) -> int:
    """Make sure the bus topics and inboxes exist and publish every directory entry; returns the count."""
    store = bus.directory_store()
    admin = bus.admin()
    publisher = bus.publisher(client_id="directory-publisher")
    try:
        bus.ensure_core_topics(admin)
        bus.ensure_inboxes(admin, [a.code for a in store.agencies()])
        return bus.directory_publisher(publisher).publish(store.entries())
    finally:
        publisher.close()
        admin.close()
        store.close()
