"""`lienthong dossier`: commands of this flow (being built)."""

from __future__ import annotations

import typer

app = typer.Typer(help="dossier", no_args_is_help=True)
