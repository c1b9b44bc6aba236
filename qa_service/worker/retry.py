"""What a job raises to ask for another attempt, and how long to wait before it."""

from __future__ import annotations

from collections.abc import Sequence


class RetryAnalysis(Exception):  # noqa: N818 - a signal to the queue, not an error type
    """The attempt failed for a reason that may pass; the call is ``queued`` again.

    Raised by the job only after the database says so, so a queue that drops the retry
    (a Redis flush) loses nothing: the sweep finds the queued call.
    """

    def __init__(self, call_id: str, attempts: int, reason: str) -> None:
        super().__init__(f"call {call_id}: attempt {attempts} failed, will retry: {reason}")
        self.call_id = call_id
        self.attempts = attempts
        self.reason = reason


def backoff_delay(backoff_s: Sequence[int], attempts: int) -> int:
    """Seconds before attempt ``attempts + 1``; the last step repeats (0 without steps)."""
    if not backoff_s:
        return 0
    return int(backoff_s[min(max(attempts, 1), len(backoff_s)) - 1])
