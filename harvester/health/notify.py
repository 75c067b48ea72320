"""Send source-health alerts by e-mail (SMTP) and to a webhook (JSON POST), each alert once.

Alerts are claimed before sending (``notified_at`` set where it was null, in its own short
transaction), so two scheduler threads never send the same alert twice and no database lock is held
while talking to a mail server. A channel that fails is logged and recorded in ``notify_error``;
the alert itself stays open and visible on the sources page. Nothing here raises into the scheduler.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select, update

from harvester.health.checks import alert_json
from harvester.settings import Settings, get_settings
from storage.db import session_factory, transaction
from storage.models import Alert
from storage.runs import now

log = logging.getLogger("harvester.health.notify")
TIMEOUT_S = 10.0


@dataclass
class Delivery:
    alert_id: int
    sent: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def channels(settings: Settings) -> list[str]:
    out = []
    if settings.alert_smtp_host and settings.alert_email_to:
        out.append("email")
    if settings.alert_webhook_url:
        out.append("webhook")
    return out


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The webhook body: the alert as ``harvester sources health --json`` shows it, plus a ``text`` line."""
    data = {k: _jsonable(v) for k, v in alert_json(alert).items()}
    return {
        "event": "alert",
        "text": f"[CHM Harvester] {alert.kind} on {alert.source_id}: {alert.message}",
        "alert": data,
    }


def send_email(settings: Settings, alert: Alert) -> None:
    message = EmailMessage()
    message["Subject"] = f"[CHM Harvester] {alert.kind} on {alert.source_id}"
    message["From"] = settings.alert_email_from
    message["To"] = ", ".join(a.strip() for a in (settings.alert_email_to or "").split(",") if a.strip())
    created = _jsonable(alert.created_at)
    message.set_content(
        f"{alert.message}\n\nsource: {alert.source_id}\nkind: {alert.kind}\n"
        f"subject: {alert.subject or '-'}\nrun: {alert.run_id or '-'}\nopened: {created}\n"
        f"details: {json.dumps(alert.details or {}, sort_keys=True, default=str)}\n"
    )
    assert settings.alert_smtp_host is not None
    with smtplib.SMTP(settings.alert_smtp_host, settings.alert_smtp_port, timeout=TIMEOUT_S) as smtp:
        if settings.alert_smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.alert_smtp_user:
            password = settings.alert_smtp_password.get_secret_value() if settings.alert_smtp_password else ""
            smtp.login(settings.alert_smtp_user, password)
        smtp.send_message(message)


def send_webhook(settings: Settings, alert: Alert) -> None:
    assert settings.alert_webhook_url is not None
    body = json.dumps(alert_payload(alert), default=str).encode()
    request = urllib.request.Request(
        settings.alert_webhook_url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": settings.user_agent},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        response.read()


SENDERS = {"email": send_email, "webhook": send_webhook}


def _claim(alert_id: int) -> bool:
    with transaction() as session:
        result = session.execute(
            update(Alert).where(Alert.id == alert_id, Alert.notified_at.is_(None)).values(notified_at=now())
        )
        return bool(getattr(result, "rowcount", 0))


def deliver_new_alerts(settings: Settings | None = None) -> list[Delivery]:
    """Send every open alert not sent yet through the configured channels; never raises."""
    try:
        return _deliver(settings or get_settings())
    except Exception:  # the scheduler must go on even if the database hiccups here
        log.exception("alert delivery failed")
        return []


def _deliver(settings: Settings) -> list[Delivery]:
    wanted = channels(settings)
    if not wanted:
        return []
    with session_factory()() as session:
        ids = list(
            session.scalars(
                select(Alert.id).where(Alert.notified_at.is_(None), Alert.resolved_at.is_(None)).order_by(Alert.id)
            )
        )
    deliveries = []
    for alert_id in ids:
        if not _claim(alert_id):
            continue  # another thread sent it
        with session_factory()() as session:
            alert = session.get_one(Alert, alert_id)
            delivery = Delivery(alert_id)
            for channel in wanted:
                try:
                    SENDERS[channel](settings, alert)
                    delivery.sent.append(channel)
                except Exception as exc:  # any failure of a channel is logged, never raised
                    delivery.errors.append(f"{channel}: {type(exc).__name__}: {exc}"[:500])
                    log.warning(
                        "alert %s (%s on %s) not sent by %s: %s", alert_id, alert.kind, alert.source_id, channel, exc
                    )
        if delivery.errors:
            with transaction() as session:
                session.execute(
                    update(Alert).where(Alert.id == alert_id).values(notify_error="; ".join(delivery.errors))
                )
        deliveries.append(delivery)
    return deliveries
