"""`lienthong router run` and `lienthong projector run`: the long-running services."""

from __future__ import annotations

import logging
import threading

import typer

from consumers.audit_projector import AuditProjector
from lienthong import logs
from lienthong.cli.common import bus, out
from lienthong.db import display_url
from lienthong.metrics import ProjectorMetrics, RouterMetrics, serve
from lienthong.signals import stop_on_signals
from router.service import Router

router_app = typer.Typer(help="The routing service.", no_args_is_help=True)
projector_app = typer.Typer(help="The audit projector.", no_args_is_help=True)


@router_app.command("run")
def run_router(ctx: typer.Context,
               instance: str = typer.Option("router-1", "--instance",
                                            help="Stable name of this instance; its transactional id"),
               verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Route ingress to inboxes until SIGINT or SIGTERM."""
    logs.configure(logging.INFO if verbose else logging.WARNING, client_logs=True)
    b = bus(ctx)
    metrics = RouterMetrics()
    if b.settings.metrics_port:
        serve(metrics.registry, b.settings.metrics_port, b.settings.metrics_host)
    router = Router(b, instance, metrics, settle_heap=True)
    stop = threading.Event()
    out.print(f"router {instance} starting on {b.settings.bootstrap} (it waits for the broker if it is not up); "
              "Ctrl-C stops it")
    try:
        with stop_on_signals(stop):
            router.run(stop)  # waits for the broker if it is not there yet, and through any later outage
    finally:
        router.close()


@projector_app.command("run")
def run_projector(ctx: typer.Context, verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Project audit events into the audit database until SIGINT or SIGTERM."""
    logs.configure(logging.INFO if verbose else logging.WARNING, client_logs=True)
    b = bus(ctx)
    store = b.audit_store(writer=True)
    metrics = ProjectorMetrics()
    if b.settings.metrics_port:
        serve(metrics.registry, b.settings.metrics_port, b.settings.metrics_host)
    projector = AuditProjector.connect(b, store, metrics=metrics)
    stop = threading.Event()
    out.print(f"audit projector consuming {b.topics.audit} into {display_url(b.settings.audit_db_url())}")
    try:
        with stop_on_signals(stop):
            projector.run(stop)
    finally:
        projector.close()
        store.close()
