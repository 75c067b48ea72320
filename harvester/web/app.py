"""The review app: server-rendered pages and the JSON API under /api/v1."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from harvester import __version__
from harvester.web.deps import LoginRequired
from harvester.web.security import SecurityHeadersMiddleware
from harvester.web.transactions import CommitFirstMiddleware, database_error
from storage.db import session_factory

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


def create_app(engine: Engine | None = None) -> FastAPI:
    from harvester.web import routes_api, routes_dashboard, routes_ops, routes_pages

    app = FastAPI(title="CHM Harvester review", version=__version__, docs_url=None,
                  openapi_url="/api/v1/openapi.json", redoc_url=None)
    app.state.session_factory = session_factory(engine) if engine is not None else None
    app.add_middleware(CommitFirstMiddleware)  # inside the security headers: a 503 it sends gets them too
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_exception_handler(DBAPIError, database_error)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(routes_pages.router)
    app.include_router(routes_ops.router)
    app.include_router(routes_dashboard.router)
    app.include_router(routes_api.router)
    from harvester.web import routes_chm

    app.include_router(routes_chm.router)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    return app
