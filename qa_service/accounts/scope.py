"""Which calls a caller may see: one where-clause, used by every query that reads calls.

The API adds :func:`visible_calls` to each call query (lists, search, detail, audio,
exports), and answers 404 for a call outside it, never 403, so nobody learns that a call
they may not see exists. :func:`can_see_call` is the same rule for a row already loaded;
a test keeps the two in step.

- agent: only calls carrying its own ``agent_id``;
- supervisor: calls whose ``team_id`` is one of its teams (set from the sidecar or the
  roster, see :mod:`.roster`); a call with no team is seen by no supervisor;
- inspector: the calls in review (issue 9: "inspectors the calls in review"): every call
  whose review state is anything but ``passed`` — the queue (flagged, the calibration sample
  included), claimed, reviewed, and on through feedback and appeals — plus the calls the
  inspector uploaded, so an upload can be followed to its result. Passed and not yet
  analysed calls of others stay out of sight (least privilege: customers' calls are read
  when there is a reason to);
- manager: all calls (read-only: the manager role has no permission that changes them);
- admin: no calls. Admins run accounts, settings and the intake; keeping those who hold
  the keys apart from those who read customers' calls is least privilege. An administrator
  who must listen to calls gets a second account with a content role.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import ColumnElement, exists, false, or_, true
from sqlalchemy.orm import aliased

from qa_service.accounts.roles import Principal, Role
from qa_service.db.tables import CallReviewRow, CallRow

# The one review state that keeps a call out of inspectors' sight (qa_service.review).
_PASSED = "passed"


class _CallOrganisation(Protocol):
    """What scoping reads from a call (``CallRow`` has both)."""

    @property
    def agent_id(self) -> str | None: ...

    @property
    def team_id(self) -> str | None: ...


def visible_calls(principal: Principal) -> ColumnElement[bool]:
    """A where-clause on :class:`CallRow` selecting the calls ``principal`` may see."""
    role = principal.role
    if role is Role.AGENT:
        if not principal.agent_id:
            return false()
        return CallRow.agent_id == principal.agent_id
    if role is Role.SUPERVISOR:
        if not principal.team_ids:
            return false()
        return CallRow.team_id.in_(sorted(principal.team_ids))
    if role is Role.INSPECTOR:
        # An alias, so a query that itself joins call_reviews (the review queue) does not
        # correlate this subquery away.
        review = aliased(CallReviewRow)
        in_review = exists().where(review.call_id == CallRow.id, review.state != _PASSED)
        return or_(in_review, CallRow.uploaded_by == principal.username)
    if role is Role.MANAGER:
        return true()
    return false()  # admin: see the module docstring


def can_see_call(principal: Principal, call: _CallOrganisation) -> bool:
    """Whether ``principal`` may see this call (the rule of :func:`visible_calls`)."""
    role = principal.role
    if role is Role.AGENT:
        return bool(principal.agent_id) and call.agent_id == principal.agent_id
    if role is Role.SUPERVISOR:
        return call.team_id is not None and call.team_id in principal.team_ids
    if role is Role.INSPECTOR:
        review = getattr(call, "review", None)
        state = getattr(review, "state", None)
        in_review = state is not None and state != _PASSED
        return in_review or getattr(call, "uploaded_by", None) == principal.username
    return role is Role.MANAGER
