"""Security headers on every response and CSRF checks on every state-changing request."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SecurityHeadersMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if has_nul(request):  # PostgreSQL refuses NUL in text: a filter like ?q=%00 would end in a 500
            response: Response = PlainTextResponse("bad request: NUL byte in the URL", status_code=400)
        else:
            response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith(("/api/", "/queue", "/candidates", "/audit", "/admin")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def has_nul(request: Request) -> bool:
    """A NUL byte (raw or %00) in the path or query string."""
    return "\x00" in request.scope.get("path", "") or b"%00" in request.scope.get("query_string", b"").lower()


def same_origin(request: Request) -> bool:
    """Unsafe requests from another site are refused (Origin, else Sec-Fetch-Site, else Referer)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin:
        parts = urlsplit(origin)
        return parts.netloc == request.url.netloc
    return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


def tokens_match(given: str | None, expected: str | None) -> bool:
    return bool(given and expected) and secrets.compare_digest(str(given), str(expected))
