"""The one error tree of lienthong: every failure a person or a DLQ record can act on."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Stable reason codes: the same code goes into the DLQ header, the audit row and the metric label."""

    NOT_SINGLE_OBJECT = "not-single-object"
    UNKNOWN_SCHEMA = "unknown-schema"
    MALFORMED_AVRO = "malformed-avro"
    INVALID_CONTENT = "invalid-content"
    UNKNOWN_SENDER = "unknown-sender"
    UNKNOWN_CERTIFICATE = "unknown-certificate"
    CERTIFICATE_NOT_VALID = "certificate-not-valid"
    CERTIFICATE_REVOKED = "certificate-revoked"
    SENDER_MISMATCH = "sender-mismatch"
    BAD_SIGNATURE = "bad-signature"
    UNKNOWN_RECIPIENT = "unknown-recipient"
    NO_RECIPIENTS = "no-recipients"
    MALFORMED_AGENCY_CODE = "malformed-agency-code"
    MESSAGE_TOO_LARGE = "message-too-large"
    INVALID_TRANSITION = "invalid-transition"
    CONFIGURATION = "configuration"
    BROKER_UNAVAILABLE = "broker-unavailable"
    NOT_FOUND = "not-found"
    WRONG_KIND = "wrong-kind"
    FROM_THE_FUTURE = "from-the-future"
    INTERNAL_ERROR = "internal-error"
    DUPLICATE = "duplicate"
    KEY_MISMATCH = "key-mismatch"
    STALE = "stale"
    NOT_AUTHORIZED = "not-authorized"
    CANNOT_DECRYPT = "cannot-decrypt"
    UNKNOWN_DOCUMENT = "unknown-document"  # a lifecycle request or notice about a story the router never routed
    NOT_A_PARTY = "not-a-party"  # a notice or ballot answer from an agency the story never addressed
    UNKNOWN_REGIME = "unknown-regime"
    PERIOD_NOT_OPEN = "period-not-open"  # a report for a period that has not closed yet, or was closed long ago
    UNKNOWN_INDICATOR = "unknown-indicator"
    UNKNOWN_BALLOT = "unknown-ballot"
    ALREADY_ANSWERED = "already-answered"
    PAST_DEADLINE = "past-deadline"
    IMPOSSIBLE_DATE = "impossible-date"


class LienthongError(Exception):
    """Root of every lienthong error: a reason code and a sentence a person can act on."""

    reason: Reason = Reason.INVALID_CONTENT

    def __init__(self, message: str, *, reason: Reason | None = None, raw: bytes | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.message = message
        self.raw = raw


class DecodingError(LienthongError):
    """Bytes that are not a message this bus can read."""

    reason = Reason.MALFORMED_AVRO


class SignatureError(LienthongError):
    """A signature, a certificate or the signer's identity does not hold."""

    reason = Reason.BAD_SIGNATURE


class AuthorizationError(LienthongError):
    """The sender may not do what the message asks."""

    reason = Reason.UNKNOWN_SENDER


class RoutingError(LienthongError):
    """The recipients of a message cannot be resolved."""

    reason = Reason.UNKNOWN_RECIPIENT


class ValidationError(LienthongError, ValueError):
    """A value given by a user or a message breaks a rule of the domain."""

    reason = Reason.INVALID_CONTENT


class ConfigurationError(LienthongError):
    """Settings, files or services the process needs are missing or wrong."""

    reason = Reason.CONFIGURATION


class BrokerError(LienthongError):
    """The Kafka broker cannot be reached or refused a request."""

    reason = Reason.BROKER_UNAVAILABLE


class NotFoundError(LienthongError):
    """A document, agency or file that was asked for does not exist."""

    reason = Reason.NOT_FOUND


class FencedError(BrokerError):
    """Another instance with the same transactional id took over: this one must stop."""


class BrokerAuthorizationError(BrokerError):
    """The broker refused a request: this client's principal has no ACL that allows it. Waiting does not help;
    the identity or the ACLs must be fixed by the operator."""

    reason = Reason.NOT_AUTHORIZED


def first_error(exc: Any) -> tuple[str, Reason]:
    """The first error of a pydantic ValidationError as one line ('field: what is wrong'), and its reason: the
    LienthongError's a validator raised, else invalid-content."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    text = first["msg"].removeprefix("Value error, ")
    cause = first.get("ctx", {}).get("error")
    return (f"{where}: {text}" if where else text), (
        cause.reason if isinstance(cause, LienthongError) else Reason.INVALID_CONTENT)
