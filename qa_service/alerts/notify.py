"""Announcing a new alert on Redis, so web processes push it at once instead of at their
next database poll. Best effort by design: the alert is already committed, and every web
process finds it by polling within ``alert_poll_interval_s`` even if Redis is down.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import Redis

logger = logging.getLogger(__name__)


def channel_name(queue_name: str) -> str:
    """The pub/sub channel (Redis channels ignore the db number: the queue name scopes it)."""
    return f"qa-service:{queue_name}:alerts"


@lru_cache(maxsize=4)
def _client(redis_url: str) -> Redis:
    from redis import Redis

    return Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)


def announce(redis_url: str, queue_name: str, alert_id: int) -> bool:
    """Publish ``alert_id``; False (and a warning in the log) if Redis did not take it."""
    if not redis_url:
        return False
    try:
        _client(redis_url).publish(channel_name(queue_name), str(alert_id))
    except Exception as exc:  # the alert is committed: the database poll still finds it
        logger.warning(
            "could not announce alert %s on Redis (%s); web processes will find it by polling",
            alert_id,
            exc,
        )
        return False
    return True
