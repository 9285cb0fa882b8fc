"""Log set-up for entry points: one line per event, structured fields appended as key=value."""

from __future__ import annotations

import logging
import sys

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


def configure(level: int = logging.WARNING, *, client_logs: bool = False) -> None:
    """Log to stderr. kafka-python reports every failed connection attempt as an ERROR; a command that waits
    for the broker says so itself in one line, so the client's own lines show only for services (client_logs)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(max(level, logging.WARNING) if client_logs else logging.CRITICAL)
