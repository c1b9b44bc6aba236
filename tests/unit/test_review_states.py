"""The review transition table: every step allowed from its states, refused from all others,
and each step open only to its role."""

from __future__ import annotations

import pytest

from qa_service.accounts.roles import Role
from qa_service.errors import Conflict, PermissionDenied
from qa_service.review.states import (
    TRANSITIONS,
    Action,
    IllegalTransition,
    ReviewState,
    check,
    may,
    next_state,
)

S = ReviewState
ALL_STATES: list[ReviewState | None] = [None, *ReviewState]

# The loop as the issue states it, written out independently of the table.
ALLOWED: dict[Action, tuple[set[ReviewState | None], ReviewState, set[Role]]] = {
    Action.FLAG: ({None, S.FLAGGED, S.PASSED}, S.FLAGGED, set()),
    Action.PASS: ({None, S.FLAGGED, S.PASSED}, S.PASSED, set()),
    Action.CLAIM: ({S.FLAGGED}, S.IN_REVIEW, {Role.INSPECTOR}),
    Action.ASSIGN: ({S.FLAGGED, S.PASSED, S.IN_REVIEW}, S.IN_REVIEW, {Role.SUPERVISOR}),
    Action.RELEASE: ({S.IN_REVIEW}, S.FLAGGED, {Role.INSPECTOR, Role.SUPERVISOR}),
    Action.EXPIRE: ({S.IN_REVIEW}, S.FLAGGED, set()),
    Action.COMPLETE: ({S.IN_REVIEW}, S.REVIEWED, {Role.INSPECTOR}),
    Action.SEND_FEEDBACK: ({S.REVIEWED}, S.FEEDBACK_SENT, {Role.INSPECTOR}),
    Action.ACKNOWLEDGE: ({S.FEEDBACK_SENT}, S.ACKNOWLEDGED, {Role.AGENT}),
    Action.APPEAL: ({S.FEEDBACK_SENT, S.APPEALED}, S.APPEALED, {Role.AGENT}),
    Action.RULE: ({S.APPEALED}, S.RULED, {Role.SUPERVISOR}),
}


def test_the_table_is_the_loop_of_the_issue() -> None:
    assert {t.action for t in TRANSITIONS} == set(Action) == set(ALLOWED)
    for t in TRANSITIONS:
        sources, target, roles = ALLOWED[t.action]
        assert set(t.sources) == sources and t.target is target and set(t.roles) == roles


CASES = [(action, state) for action in Action for state in ALL_STATES]


@pytest.mark.parametrize(("action", "state"), CASES, ids=lambda v: str(v))
def test_every_transition_allowed_or_refused(action: Action, state: ReviewState | None) -> None:
    sources, target, _ = ALLOWED[action]
    if state in sources:
        assert next_state(state, action) is target
    else:
        with pytest.raises(IllegalTransition) as refused:
            next_state(state, action)
        assert isinstance(refused.value, Conflict)  # 409
        assert " / " in refused.value.message  # Chinese, then the English reason
        assert action.value in refused.value.message


@pytest.mark.parametrize("action", list(Action))
def test_each_step_belongs_to_its_roles_only(action: Action) -> None:
    sources, target, roles = ALLOWED[action]
    state = next(iter(sources))
    for role in Role:
        if role in roles:
            assert check(state, action, role) is target
        else:
            assert not may(role, action)
            with pytest.raises(PermissionDenied):
                check(state, action, role)
    assert may(None, action) == (not roles)  # the system only takes the system's steps


def test_role_is_checked_before_state() -> None:
    # An agent trying to claim a call already reviewed learns nothing about its state.
    with pytest.raises(PermissionDenied):
        check(S.REVIEWED, Action.CLAIM, Role.AGENT)


def test_final_states_have_no_way_out() -> None:
    for final in (S.ACKNOWLEDGED, S.RULED):
        assert not [t for t in TRANSITIONS if final in t.sources]
