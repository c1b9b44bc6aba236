"""Request and response shapes of the review-loop routes (:mod:`qa_service.api.review`).

Responses are built from the review layer's dataclasses (``from_attributes``), so the
domain types never carry pydantic.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from qa_service.review.decisions import DismissReason, Verdict
from qa_service.review.feedback import Ruling


class _FromDomain(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class QueueItemOut(_FromDomain):
    call_id: str
    state: str
    risk_tier: int
    risk: str
    score: float | None
    rules: list[str]
    weak_evidence: list[str]
    calibration: bool
    assignee: str | None
    lease_expires_at: datetime | None
    started_at: datetime | None
    agent_id: str | None
    team_id: str | None


class QueueOut(BaseModel):
    items: list[QueueItemOut]


class ReviewStatusOut(BaseModel):
    call_id: str
    state: str | None
    assignee: str | None = None
    lease_expires_at: datetime | None = None
    appeal_deadline: datetime | None = None


class AssignIn(BaseModel):
    inspector: str = Field(min_length=1, max_length=64, description="质检员用户名")


class DecisionIn(BaseModel):
    decision: Verdict
    reason_code: DismissReason | None = None
    comment: str = Field(default="", max_length=2000)


class AddFindingIn(BaseModel):
    rule: str = Field(min_length=3, max_length=8, description="规则编号，如 P03")
    start: float = Field(ge=0, description="开始时间（秒）")
    end: float = Field(gt=0, description="结束时间（秒）")
    note: str = Field(min_length=1, max_length=2000)


class DecisionOutcomeOut(_FromDomain):
    finding_id: int
    decision: str
    score: float | None
    previous_score: float | None
    score_changed: bool


class FeedbackIn(BaseModel):
    notes: dict[int, str] = Field(description="命中编号 → 辅导意见 (one per confirmed finding)")
    summary: str = Field(default="", max_length=4000)


class AppealIn(BaseModel):
    reason: str = Field(min_length=1, max_length=4000)


class AppealCreated(BaseModel):
    appeal_id: int
    state: str


class RulingIn(BaseModel):
    ruling: Ruling
    note: str = Field(default="", max_length=4000)


class DecisionOut(_FromDomain):
    decision_id: int
    finding_id: int | None
    rule: str
    decision: str
    reason_code: str | None
    comment: str
    coaching_note: str | None
    overturned: bool
    start_s: float | None
    end_s: float | None
    text: str | None
    decided_at: datetime


class AppealOut(_FromDomain):
    appeal_id: int
    call_id: str
    finding_id: int | None
    rule: str
    text: str | None
    coaching_note: str | None
    reason: str
    status: str
    ruling_note: str | None
    agent_id: str | None
    team_id: str | None
    created_at: datetime
    ruled_at: datetime | None


class AppealList(BaseModel):
    items: list[AppealOut]


class InboxItemOut(_FromDomain):
    call_id: str
    state: str
    needs_answer: bool
    score: float | None
    summary: str | None
    feedback_at: datetime | None
    appeal_deadline: datetime | None
    findings: list[DecisionOut]
    appeals: list[AppealOut]


class InboxOut(BaseModel):
    items: list[InboxItemOut]


class EventOut(_FromDomain):
    action: str
    from_state: str | None
    to_state: str
    actor: str | None
    reason: str
    at: datetime


class HistoryOut(BaseModel):
    call_id: str
    state: str | None
    events: list[EventOut]
    decisions: list[DecisionOut]
    appeals: list[AppealOut]


class ScoreOut(BaseModel):
    score: float
    passed: bool
    fatal: bool
    rubric_version: str
    reason: str
    note: str | None
    is_current: bool
    created_at: datetime


class ScoreHistoryOut(BaseModel):
    call_id: str
    items: list[ScoreOut]
