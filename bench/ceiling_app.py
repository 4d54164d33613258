"""The yardstick: a trivial constant-JSON FastAPI route, served by uvicorn with the auth server's settings.

Whatever this serves on a machine is that machine's ceiling for FastAPI on uvicorn (uvloop, the same
httptools-based protocol as ``authserver serve``, same worker count); every benchmark row is also reported
as a ratio to it.
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/")
async def constant() -> dict[str, str]:
    return {"status": "ok"}
