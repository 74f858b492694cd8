"""``GET /health``: do NATS and the database answer?"""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from core.natsurl import redact
from web.services import Services

# How long each answer is waited for.
CHECK_SECONDS = 2


async def check_database(services: Services) -> str | None:
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            async with services.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except TimeoutError:
        return f"the database did not answer SELECT 1 within {CHECK_SECONDS:g}s"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


async def check_nats(services: Services) -> str | None:
    """What does not answer, and where (never an empty reason)."""
    where = redact(services.settings.nats_url)
    nc = services.nc
    if not nc.is_connected:
        state = "reconnecting" if nc.is_reconnecting else "not connected"
        return f"{state}: no NATS server answers at {where}"[:200]
    try:
        await nc.flush(timeout=CHECK_SECONDS)
    except TimeoutError:
        return f"NATS at {where} did not answer a ping within {CHECK_SECONDS:g}s"[:200]
    except Exception as exc:
        return f"NATS at {where}: {type(exc).__name__}: {exc}"[:200]
    return None


async def health(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    db_error, nats_error = await asyncio.gather(check_database(services), check_nats(services))
    ok = db_error is None and nats_error is None
    body = {
        "status": "ok" if ok else "degraded",
        "database": {"ok": db_error is None, "error": db_error},
        "nats": {"ok": nats_error is None, "error": nats_error},
    }
    return JSONResponse(body, status_code=200 if ok else 503)
