"""Settings changes in the audit trail.

Settings come from the environment and a settings file, not from an API, so a change shows
up when a process starts with values that differ from the last ones recorded. ``serve``
calls :func:`record_settings_change` at start: the first start records the whole
configuration, later starts record what changed (old and new value). Secrets are never
written: only a slow salted digest tells that one changed (``"<changed>"``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from qa_service.audit.events import Actor, AuditEvent, AuditRecord, canonical_json, record_event
from qa_service.db.rows import storage_errors
from qa_service.db.tables import AuditEventRow
from qa_service.settings import Settings

# Values that must not reach the trail; only whether they changed (by digest) is kept.
_SECRETS = frozenset({"secret_key", "data_key", "search_key"})
_SALT = b"qa-service audit settings"


def settings_snapshot(settings: Settings) -> dict[str, Any]:
    """The settings as JSON-able values, secrets replaced by a digest of their value."""
    out: dict[str, Any] = {}
    for name, value in settings.model_dump().items():
        if name in _SECRETS:
            raw = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
            # Slow and salted: enough to notice a change, useless for guessing the secret.
            digest = hashlib.pbkdf2_hmac("sha256", str(raw).encode(), _SALT, 100_000)
            out[name] = "pbkdf2:" + digest.hex()[:16]
        elif name == "database_url" and value:
            out[name] = make_url(str(value)).render_as_string(hide_password=True)
        else:
            out[name] = value
    plain: dict[str, Any] = json.loads(canonical_json(out))
    return plain


def record_settings_change(
    session: Session, *, settings: Settings, actor: Actor
) -> AuditRecord | None:
    """Record the settings if they differ from the last recorded ones (None: unchanged)."""
    current = settings_snapshot(settings)
    with storage_errors("load recorded settings"):
        last_text = session.scalar(
            select(AuditEventRow.details)
            .where(AuditEventRow.event == AuditEvent.SETTINGS_CHANGE.value)
            .order_by(AuditEventRow.seq.desc())
            .limit(1)
        )
    previous: dict[str, Any] = {}
    if last_text is not None:
        previous = json.loads(last_text).get("settings", {})
        if previous == current:
            return None
    changed = {
        name: ["<changed>", "<changed>"] if name in _SECRETS else [previous.get(name), value]
        for name, value in current.items()
        if previous.get(name) != value
    }
    return record_event(
        session,
        actor=actor,
        event=AuditEvent.SETTINGS_CHANGE,
        target="settings",
        details={"first": last_text is None, "changed": changed, "settings": current},
    )
