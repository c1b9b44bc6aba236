"""The web process's alert hub: finds new alerts once and hands them to every open stream.

One poll thread per process, not per client: it asks the database for new alerts every
``alert_poll_interval_s`` (one pooled connection, returned at once) while at least one
stream is open, and not at all while none is. With ``REDIS_URL`` a listener thread wakes
it as soon as a worker announces an alert, so the push takes milliseconds instead of up
to a poll interval; the poll stays the fallback that is always right. Streams are asyncio
consumers: the threads hand alerts over with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from qa_service.accounts.roles import Principal
from qa_service.alerts import store
from qa_service.alerts.notify import channel_name
from qa_service.db.tables import utcnow
from qa_service.settings import Settings

logger = logging.getLogger(__name__)

# How far back each poll also looks by time (see store.recent_alerts): covers a commit
# that lands after a higher id and modest clock skew between worker machines.
LOOKBACK = timedelta(seconds=120)


class Subscription:
    """One open stream: a queue on its event loop that the hub fills from its threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[store.Alert] = asyncio.Queue()

    def push(self, alert: store.Alert) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, alert)
        except RuntimeError:  # the stream's loop is closed: it is going away
            pass


class AlertHub:
    """See the module docstring. ``clock`` is for tests."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # What the poll has already handed out: the highest id, and recent ids by time.
        self._last_id: int | None = None
        self._seen: dict[int, datetime] = {}

    # --- streams ----------------------------------------------------------------------

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> Subscription:
        """Register a stream; every alert the hub finds from now on is pushed to it."""
        sub = Subscription(loop)
        with self._lock:
            self._subs.add(sub)
            self._start_threads()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)
            if not self._subs:
                # Idle: the poll stops, and starts afresh (from "now") with the next stream.
                self._last_id = None
                self._seen.clear()

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def prime(self) -> None:
        """Take the database's current alerts as already handed out (blocking: a thread).

        A stream calls it after subscribing, so everything raised from then on reaches it.
        """
        with self._lock:
            if self._last_id is not None:
                return
        now = self.clock()
        with self.sessions() as session:
            known = store.recent_alerts(session, after_id=0, since=now - LOOKBACK)
            latest = store.latest_alert_id(session)
        with self._lock:
            if self._last_id is None:
                self._last_id = latest
                self._seen = {a.id: a.created_at for a in known}

    def replay(self, principal: Principal, after_id: int) -> list[store.Alert]:
        """Alerts the caller receives above ``after_id`` (a stream resumed with
        ``Last-Event-ID``); blocking: run it in a thread."""
        with self.sessions() as session:
            return store.alerts_after(
                session, after_id=after_id, scope=store.visible_alerts(principal)
            )

    def credentials_live(self, principal: Principal) -> bool:
        with self.sessions() as session:
            return store.credentials_live(
                session,
                principal=principal,
                now=self.clock(),
                idle=timedelta(minutes=self.settings.session_idle_minutes),
            )

    def wake(self) -> None:
        """Look for new alerts now instead of at the next poll."""
        self._wake.set()

    # --- threads ----------------------------------------------------------------------

    def _start_threads(self) -> None:
        if self._threads or self._stop.is_set():
            return
        targets: list[tuple[str, Callable[[], None]]] = [("qa-alert-poll", self._poll_loop)]
        if self.settings.redis_url:
            targets.append(("qa-alert-redis", self._redis_loop))
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the threads (the app's shutdown)."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _poll_loop(self) -> None:
        interval = self.settings.alert_poll_interval_s
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.poll()
            except Exception:  # a database hiccup: the next poll tries again
                logger.warning("alert poll failed", exc_info=True)

    def poll(self) -> list[store.Alert]:
        """Find new alerts and push them to every stream; returns them."""
        with self._lock:
            subs = list(self._subs)
            last_id = self._last_id
        if not subs:
            return []
        if last_id is None:
            self.prime()
            return []
        now = self.clock()
        with self.sessions() as session:
            found = store.recent_alerts(session, after_id=last_id, since=now - LOOKBACK)
        fresh: list[store.Alert] = []
        with self._lock:
            if self._last_id is None:  # went idle meanwhile
                return []
            for alert in found:
                if alert.id in self._seen:
                    continue
                self._seen[alert.id] = alert.created_at
                fresh.append(alert)
                self._last_id = max(self._last_id, alert.id)
            horizon = now - 2 * LOOKBACK
            self._seen = {i: t for i, t in self._seen.items() if t >= horizon or i >= self._last_id}
            subs = list(self._subs)
        for alert in fresh:
            for sub in subs:
                sub.push(alert)
        return fresh

    def _redis_loop(self) -> None:
        from redis import Redis

        channel = channel_name(self.settings.queue_name)
        delay = 1.0
        while not self._stop.is_set():
            try:
                client = Redis.from_url(self.settings.redis_url, socket_connect_timeout=2)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(channel)
                delay = 1.0
                try:
                    while not self._stop.is_set():
                        if pubsub.get_message(timeout=1.0) is not None:
                            self._wake.set()
                finally:
                    pubsub.close()
                    client.close()
            except Exception as exc:  # Redis down: the poll carries on; retry with backoff
                logger.warning(
                    "alert listener lost Redis (%s); polling only, retrying in %.0f s", exc, delay
                )
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
