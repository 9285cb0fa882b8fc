"""Operator actions on the directory: add an agency with its key and certificate, publish the directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import x25519

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
    encryption_certificate_fingerprint: str = ""
    new_encryption_key: bool = False


def add_agency(bus: Bus, code: str, name: str, kind: AgencyKind, key_type: str = "ecdsa-p256") -> AddedAgency:
    """Record the agency; give it a signing key and certificate, and an encryption key (X25519) and certificate,
    from the bus CA, each only if it has none. Idempotent: run again, it adds what an older version did not."""
    agency = Agency(code=code, name=name, kind=kind)
    store = bus.directory_store()
    keystore = bus.keystore()
    ca_created = not (bus.settings.ca_dir / "ca.key.pem").exists()
    try:
        created = store.add_agency(agency)
        new_key = not keystore.has(code)
        new_encryption_key = not keystore.has_encryption(code)
        if new_key or new_encryption_key:
            ca = bus.ca(create=True)
            if new_key:
                key = generate_key(key_type)
                keystore.save(code, key, ca.issue(code, name, key.public_key()))
            if new_encryption_key:
                encryption_key = x25519.X25519PrivateKey.generate()
                keystore.save_encryption(code, encryption_key,
                                         ca.issue_encryption(code, name, encryption_key.public_key()))
        else:
            ca_created = False
        signer = keystore.signer(code)
        store.add_certificate(signer.certificate)
        encryption_certificate = keystore.encryption_certificate(code)
        store.add_certificate(encryption_certificate)
    finally:
        store.close()
    return AddedAgency(agency, created, keystore.folder / f"{code}.key.pem", fingerprint(signer.certificate),
                       new_key, ca_created, fingerprint(encryption_certificate), new_encryption_key)


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
