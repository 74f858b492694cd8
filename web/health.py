"""``GET /health``: do NATS and the database answer?"""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from web.services import Services


async def check_database(services: Services) -> str | None:
    try:
        async with asyncio.timeout(2):
            async with services.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


async def check_nats(services: Services) -> str | None:
    if not services.nc.is_connected:
        return "not connected"
    try:
        await services.nc.flush(timeout=2)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
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
