"""Notices shown after a redirect (``?message=...&sig=...``): only text this app issued to this session.

A notice travels in the URL so a reload shows it again, but a link anyone can craft must not put their
words on the page as an official message (phishing). Each notice is signed with HMAC-SHA256 keyed by the
session's CSRF secret, which never leaves the session's own pages: a forged, altered or foreign notice is
simply not shown.
"""

from __future__ import annotations

import hashlib
import hmac

from harvester.web.auth import SessionUser

MAX_NOTICE = 2000


def _signature(user: SessionUser, text: str) -> str:
    return hmac.new(user.csrf_token.encode(), text.encode(), hashlib.sha256).hexdigest()


def notice(user: SessionUser, text: str) -> dict[str, str]:
    """Query parameters that show ``text`` to this session after a redirect."""
    text = text[:MAX_NOTICE]
    return {"message": text, "sig": _signature(user, text)}


def verified(user: SessionUser, message: str | None, sig: str | None) -> str | None:
    """The message if this app issued it to this session, else nothing."""
    if not message or not sig or len(message) > MAX_NOTICE:
        return None
    return message if hmac.compare_digest(_signature(user, message), sig) else None
