"""The one settings object, read from LIENTHONG_* variables at the entry point and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _repo_var() -> Path:
    return Path.cwd() / "var"


class Settings(BaseSettings):
    """Where the bus is, where local state lives, and the limits it enforces."""

    model_config = SettingsConfigDict(env_prefix="LIENTHONG_", extra="ignore")

    home: Path = Field(default_factory=_repo_var, description="Folder for local state: keys, databases, broker.")
    bootstrap: str = Field("", description="Kafka bootstrap servers, host:port[,host:port]; "
                           "default: the local broker, 127.0.0.1:<broker_port>.")
    topic_prefix: str = Field("lienthong", description="Prefix of every bus topic.")
    directory_url: str | None = Field(None, description="SQLAlchemy URL of the directory (default: SQLite in home).")
    audit_url: str | None = Field(None, description="SQLAlchemy URL of the audit store (default: SQLite in home).")
    outbox_url: str | None = Field(None, description="SQLAlchemy URL of the gateway outbox (default: SQLite in home).")
    projections_url: str | None = Field(None, description="SQLAlchemy URL of an agency's projections: reports, "
                                        "ballots, dossier status (default: SQLite in home).")
    max_message_bytes: int = Field(1_000_000, description="Largest record the gateway will publish.")
    ingress_partitions: int = Field(3, ge=1)
    replication_factor: int = Field(1, ge=1)
    maven_repo: str = Field("https://repo1.maven.org/maven2", description="Where the broker jars come from.")
    broker_port: int = Field(9092, description="Port of the local broker's client listener.")
    controller_port: int = Field(9093, description="Port of the local broker's KRaft controller listener.")
    broker_start_timeout_s: float = Field(60.0, gt=0)
    metrics_port: int | None = Field(None, description="Serve /metrics on <metrics_host>:<port> from services.")
    metrics_host: str = "127.0.0.1"
    inbox_retention_ms: int = Field(-1, ge=-1, description="Retention of inbox topics; -1 keeps everything, "
                                    "so a receiver that was away long loses nothing.")
    audit_retention_ms: int = Field(-1, ge=-1, description="Retention of the audit and DLQ topics; -1 keeps "
                                    "everything, so the audit store can always be rebuilt from the topic.")
    checkpoint_rows: int = Field(1000, ge=1, description="The projector signs a checkpoint every this many rows…")
    checkpoint_seconds: float = Field(60.0, gt=0, description="…or after this many seconds, whichever comes first.")
    router_batch_size: int = Field(500, ge=1)
    router_producer_batch_bytes: int = Field(262_144, ge=16_384, le=4_194_304,
                                             description="The router's producer batch per partition: larger batches "
                                             "mean fewer produce requests per transaction (kafka-python's default "
                                             "is 16 KiB).")
    router_session_timeout_ms: int = Field(10_000, ge=6_000, description="How soon the group notices a dead router.")
    router_transaction_timeout_ms: int = Field(15_000, ge=1_000,
                                               description="How soon a dead router's open transaction is aborted.")
    duplicate_window_s: int = Field(7 * 24 * 3600, ge=60,
                                    description="How long delivered message ids are remembered; older messages "
                                    "are refused as stale.")
    clock_skew_s: int = Field(300, ge=0, description="How far in the future a message's time may be.")

    # --- Transport isolation: mutual TLS to the broker, whose ACLs decide what this identity may do. ---
    # PLAINTEXT is for the local demo only: whoever reaches the port may read and write every topic.
    security_protocol: Literal["PLAINTEXT", "SSL"] = Field(
        "PLAINTEXT", description="PLAINTEXT (local demo only) or SSL: mutual TLS with a certificate from the bus CA; "
        "the local broker then starts with TLS listeners and ACLs too.")
    tls_identity: str = Field("operator", description="The transport identity under <home>/tls/ this process "
                              "presents when tls_cert and tls_key are not set: its Kafka principal, e.g. operator, "
                              "router, auditor, agency-000.00.00.G22.")
    tls_ca: Path | None = Field(None, description="PEM certificate of the CA that issued the broker's certificate "
                                "(default <home>/tls/ca.cert.pem).")
    tls_cert: Path | None = Field(None, description="PEM client certificate "
                                  "(default <home>/tls/<tls_identity>.cert.pem).")
    tls_key: Path | None = Field(None, description="PEM client key, mode 0600 "
                                 "(default <home>/tls/<tls_identity>.key.pem).")

    @model_validator(mode="after")
    def _default_bootstrap(self) -> Settings:
        if not self.bootstrap:
            self.bootstrap = f"127.0.0.1:{self.broker_port}"
        return self

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_topic_safe(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not value or set(value) - allowed:
            raise ValueError("topic prefix may hold only letters, digits, '.', '_' and '-'")
        return value

    @field_validator("tls_identity")
    @classmethod
    def _identity_is_a_principal_name(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not value or set(value) - allowed:
            raise ValueError("TLS identity may hold only letters, digits, '.', '_' and '-'")
        return value

    @property
    def tls_dir(self) -> Path:
        """Transport identities (CA certificate, <name>.cert.pem, <name>.key.pem), apart from the signing keys."""
        return self.home / "tls"

    def tls_files(self) -> tuple[Path, Path, Path] | None:
        """(CA certificate, client certificate, client key) this process presents; None over PLAINTEXT."""
        if self.security_protocol != "SSL":
            return None
        return (self.tls_ca or self.tls_dir / "ca.cert.pem",
                self.tls_cert or self.tls_dir / f"{self.tls_identity}.cert.pem",
                self.tls_key or self.tls_dir / f"{self.tls_identity}.key.pem")

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def ca_dir(self) -> Path:
        return self.home / "ca"

    @property
    def inbox_dir(self) -> Path:
        return self.home / "inbox"

    @property
    def broker_dir(self) -> Path:
        return self.home / "kafka"

    def directory_db_url(self) -> str:
        return self.directory_url or f"sqlite:///{self.home / 'directory.db'}"

    def audit_db_url(self) -> str:
        return self.audit_url or f"sqlite:///{self.home / 'audit.db'}"

    def projections_db_url(self) -> str:
        return self.projections_url or f"sqlite:///{self.home / 'projections.db'}"
