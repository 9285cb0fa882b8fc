"""`lienthong kafka`: the local single-node broker, its transport identities and its ACLs."""

from __future__ import annotations

from dataclasses import dataclass, field

import typer
from rich.progress import Progress

from lienthong.certificates import BusCA, TlsFiles, ensure_tls_identity, write_tls_identity
from lienthong.cli.common import emit_json, out, settings, table
from lienthong.errors import ConfigurationError
from lienthong.settings import Settings
from lienthong.topics import Topics
from lienthong.transport.acls import (
    AUDITOR,
    BROKER,
    OPERATOR,
    ROUTER,
    AclAdmin,
    Grant,
    agency_principal,
    bus_grants,
)
from lienthong.transport.client import TlsClientConfig
from lienthong.transport.local_broker import LocalBroker, TlsMaterial
from lienthong.wiring import Bus

app = typer.Typer(help="Run the local Apache Kafka broker (one KRaft node on 127.0.0.1).", no_args_is_help=True)
tls_app = typer.Typer(help="Transport identities: TLS certificates from the bus CA, one per Kafka principal.",
                      no_args_is_help=True)
acls_app = typer.Typer(help="Kafka ACLs: what each agency, the router and the auditor may do on the bus.",
                       no_args_is_help=True)
app.add_typer(tls_app, name="tls")
app.add_typer(acls_app, name="acls")

TLS_OPTION_HELP = "Mutual TLS and ACLs (as LIENTHONG_SECURITY_PROTOCOL=SSL); without it: PLAINTEXT, local demo only"


def secure(s: Settings, tls: bool = True) -> Settings:
    """The settings with SSL switched on when asked (a --tls flag); as they are otherwise."""
    return s.model_copy(update={"security_protocol": "SSL"}) if tls else s


def broker_tls(s: Settings) -> TlsMaterial:
    """The local broker's TLS files in <home>/tls (broker.cert.pem, broker.key.pem, ca.cert.pem)."""
    files = TlsFiles.at(s.tls_dir, BROKER)
    return TlsMaterial(files.ca, files.certificate, files.key, super_users=(BROKER, OPERATOR))


def local_broker(s: Settings) -> LocalBroker:
    """The local broker; with TLS listeners and ACLs when the settings say SSL."""
    return LocalBroker(s.broker_dir, port=s.broker_port, controller_port=s.controller_port,
                       maven_repo=s.maven_repo, start_timeout_s=s.broker_start_timeout_s,
                       tls=broker_tls(s) if s.security_protocol == "SSL" else None)


def ensure_broker_identities(s: Settings) -> list[str]:
    """Issue the broker's and the operator's transport identities from the bus CA if missing; returns the new."""
    ca = BusCA.load_or_create(s.ca_dir)
    issued = []
    for name, server in ((BROKER, True), (OPERATOR, False)):
        if ensure_tls_identity(ca, s.tls_dir, name, server=server)[1]:
            issued.append(name)
    return issued


def fetch_with_progress(broker: LocalBroker) -> None:
    with Progress(transient=True) as progress:
        task = progress.add_task("Kafka jars", total=None)
        broker.fetch(lambda jar, cached: progress.update(task, advance=1, description=jar.filename))


@app.command()
def fetch(ctx: typer.Context) -> None:
    """Download the pinned Kafka jars from Maven Central and check their SHA-256."""
    broker = local_broker(settings(ctx))
    fetch_with_progress(broker)
    out.print(f"Kafka jars ready in {broker.libs}")


@app.command()
def up(ctx: typer.Context, tls: bool = typer.Option(False, "--tls", help=TLS_OPTION_HELP)) -> None:
    """Start the broker (fetching its jars first) and wait until it answers. Harmless if it already runs.

    With --tls (or LIENTHONG_SECURITY_PROTOCOL=SSL) both listeners take only clients with a certificate from the
    bus CA, and the broker allows only what `lienthong kafka acls apply` granted. The broker's and the operator's
    TLS identities are issued into <home>/tls the first time.
    """
    s = secure(settings(ctx), tls)
    if s.security_protocol == "SSL":
        for name in ensure_broker_identities(s):
            out.print(f"issued the {name} TLS identity in {s.tls_dir}")
    broker = local_broker(s)
    fetch_with_progress(broker)
    status = broker.up()
    mode = "mutual TLS and ACLs" if broker.tls else "PLAINTEXT, for the local demo only"
    out.print(f"Kafka broker {status.describe()} ({mode}); data and logs in {broker.folder}")


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the broker."""
    stopped = local_broker(settings(ctx)).down()
    out.print("Kafka broker stopped" if stopped else "Kafka broker was not running")


@app.command()
def status(ctx: typer.Context, tls: bool = typer.Option(False, "--tls", help="Ask over mutual TLS")) -> None:
    """Say whether the broker runs and answers; exit 1 if it does not."""
    state = local_broker(secure(settings(ctx), tls)).status()
    out.print(f"Kafka broker {state.describe()}")
    if not (state.running and state.answering):
        raise typer.Exit(1)


@tls_app.command("issue")
def tls_issue(ctx: typer.Context,
              names: list[str] = typer.Argument(..., help="Principal names: router, auditor, agency-<code>, …"),
              server: bool = typer.Option(False, "--server", help="Also for server authentication on 127.0.0.1"),
              force: bool = typer.Option(False, "--force", help="Issue a new key and certificate even if present"),
              ) -> None:
    """Issue transport identities from the bus CA into <home>/tls: <name>.key.pem (0600) and <name>.cert.pem.

    The certificate's subject is CN=<name>,OU=transport,O=lienthong; the broker takes User:<name> from it.
    """
    s = settings(ctx)
    ca = BusCA.load_or_create(s.ca_dir)
    for name in names:
        if force:
            files, issued = write_tls_identity(ca, s.tls_dir, name, server=server), True
        else:
            files, issued = ensure_tls_identity(ca, s.tls_dir, name, server=server)
        out.print(f"{'issued' if issued else 'kept the existing'} TLS identity User:{name}: {files.certificate}, "
                  f"key {files.key}")


@dataclass
class AclsApplied:
    """What `acls apply` did: the grants sent to the broker and the identities it issued."""

    grants: list[Grant]
    issued: list[str] = field(default_factory=list)


def apply_acls(s: Settings, agencies: list[str], *, issue_identities: bool = True) -> AclsApplied:
    """Grant the router, the auditor and each agency what they need (and issue their missing identities)."""
    s = secure(s)
    issued: list[str] = []
    if issue_identities:
        ca = Bus(s).ca(create=True)
        for name in [ROUTER, AUDITOR, *(agency_principal(code) for code in agencies)]:
            if ensure_tls_identity(ca, s.tls_dir, name)[1]:
                issued.append(name)
    grants = bus_grants(Topics(s.topic_prefix), agencies)
    admin = acl_admin(s)
    try:
        admin.apply(grants)
    finally:
        admin.close()
    return AclsApplied(sorted(set(grants)), issued)


def acl_admin(s: Settings) -> AclAdmin:
    tls = Bus(secure(s)).tls
    if not isinstance(tls, TlsClientConfig):
        raise ConfigurationError("ACLs need mutual TLS; set LIENTHONG_SECURITY_PROTOCOL=SSL")
    return AclAdmin(s.bootstrap, tls)


def _grant_rows(grants: list[Grant]) -> list[list[str]]:
    return [[f"User:{g.principal}", g.operation, g.resource, g.name + ("*" if g.prefixed else "")] for g in grants]


@acls_app.command("apply")
def acls_apply(ctx: typer.Context,
               identities: bool = typer.Option(True, "--identities/--no-identities",
                                               help="Issue missing TLS identities for the router, the auditor and "
                                                    "each agency into <home>/tls"),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Grant every agency in the directory, the router and the auditor their ACLs. Run it after `agency add`.

    Connects as the operator (a super user; LIENTHONG_TLS_IDENTITY, default operator). Each agency may write to
    ingress, read its own inbox with its own consumer group and read the directory; the router may read ingress
    and write every inbox, audit, DLQ and its seen ids, in transactions; the auditor may read the audit topic.
    """
    s = settings(ctx)
    store = Bus(s).directory_store()
    try:
        agencies = [a.code for a in store.agencies()]
    finally:
        store.close()
    applied = apply_acls(s, agencies, issue_identities=identities)
    if as_json:
        emit_json({"issued": applied.issued, "grants": [g.__dict__ for g in applied.grants]})
        return
    for name in applied.issued:
        out.print(f"issued the TLS identity User:{name} in {secure(s).tls_dir}")
    table(f"{len(applied.grants)} ACLs for {len(agencies)} agencies, the router and the auditor",
          ["principal", "operation", "resource", "name"], _grant_rows(applied.grants))


@acls_app.command("show")
def acls_show(ctx: typer.Context,
              principal: str | None = typer.Option(None, "--principal", help="Only this one, e.g. router"),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """List the ACLs on the broker."""
    admin = acl_admin(settings(ctx))
    try:
        grants = admin.granted(principal)
    finally:
        admin.close()
    if as_json:
        emit_json([g.__dict__ for g in grants])
        return
    table(None, ["principal", "operation", "resource", "name"], _grant_rows(grants))


@acls_app.command("revoke")
def acls_revoke(ctx: typer.Context,
                principal: str = typer.Argument(..., help="e.g. agency-000.00.00.G22")) -> None:
    """Delete every ACL of one principal, for an agency that leaves the bus; its certificate then opens nothing."""
    admin = acl_admin(settings(ctx))
    try:
        count = admin.revoke_principal(principal)
    finally:
        admin.close()
    out.print(f"deleted {count} ACLs of User:{principal}")

