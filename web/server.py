"""The uvicorn configuration of the web app: one place for ``scheduler.py`` and the tests."""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette

from core.settings import Settings
from web.limits import WS_MAX_MESSAGE_BYTES


def server_config(app: Starlette, settings: Settings, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=5,
        ws="websockets-sansio",
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        # permessage-deflate costs ~45 us of CPU per event per client (0.1 core for one
        # client at 2,000 events/s): off unless asked for (docs/performance.md).
        ws_per_message_deflate=settings.ws_compression,
    )
