"""An ``apprise`` channel with a ``mailto://`` URL delivers through a real SMTP server
(aiosmtpd, started by the test), queued and run like any delivery."""

from __future__ import annotations

import asyncio
from email import message_from_bytes
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from core.natsserver import EmbeddedNats, free_port
from core.settings import Settings
from storage.db import init_db, make_engine
from tests.conftest import isolated_env
from tests.helpers import collect_events, running_worker
from tests.jobs.alerts.helpers import add_change, add_channel, add_device, eventually, notifications


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


async def test_an_apprise_mailto_channel_sends_the_email(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    inbox = Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    settings = Settings(**isolated_env(nats_server.url, tmp_path))  # type: ignore[arg-type]
    engine = make_engine(settings)
    await init_db(engine)
    try:
        url = (f"mailto://127.0.0.1:{port}?from=fleetprobe@example.com"
               "&to=oncall@example.com&secure=no")  # fmt: skip
        await add_channel(engine, url, kind="apprise", name="mail")
        device = await add_device(engine, name="db-1")
        async with collect_events(settings) as events, running_worker(settings) as broker:
            from jobs.alerts.enqueue import enqueue_change

            await enqueue_change(engine, broker, await add_change(engine, device, 1, "up", "down"))
            await eventually(lambda: len(inbox.messages) >= 1, what="an email")
            await eventually(
                lambda: any(e["type"] == "notification.sent" for e in events), what="sent event"
            )
            await asyncio.sleep(0.3)
        ((sender, recipients, content),) = inbox.messages
        assert sender == "fleetprobe@example.com" and recipients == ["oncall@example.com"]
        email = message_from_bytes(content)
        assert email["Subject"] == "db-1 is DOWN"
        assert "db-1" in content.decode(errors="replace")
        (row,) = await notifications(engine)
        assert (row.status, row.attempts) == ("sent", 1)
    finally:
        smtp.stop()
        await engine.dispose()
