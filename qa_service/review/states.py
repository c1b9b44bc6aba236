"""Review states and the one table of allowed transitions between them.

Every change of a call's review state goes through :func:`check`: the action must exist
for the caller's role (else :class:`~qa_service.errors.PermissionDenied`, 403) and for
the call's current state (else :class:`IllegalTransition`, a Conflict: 409 with the
reason). ``None`` is the state of an analysed call not classified yet.

    analysed → flagged | passed → in_review → reviewed → feedback_sent
             → acknowledged | appealed → ruled (final)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from qa_service.accounts.roles import Role
from qa_service.errors import Conflict, PermissionDenied


class ReviewState(StrEnum):
    FLAGGED = "flagged"  # in the review queue: a finding, a failing score, or calibration
    PASSED = "passed"  # nothing to review
    IN_REVIEW = "in_review"  # claimed by (or assigned to) an inspector
    REVIEWED = "reviewed"  # every finding decided
    FEEDBACK_SENT = "feedback_sent"  # coaching notes in the agent's inbox
    ACKNOWLEDGED = "acknowledged"  # the agent accepted the feedback (final)
    APPEALED = "appealed"  # the agent contests at least one finding
    RULED = "ruled"  # the supervisor ruled on every appeal (final)


STATE_LABELS_ZH: dict[ReviewState, str] = {
    ReviewState.FLAGGED: "待复核",
    ReviewState.PASSED: "无需复核",
    ReviewState.IN_REVIEW: "复核中",
    ReviewState.REVIEWED: "已复核",
    ReviewState.FEEDBACK_SENT: "已反馈",
    ReviewState.ACKNOWLEDGED: "坐席已确认",
    ReviewState.APPEALED: "申诉中",
    ReviewState.RULED: "已裁决",
}


class Action(StrEnum):
    FLAG = "flag"
    PASS = "pass"
    CLAIM = "claim"
    ASSIGN = "assign"
    RELEASE = "release"
    EXPIRE = "expire"  # a claim's lease ran out
    COMPLETE = "complete"
    SEND_FEEDBACK = "send_feedback"
    ACKNOWLEDGE = "acknowledge"
    APPEAL = "appeal"
    RULE = "rule"


ACTION_LABELS_ZH: dict[Action, str] = {
    Action.FLAG: "标记待复核",
    Action.PASS: "标记无需复核",
    Action.CLAIM: "认领",
    Action.ASSIGN: "分派",
    Action.RELEASE: "放回队列",
    Action.EXPIRE: "认领超时",
    Action.COMPLETE: "完成复核",
    Action.SEND_FEEDBACK: "发送反馈",
    Action.ACKNOWLEDGE: "确认反馈",
    Action.APPEAL: "申诉",
    Action.RULE: "裁决",
}


@dataclass(frozen=True)
class Transition:
    """``action`` moves a call from any of ``sources`` to ``target``; ``roles`` may do it
    (an empty set: only the system, e.g. the analysis or an expired lease)."""

    action: Action
    sources: frozenset[ReviewState | None]
    target: ReviewState
    roles: frozenset[Role]


S = ReviewState
_SYSTEM: frozenset[Role] = frozenset()
_CLASSIFIABLE: frozenset[ReviewState | None] = frozenset({None, S.FLAGGED, S.PASSED})

TRANSITIONS: tuple[Transition, ...] = (
    # A re-analysis classifies again, as long as nobody has started reviewing the call.
    Transition(Action.FLAG, _CLASSIFIABLE, S.FLAGGED, _SYSTEM),
    Transition(Action.PASS, _CLASSIFIABLE, S.PASSED, _SYSTEM),
    Transition(Action.CLAIM, frozenset({S.FLAGGED}), S.IN_REVIEW, frozenset({Role.INSPECTOR})),
    # A supervisor may also send a passed call to review, or hand a claim to someone else.
    Transition(
        Action.ASSIGN,
        frozenset({S.FLAGGED, S.PASSED, S.IN_REVIEW}),
        S.IN_REVIEW,
        frozenset({Role.SUPERVISOR}),
    ),
    Transition(
        Action.RELEASE,
        frozenset({S.IN_REVIEW}),
        S.FLAGGED,
        frozenset({Role.INSPECTOR, Role.SUPERVISOR}),
    ),
    Transition(Action.EXPIRE, frozenset({S.IN_REVIEW}), S.FLAGGED, _SYSTEM),
    Transition(Action.COMPLETE, frozenset({S.IN_REVIEW}), S.REVIEWED, frozenset({Role.INSPECTOR})),
    Transition(
        Action.SEND_FEEDBACK,
        frozenset({S.REVIEWED}),
        S.FEEDBACK_SENT,
        frozenset({Role.INSPECTOR}),
    ),
    Transition(
        Action.ACKNOWLEDGE,
        frozenset({S.FEEDBACK_SENT}),
        S.ACKNOWLEDGED,
        frozenset({Role.AGENT}),
    ),
    # Appealing a second finding while the first appeal waits keeps the call appealed.
    Transition(
        Action.APPEAL,
        frozenset({S.FEEDBACK_SENT, S.APPEALED}),
        S.APPEALED,
        frozenset({Role.AGENT}),
    ),
    Transition(Action.RULE, frozenset({S.APPEALED}), S.RULED, frozenset({Role.SUPERVISOR})),
)

_BY_ACTION: dict[Action, Transition] = {t.action: t for t in TRANSITIONS}
FINAL_STATES: frozenset[ReviewState] = frozenset({S.ACKNOWLEDGED, S.RULED})


class IllegalTransition(Conflict):
    """The call's review state does not allow this step (409, the reason in the message)."""

    code = "illegal_transition"


def transition_for(action: Action) -> Transition:
    return _BY_ACTION[action]


def may(role: Role | None, action: Action) -> bool:
    """Whether ``role`` (None: the system) may take ``action`` at all."""
    allowed = _BY_ACTION[action].roles
    return not allowed if role is None else role in allowed


def check_role(role: Role | None, action: Action) -> None:
    """Raise PermissionDenied (403) unless ``role`` may take ``action``."""
    if not may(role, action):
        who = role.value if role is not None else "system"
        raise PermissionDenied(
            f"当前角色无权执行「{ACTION_LABELS_ZH[action]}」/ the role '{who}' may not "
            f"{action.value}",
            action=action.value,
        )


def _label(state: ReviewState | None) -> str:
    return STATE_LABELS_ZH[state] if state is not None else "未分类"


def next_state(current: ReviewState | None, action: Action) -> ReviewState:
    """The state ``action`` leads to from ``current``; IllegalTransition if none."""
    t = _BY_ACTION[action]
    if current not in t.sources:
        allowed = sorted(s.value for s in t.sources if s is not None)
        if None in t.sources:
            allowed.insert(0, "(unclassified)")
        raise IllegalTransition(
            f"通话处于「{_label(current)}」状态，不能{ACTION_LABELS_ZH[action]} / the call is "
            f"{current.value if current else 'unclassified'}; {action.value} needs "
            f"{' or '.join(allowed)}",
            state=current.value if current else "",
            action=action.value,
        )
    return t.target


def check(current: ReviewState | None, action: Action, role: Role | None) -> ReviewState:
    """Role first (403), then state (409): the target state of a permitted step."""
    check_role(role, action)
    return next_state(current, action)
