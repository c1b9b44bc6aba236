"""Which calls a caller may see: one where-clause, used by every query that reads calls.

The API adds :func:`visible_calls` to each call query (lists, search, detail, audio,
exports), and answers 404 for a call outside it, never 403, so nobody learns that a call
they may not see exists. :func:`can_see_call` is the same rule for a row already loaded;
a test keeps the two in step.

- agent: only calls carrying its own ``agent_id``;
- supervisor: calls whose ``team_id`` is one of its teams (set from the sidecar or the
  roster, see :mod:`.roster`); a call with no team is seen by no supervisor;
- inspector: all calls for now. Issue 10 (data protection) narrows this to the calls in
  review; change it here and nowhere else;
- manager: all calls (read-only: the manager role has no permission that changes them);
- admin: no calls. Admins run accounts, settings and the intake; keeping those who hold
  the keys apart from those who read customers' calls is least privilege. An administrator
  who must listen to calls gets a second account with a content role.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import ColumnElement, false, true

from qa_service.accounts.roles import Principal, Role
from qa_service.db.tables import CallRow


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
    if role in (Role.INSPECTOR, Role.MANAGER):
        return true()
    return false()  # admin: see the module docstring


def can_see_call(principal: Principal, call: _CallOrganisation) -> bool:
    """Whether ``principal`` may see this call (the rule of :func:`visible_calls`)."""
    role = principal.role
    if role is Role.AGENT:
        return bool(principal.agent_id) and call.agent_id == principal.agent_id
    if role is Role.SUPERVISOR:
        return call.team_id is not None and call.team_id in principal.team_ids
    return role in (Role.INSPECTOR, Role.MANAGER)
