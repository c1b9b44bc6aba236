"""Constants shared by the accounts tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

from datetime import UTC, datetime

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# Strong enough for zxcvbn (score >= 3), all four character classes.
STRONG = ("Tq7#mZ2!vLp9", "Rk4$wN8@hJx3", "Bv5%cY1^sGe6", "Hz2&pQ9*dKu4", "Wm8!fT3#yAo7")
