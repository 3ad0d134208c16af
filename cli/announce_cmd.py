"""``svomflow announce``: send product announcements from the outbox to NATS JetStream."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from svomflow.cli._common import redact_url, user_errors
from svomflow.errors import SvomflowError

__all__ = ["announce"]


@user_errors
def announce(
    servers: Annotated[
        list[str] | None,
        typer.Option(
            "--server", help="NATS server URL (repeat; default $SVOMFLOW_NATS_SERVERS or local)."
        ),
    ] = None,
    stream: Annotated[
        str | None,
        typer.Option(
            help="JetStream stream (default $SVOMFLOW_ANNOUNCE_STREAM or SVOMFLOW_PRODUCTS)."
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(
            help="Subject prefix (default $SVOMFLOW_ANNOUNCE_PREFIX or svomflow.product)."
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Products database URL (default $SVOMFLOW_DATABASE_URL or SQLite).",
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Send what is pending, then exit (no relay loop).")
    ] = False,
    status: Annotated[
        bool, typer.Option("--status", help="Show pending and sent counts, then exit.")
    ] = False,
    poll: Annotated[float, typer.Option(help="Seconds between looks at the outbox.", min=0.05)] = (
        0.5
    ),
) -> None:
    """Relay product announcements to NATS: pending ones at start, then each new version."""
    import asyncio
    import logging
    import signal

    import nats.errors
    from svomflow.operations.announce import RelaySettings, outbox_counts, relay_once, run_relay
    from svomflow.products.announcements import (
        NATS_ENV,
        STREAM,
        STREAM_ENV,
        BusSettings,
        default_prefix,
    )

    if status:
        c = outbox_counts(database_url)
        oldest = (
            f", oldest pending {c.oldest_pending:%Y-%m-%d %H:%M:%S}" if c.oldest_pending else ""
        )
        typer.echo(f"{c.pending} pending, {c.sent} sent{oldest}")
        if c.last_error:
            typer.echo(f"last error: {c.last_error}")
        return
    urls = list(servers or [])
    if not urls and os.environ.get(NATS_ENV):
        urls = [s.strip() for s in os.environ[NATS_ENV].split(",") if s.strip()]
    for url in urls:
        if not url.startswith(("nats://", "tls://", "ws://", "wss://")):
            raise SvomflowError(f"--server {url!r} is not a NATS URL (nats://host:port)")
    bus = BusSettings(
        servers=tuple(urls) or BusSettings().servers,
        stream=stream or os.environ.get(STREAM_ENV, "").strip() or STREAM,
        prefix=prefix or default_prefix(),
    )
    settings = RelaySettings(bus=bus, database_url=database_url, poll_s=poll)
    where = ", ".join(redact_url(u) for u in bus.servers)
    if once:
        try:
            n = relay_once(settings)
        except (OSError, TimeoutError) as exc:
            raise SvomflowError(
                f"NATS at {where} unavailable: {exc or type(exc).__name__}"
            ) from None
        except nats.errors.Error as exc:  # every nats-py error, JetStream's included
            raise SvomflowError(f"NATS at {where}: {exc or type(exc).__name__}") from None
        typer.echo(f"sent {n} announcement(s) to {bus.stream} at {where}")
        return
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def on_event(kind: str, info: dict[str, Any]) -> None:
            if kind == "ready":
                typer.echo(
                    f"relaying announcements to {info['stream']} at {where} "
                    f"({info['pending']} pending at start)"
                )

        await run_relay(settings, stop, on_event=on_event)

    try:
        asyncio.run(main())
    except (OSError, TimeoutError) as exc:
        raise SvomflowError(f"NATS at {where} unavailable: {exc or type(exc).__name__}") from None
