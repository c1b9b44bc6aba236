"""The review loop over HTTP: queue, claims, decisions, feedback, inbox, appeals, history.

Each route lets only the roles of its step through (the transition table of
:mod:`qa_service.review.states` decides; 403 otherwise), then resolves the call, finding
or appeal within the caller's scope (404 outside it, like a call that does not exist),
then reads the body. State conflicts (an illegal transition, someone else's claim, an
appeal after the deadline) are 409 with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from qa_service.accounts.roles import Permission, Principal, Role
from qa_service.accounts.scope import visible_calls
from qa_service.api.calls import visible_call_row
from qa_service.api.deps import Caller, State
from qa_service.api.review_schemas import (
    AddFindingIn,
    AppealCreated,
    AppealIn,
    AppealList,
    AppealOut,
    AssignIn,
    DecisionIn,
    DecisionOut,
    DecisionOutcomeOut,
    EventOut,
    FeedbackIn,
    HistoryOut,
    InboxItemOut,
    InboxOut,
    QueueItemOut,
    QueueOut,
    ReviewStatusOut,
    RulingIn,
    ScoreHistoryOut,
    ScoreOut,
)
from qa_service.api.schemas import ErrorResponse
from qa_service.db.tables import CallRow, FindingRow, ReviewAppealRow
from qa_service.errors import AppealNotFound, FindingNotFound, PermissionDenied
from qa_service.review import decisions, feedback, history, queue
from qa_service.review.risk import WEAK_EVIDENCE_KINDS
from qa_service.review.states import Action, check_role

router = APIRouter(prefix="/api/v1", tags=["review"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "not this role's step"},
    404: {"model": ErrorResponse, "description": "no such call, or not yours to see"},
    409: {"model": ErrorResponse, "description": "the review state does not allow it"},
}


def _step(action: Action) -> Callable[[Principal], Principal]:
    """A dependency: the caller, if the transition table lets its role take ``action``."""

    def check(principal: Caller) -> Principal:
        check_role(principal.role, action)
        return principal

    return check


def _roles(*roles: Role) -> Callable[[Principal], Principal]:
    def check(principal: Caller) -> Principal:
        if principal.role not in roles:
            raise PermissionDenied(
                f"当前角色无权查看 / the role '{principal.role}' may not read this",
                role=principal.role.value,
            )
        return principal

    return check


def _visible_call(call_id: str, state: State, principal: Caller) -> int:
    """The primary key of ``call_id`` if the caller may see it (404 otherwise)."""
    with state.sessions() as session:
        return visible_call_row(session, principal, call_id).id


def _visible_finding(finding_id: int, state: State, principal: Caller) -> int:
    """The primary key of the finding's call if the caller may see that call (else 404)."""
    with state.sessions() as session:
        call = session.scalars(
            select(CallRow)
            .join(FindingRow, FindingRow.call_id == CallRow.id)
            .where(FindingRow.id == finding_id, visible_calls(principal))
        ).first()
    if call is None or not principal.can(Permission.VIEW_CALLS):
        raise FindingNotFound(f"找不到命中 {finding_id} / finding {finding_id} not found")
    return call.id


def _visible_appeal(appeal_id: int, state: State, principal: Caller) -> int:
    with state.sessions() as session:
        call_pk = session.scalar(
            select(CallRow.id)
            .join(ReviewAppealRow, ReviewAppealRow.call_id == CallRow.id)
            .where(ReviewAppealRow.id == appeal_id, visible_calls(principal))
        )
    if call_pk is None:
        raise AppealNotFound(f"找不到申诉 {appeal_id} / appeal {appeal_id} not found")
    return call_pk


CallPk = Annotated[int, Depends(_visible_call)]
FindingCallPk = Annotated[int, Depends(_visible_finding)]
AppealCallPk = Annotated[int, Depends(_visible_appeal)]


def _status(state: State, call_id: str, call_pk: int) -> ReviewStatusOut:
    with state.sessions() as session:
        s = queue.review_summary(session, call_pk=call_pk)
    return ReviewStatusOut(
        call_id=call_id,
        state=s["state"],  # type: ignore[arg-type]
        assignee=s["assignee"],  # type: ignore[arg-type]
        lease_expires_at=s["lease_expires_at"],  # type: ignore[arg-type]
        appeal_deadline=s["appeal_deadline"],  # type: ignore[arg-type]
    )


# --- queue and claims -----------------------------------------------------------------


@router.get("/review/queue", response_model=QueueOut, responses=_ERRORS)
def review_queue(
    state: State,
    principal: Annotated[Principal, Depends(_roles(Role.INSPECTOR, Role.SUPERVISOR, Role.MANAGER))],
    rule: Annotated[str | None, Query(max_length=8, description="命中的规则，如 C01")] = None,
    team: Annotated[str | None, Query(max_length=64, description="团队")] = None,
    weak: Annotated[
        str | None,
        Query(
            pattern="^(any|" + "|".join(WEAK_EVIDENCE_KINDS) + ")$",
            description="证据较弱的命中：any 或具体类型 / weak evidence kind, or any",
        ),
    ] = None,
    calibration: Annotated[bool | None, Query(description="仅校准抽样 / calibration")] = None,
    include_claimed: Annotated[bool, Query(description="含已认领 / also claimed")] = False,
    mine: Annotated[bool, Query(description="只看我认领的 / only mine")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> QueueOut:
    """Flagged calls, most urgent first: complaint intent (above all with R04), then fatal
    findings, then the lowest score; calibration-sample calls are marked ``calibration``."""
    filters = queue.QueueFilters(
        rule=rule.upper() if rule else None,
        team_id=team,
        weak=weak,
        calibration=calibration,
        include_claimed=include_claimed,
        mine=mine,
    )
    with state.sessions.begin() as session:
        items = queue.list_queue(
            session,
            principal=principal,
            scope=visible_calls(principal),
            filters=filters,
            limit=limit,
            offset=offset,
        )
    return QueueOut(items=[QueueItemOut.model_validate(i) for i in items])


@router.post("/calls/{call_id}/claim", response_model=ReviewStatusOut, responses=_ERRORS)
def claim_call(
    call_id: str,
    state: State,
    principal: Annotated[Principal, Depends(_step(Action.CLAIM))],
    call_pk: CallPk,
) -> ReviewStatusOut:
    """认领 / claim a flagged call; it returns to the queue after the idle lease."""
    with state.sessions.begin() as session:
        queue.claim(session, call_pk=call_pk, principal=principal, settings=state.settings)
    return _status(state, call_id, call_pk)


@router.post("/calls/{call_id}/release", response_model=ReviewStatusOut, responses=_ERRORS)
def release_call(
    call_id: str,
    state: State,
    principal: Annotated[Principal, Depends(_step(Action.RELEASE))],
    call_pk: CallPk,
) -> ReviewStatusOut:
    """放回队列 / put a claimed call back (its holder, or a supervisor)."""
    with state.sessions.begin() as session:
        queue.release(session, call_pk=call_pk, principal=principal)
    return _status(state, call_id, call_pk)


@router.post("/calls/{call_id}/assign", response_model=ReviewStatusOut, responses=_ERRORS)
def assign_call(
    call_id: str,
    state: State,
    principal: Annotated[Principal, Depends(_step(Action.ASSIGN))],
    call_pk: CallPk,
    body: AssignIn,
) -> ReviewStatusOut:
    """分派 / a supervisor gives a call of the team to an inspector."""
    with state.sessions.begin() as session:
        queue.assign(session, call_pk=call_pk, principal=principal, inspector=body.inspector)
    return _status(state, call_id, call_pk)


# --- decisions ------------------------------------------------------------------------


@router.post(
    "/findings/{finding_id}/decision", response_model=DecisionOutcomeOut, responses=_ERRORS
)
def decide_finding(
    finding_id: int,
    state: State,
    principal: Annotated[Principal, Depends(_step(Action.COMPLETE))],
    _call_pk: FindingCallPk,
    body: DecisionIn,
) -> DecisionOutcomeOut:
    """确认或驳回命中 / confirm or dismiss a finding; the score is recomputed."""
    with state.sessions.begin() as session:
        outcome = decisions.decide(
            session,
            finding_id=finding_id,
            verdict=body.decision,
            reason_code=body.reason_code,
            comment=body.comment,
            principal=principal,
            settings=state.settings,
        )
    return DecisionOutcomeOut.model_validate(outcome)


@router.post(
    "/calls/{call_id}/findings",
    response_model=DecisionOutcomeOut,
    status_code=201,
    responses=_ERRORS,
)
def add_finding(
    call_id: str,
    state: State,
    principal: Annotated[Principal, Depends(_step(Action.COMPLETE))],
    call_pk: CallPk,
    body: AddFindingIn,
) -> DecisionOutcomeOut:
    """补充漏检命中 / add a finding the machine missed (rule, time span, note)."""
    with state.sessions.begin() as session:
        outcome = decisions.add_finding(
            session,
            call_pk=call_pk,
            rule=body.rule,
            start=body.start,
            end=body.end,
            note=body.note,
            principal=principal,
            settings=state.settings,
        )
    return DecisionOutcomeOut.model_validate(outcome)


@router.post("/calls/{call_id}/complete", response_model=ReviewStatusOut, responses=_ERRORS)
def complete_review(
    call_id: str,
    state: State,
    principal: Annotated[Principal, Depends(_step(Action.COMPLETE))],
    call_pk: CallPk,
) -> ReviewStatusOut:
    """完成复核 / finish the review (every finding decided)."""
    with state.sessions.begin() as session:
        decisions.complete(session, call_pk=call_pk, principal=principal)
    return _status(state, call_id, call_pk)


# --- feedback, inbox, appeals ---------------------------------------------------------


@router.post("/calls/{call_id}/feedback", response_model=ReviewStatusOut, responses=_ERRORS)
def send_feedback(
    call_id: str,
    state: State,
    principal: Annotated[Principal, Depends(_step(Action.SEND_FEEDBACK))],
    call_pk: CallPk,
    body: FeedbackIn,
) -> ReviewStatusOut:
    """发送辅导反馈 / send a coaching note per confirmed finding to the agent."""
    with state.sessions.begin() as session:
        feedback.send_feedback(
            session,
            call_pk=call_pk,
            principal=principal,
            settings=state.settings,
            notes=body.notes,
            summary=body.summary,
        )
    return _status(state, call_id, call_pk)


@router.get("/inbox", response_model=InboxOut, responses=_ERRORS)
def agent_inbox(
    state: State, principal: Annotated[Principal, Depends(_roles(Role.AGENT))]
) -> InboxOut:
    """坐席收件箱 / the feedback on the agent's calls, newest first."""
    with state.sessions() as session:
        items = feedback.inbox(session, scope=visible_calls(principal))
    return InboxOut(items=[InboxItemOut.model_validate(i) for i in items])


@router.post("/calls/{call_id}/acknowledge", response_model=ReviewStatusOut, responses=_ERRORS)
def acknowledge_feedback(
    call_id: str,
    state: State,
    principal: Annotated[Principal, Depends(_step(Action.ACKNOWLEDGE))],
    call_pk: CallPk,
) -> ReviewStatusOut:
    """确认反馈 / the agent accepts the feedback (final)."""
    with state.sessions.begin() as session:
        feedback.acknowledge(session, call_pk=call_pk, principal=principal)
    return _status(state, call_id, call_pk)


@router.post(
    "/findings/{finding_id}/appeal",
    response_model=AppealCreated,
    status_code=201,
    responses=_ERRORS,
)
def appeal_finding(
    finding_id: int,
    state: State,
    principal: Annotated[Principal, Depends(_step(Action.APPEAL))],
    call_pk: FindingCallPk,
    body: AppealIn,
) -> AppealCreated:
    """申诉 / the agent contests a confirmed finding within the appeal window."""
    with state.sessions.begin() as session:
        appeal_id = feedback.appeal(
            session, finding_id=finding_id, principal=principal, reason=body.reason
        )
        new_state = history.state_of(queue.review_row(session, call_pk=call_pk))
    return AppealCreated(appeal_id=appeal_id, state=new_state.value if new_state else "")


@router.get("/appeals", response_model=AppealList, responses=_ERRORS)
def list_appeals(
    state: State,
    principal: Annotated[Principal, Depends(_roles(Role.SUPERVISOR, Role.MANAGER))],
    status: Annotated[str | None, Query(pattern="^(open|upheld|overturned|all)$")] = "open",
) -> AppealList:
    """待裁决的申诉 / appeals on the supervisor's teams' calls (open ones by default)."""
    with state.sessions() as session:
        items = feedback.list_appeals(
            session, scope=visible_calls(principal), status=None if status == "all" else status
        )
    return AppealList(items=[AppealOut.model_validate(i) for i in items])


@router.post("/appeals/{appeal_id}/ruling", response_model=ReviewStatusOut, responses=_ERRORS)
def rule_appeal(
    appeal_id: int,
    state: State,
    principal: Annotated[Principal, Depends(_step(Action.RULE))],
    call_pk: AppealCallPk,
    body: RulingIn,
) -> ReviewStatusOut:
    """裁决申诉 / uphold or overturn (final; an overturned finding is dismissed)."""
    with state.sessions.begin() as session:
        feedback.rule_appeal(
            session,
            appeal_id=appeal_id,
            ruling=body.ruling,
            note=body.note,
            principal=principal,
            settings=state.settings,
        )
        call = session.get(CallRow, call_pk)
        assert call is not None
        call_id = call.call_id
    return _status(state, call_id, call_pk)


# --- history --------------------------------------------------------------------------


@router.get("/calls/{call_id}/history", response_model=HistoryOut, responses=_ERRORS)
def review_history(call_id: str, state: State, call_pk: CallPk) -> HistoryOut:
    """复核记录 / every review step (who, when, from, to, why), decisions and appeals."""
    with state.sessions() as session:
        summary = queue.review_summary(session, call_pk=call_pk)
        return HistoryOut(
            call_id=call_id,
            state=summary["state"],  # type: ignore[arg-type]
            events=[
                EventOut.model_validate(e)
                for e in history.events_for_call(session, call_pk=call_pk)
            ],
            decisions=[
                DecisionOut.model_validate(d)
                for d in decisions.decisions_for_call(session, call_pk=call_pk)
            ],
            appeals=[
                AppealOut.model_validate(a)
                for a in feedback.list_appeals(session, scope=None, status=None, call_pk=call_pk)
            ],
        )


@router.get("/calls/{call_id}/scores", response_model=ScoreHistoryOut, responses=_ERRORS)
def score_history(call_id: str, state: State, call_pk: CallPk) -> ScoreHistoryOut:
    """评分历史 / the call's scores, oldest first, each with its reason and note."""
    with state.sessions() as session:
        steps = history.score_steps(session, call_pk=call_pk)
    return ScoreHistoryOut(
        call_id=call_id,
        items=[ScoreOut.model_validate(s, from_attributes=True) for s in steps],
    )
