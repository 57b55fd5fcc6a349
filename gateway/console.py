"""The operators' console: static pages served at /console that use only the public HTTP API.

The assets ship inside the package (gateway/console/) and load nothing from the network. The
operator's token is held in the page's memory and sent as a bearer header: no cookie exists
for another site to ride, and the content security policy allows scripts and connections to
this origin only.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "console"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def install(app: FastAPI) -> None:
    app.mount("/console/assets", StaticFiles(directory=ASSETS), name="console-assets")

    @app.get("/console", include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(ASSETS / "index.html", headers=HEADERS)
