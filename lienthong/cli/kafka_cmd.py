"""`lienthong kafka`: the local single-node broker."""

from __future__ import annotations

import typer
from rich.progress import Progress

from lienthong.cli.common import out, settings
from lienthong.settings import Settings
from lienthong.transport.local_broker import LocalBroker

app = typer.Typer(help="Run the local Apache Kafka broker (one KRaft node on 127.0.0.1).", no_args_is_help=True)


def local_broker(s: Settings) -> LocalBroker:
    return LocalBroker(s.broker_dir, port=s.broker_port, controller_port=s.controller_port,
                       maven_repo=s.maven_repo, start_timeout_s=s.broker_start_timeout_s)


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
def up(ctx: typer.Context) -> None:
    """Start the broker (fetching its jars first) and wait until it answers. Harmless if it already runs."""
    broker = local_broker(settings(ctx))
    fetch_with_progress(broker)
    status = broker.up()
    out.print(f"Kafka broker {status.describe()}; data and logs in {broker.folder}")


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the broker."""
    stopped = local_broker(settings(ctx)).down()
    out.print("Kafka broker stopped" if stopped else "Kafka broker was not running")


@app.command()
def status(ctx: typer.Context) -> None:
    """Say whether the broker runs and answers; exit 1 if it does not."""
    state = local_broker(settings(ctx)).status()
    out.print(f"Kafka broker {state.describe()}")
    if not (state.running and state.answering):
        raise typer.Exit(1)
