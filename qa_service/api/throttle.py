"""Failed logins counted per client IP, so that guessing is slowed whatever names are tried.

Account lockout (``lockout_attempts``) protects a known account, but a client trying many
user names, or names that do not exist (which never lock), is not slowed by it. Here every
failed login from one IP counts in a sliding window of ``login_ip_window_s``; at
``login_ip_max_failures`` further attempts from that IP are refused with 429 until the
oldest failure leaves the window. A success does not reset the count (one valid account
must not buy an attacker fresh guesses).

The counts live in this process's memory: each web process counts on its own, and a
restart forgets them, which bounds the guessing rate per process, not globally.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from qa_service.errors import TooManyRequests

# Distinct client IPs remembered at most; past it the quietest are forgotten first, so
# a flood of spoofed-looking addresses cannot grow memory without bound.
MAX_TRACKED_CLIENTS = 10_000


class LoginThrottle:
    """Sliding-window counts of failed logins by client IP (thread-safe)."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(
        self, client: str | None, *, max_failures: int, window_s: float, now: float | None = None
    ) -> None:
        """Raise :class:`TooManyRequests` if ``client`` failed ``max_failures`` times lately."""
        if client is None:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = self._recent(client, window_s, now)
            if recent is None or len(recent) < max_failures:
                return
            retry_after = max(1, math.ceil(recent[0] + window_s - now))
        raise TooManyRequests(
            f"登录失败次数过多，请 {retry_after} 秒后再试 / too many failed logins from this "
            f"address; retry in {retry_after} s",
            retry_after_s=retry_after,
        )

    def failed(self, client: str | None, *, window_s: float, now: float | None = None) -> None:
        """Count one failed login from ``client``."""
        if client is None:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = self._recent(client, window_s, now)
            if recent is None:
                if len(self._failures) >= MAX_TRACKED_CLIENTS:
                    self._forget_quietest()
                recent = self._failures[client] = deque()
            recent.append(now)

    def _recent(self, client: str, window_s: float, now: float) -> deque[float] | None:
        recent = self._failures.get(client)
        if recent is None:
            return None
        while recent and recent[0] <= now - window_s:
            recent.popleft()
        if not recent:
            del self._failures[client]
            return None
        return recent

    def _forget_quietest(self) -> None:
        oldest = sorted(self._failures, key=lambda ip: self._failures[ip][-1])
        for ip in oldest[: max(1, len(oldest) // 10)]:
            del self._failures[ip]
