"""The review app: server-rendered pages and the JSON API under /api/v1."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from harvester import __version__
from harvester.web.deps import LoginRequired
from harvester.web.security import HeadAsGetMiddleware, SecurityHeadersMiddleware
from harvester.web.templating import HERE, templates
from harvester.web.transactions import CommitFirstMiddleware, database_error
from storage.db import session_factory


def create_app(engine: Engine | None = None) -> FastAPI:
    from harvester.web import routes_api, routes_dashboard, routes_ops, routes_pages

    app = FastAPI(
        title="CHM Harvester review",
        version=__version__,
        docs_url=None,
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
    )
    app.state.session_factory = session_factory(engine) if engine is not None else None
    app.add_middleware(CommitFirstMiddleware)  # inside the security headers: a 503 it sends gets them too
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(HeadAsGetMiddleware)
    app.add_exception_handler(DBAPIError, database_error)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(routes_pages.router)
    app.include_router(routes_ops.router)
    app.include_router(routes_dashboard.router)
    app.include_router(routes_api.router)
    from harvester.web import routes_chm

    app.include_router(routes_chm.router)
    from harvester.web import routes_second_review

    app.include_router(routes_second_review.router)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_json(request):
            return await http_exception_handler(request, exc)
        return _error_page(request, exc.status_code, [str(exc.detail)], exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if _wants_json(request):
            return await request_validation_exception_handler(request, exc)
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        return _error_page(request, 422, problems[:10], None)

    return app


def _wants_json(request: Request) -> bool:
    """The API (and charts' data) answer errors as JSON; a browser gets a page."""
    return request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", "text/html")


def _error_page(request: Request, status: int, problems: list[str], headers: dict[str, str] | None) -> Response:
    """An HTML error page; the problems (which may quote input) are escaped like any other text."""
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "problems": problems}, status_code=status, headers=headers
    )
