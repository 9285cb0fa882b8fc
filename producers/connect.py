"""Gateways wired from the settings: direct to the broker, or through the local outbox."""

from __future__ import annotations

from lienthong.directory.sync import DirectoryFollower
from lienthong.wiring import Bus
from producers.gateway import DirectSink, Gateway, OutboxSink, Sink
from producers.outbox import Outbox, Relay


def outbox_url(bus: Bus) -> str:
    return bus.settings.outbox_url or f"sqlite:///{bus.settings.home / 'outbox.db'}"


def relay_for(bus: Bus, box: Outbox) -> Relay:
    return Relay(box, bus.settings.bootstrap,
                 lambda: bus.publisher(client_id="outbox-relay", max_block_ms=10_000, delivery_timeout_ms=30_000),
                 bus.tls)


def gateway(bus: Bus, agency: str, *, outbox: bool = False, wait_s: float = 10.0,
            confidential: bool = False) -> Gateway:
    """A gateway for `agency` with its key from the keystore; with outbox=True, sends survive a broker outage;
    with confidential=True, it follows the directory topic to find recipients' encryption certificates."""
    signer = bus.keystore().signer(agency)
    directory: DirectoryFollower | None = bus.directory_follower() if confidential else None  # read at each send
    sink: Sink
    try:
        if outbox:
            box = Outbox(outbox_url(bus))
            sink = OutboxSink(box, relay_for(bus, box), agency, wait_s)
        else:
            sink = DirectSink(bus.publisher(client_id=f"gateway-{agency}"))
    except BaseException:
        if directory is not None:
            directory.close()
        raise
    return Gateway(signer, agency, sink, bus.envelopes, bus.topics, bus.settings.max_message_bytes, directory)
