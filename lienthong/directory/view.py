"""The in-memory directory a router or receiver holds: who exists, who is in which group, which keys count."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from cryptography import x509

from lienthong.agencies import GROUP_PREFIX, KIND_GROUPS, Agency, check_address, is_group_address
from lienthong.certificates import check_encryption_certificate
from lienthong.directory.entries import (
    AgencyEntry,
    CertificateEntry,
    CertificateUsage,
    DirectoryEntry,
    GroupEntry,
    RegimeEntry,
)
from lienthong.envelope import TrustedCertificate
from lienthong.errors import (
    AuthorizationError,
    LienthongError,
    NotFoundError,
    Reason,
    RoutingError,
    SignatureError,
)
from lienthong.reports import Regime


class DirectoryView:
    """Agencies, groups and certificates as last published; answers the router's and receiver's questions."""

    def __init__(self, ca_certificate: x509.Certificate) -> None:
        self._ca = ca_certificate
        self.agencies: dict[str, Agency] = {}
        self.groups: dict[str, tuple[str, ...]] = {}
        self.certificates: dict[str, TrustedCertificate] = {}  # signing certificates: verify senders
        # Encryption certificates are kept apart: a sender's signature is never looked up among them.
        self.encryption_certificates: dict[str, TrustedCertificate] = {}
        self.regimes: dict[str, Regime] = {}

    @property
    def ca_certificate(self) -> x509.Certificate:
        return self._ca

    def apply(self, entry: DirectoryEntry) -> None:
        if isinstance(entry, AgencyEntry):
            self.agencies[entry.code] = entry.agency()
        elif isinstance(entry, GroupEntry):
            self.groups[entry.name] = entry.members
        elif isinstance(entry, RegimeEntry):
            self.regimes[entry.regime.code] = entry.regime
        elif isinstance(entry, CertificateEntry):
            trusted = TrustedCertificate(entry.agency, entry.certificate(), entry.revoked_at)
            if entry.usage is CertificateUsage.ENCRYPTION:
                self.certificates.pop(entry.fingerprint, None)
                self.encryption_certificates[entry.fingerprint] = trusted
            else:
                self.encryption_certificates.pop(entry.fingerprint, None)
                self.certificates[entry.fingerprint] = trusted

    def remove(self, key: str) -> None:
        kind, _, ident = key.partition(":")
        if kind == "agency":
            self.agencies.pop(ident, None)
        elif kind == "group":
            self.groups.pop(ident, None)
        elif kind == "regime":
            self.regimes.pop(ident, None)
        elif kind == "certificate":
            self.certificates.pop(ident, None)
            self.encryption_certificates.pop(ident, None)

    def certificate(self, fingerprint: str) -> TrustedCertificate:
        try:
            return self.certificates[fingerprint]
        except KeyError:
            raise SignatureError(f"unknown sender: certificate {fingerprint[:16]}… is not in the directory",
                                 reason=Reason.UNKNOWN_SENDER) from None

    def encryption_certificate(self, code: str, at: dt.datetime) -> TrustedCertificate:
        """The agency's encryption certificate in force at `at`: published for it, issued by the bus CA, valid,
        not revoked, for key agreement only; the most recently issued one if several are."""
        usable: list[TrustedCertificate] = []
        for trusted in self.encryption_certificates.values():
            if trusted.agency != code or (trusted.revoked_at is not None and trusted.revoked_at <= at):
                continue
            try:
                check_encryption_certificate(trusted.certificate, self._ca, at)
                if trusted.subject_agency != code:  # the entry and the certificate must name one agency
                    continue
            except LienthongError:
                continue
            usable.append(trusted)
        if not usable:
            raise NotFoundError(f"agency {code} has no valid encryption certificate in the directory; the operator "
                                f"issues one with `lienthong agency add {code} --name …` and publishes the directory")
        return max(usable, key=lambda t: t.certificate.not_valid_before_utc)

    def regime(self, code: str) -> Regime:
        try:
            return self.regimes[code]
        except KeyError:
            raise AuthorizationError(f"reporting regime {code!r} is not in the directory; the operator adds it with "
                                     "`lienthong reports regime add` and publishes the directory",
                                     reason=Reason.UNKNOWN_REGIME) from None

    def agency(self, code: str) -> Agency:
        try:
            return self.agencies[code]
        except KeyError:
            raise AuthorizationError(f"agency {code} is not in the directory", reason=Reason.UNKNOWN_SENDER) from None

    def group_members(self, name: str) -> tuple[str, ...]:
        if name in self.groups:
            return self.groups[name]
        if name in KIND_GROUPS:
            kind = KIND_GROUPS[name]
            return tuple(sorted(code for code, agency in self.agencies.items() if agency.kind == kind))
        raise RoutingError(f"group {GROUP_PREFIX}{name} is not in the directory", reason=Reason.UNKNOWN_RECIPIENT)

    def expand(self, addresses: Iterable[str], *, sender: str | None = None) -> tuple[str, ...]:
        """Agency codes for a list of codes and group addresses, each once, in order, without the sender."""
        addresses = list(addresses)
        if not addresses:
            raise RoutingError("the message names no recipients", reason=Reason.NO_RECIPIENTS)
        out: dict[str, None] = {}
        for address in addresses:
            try:
                check_address(address)
            except LienthongError as exc:
                raise RoutingError(exc.message, reason=Reason.MALFORMED_AGENCY_CODE) from exc
            if is_group_address(address):
                members = self.group_members(address[len(GROUP_PREFIX):])
            else:
                if address not in self.agencies:
                    raise RoutingError(f"recipient {address} is not in the directory",
                                       reason=Reason.UNKNOWN_RECIPIENT)
                members = (address,)
            for code in members:
                if code != sender:
                    out[code] = None
        if not out:
            raise RoutingError("the recipients expand to no agency other than the sender",
                               reason=Reason.NO_RECIPIENTS)
        return tuple(out)
