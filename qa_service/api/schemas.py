"""API schemas: the JSON shapes of requests and responses (``shared/spec/api.md``).

The third family of types (STYLE.md), kept apart from ORM rows and domain dataclasses;
the ``from_*`` helpers convert from the domain side. The call detail itself is the
``output.md`` object rendered by :mod:`qa_service.reports.output`, so it is a free-form
object here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from qa_service.accounts.roles import Principal
from qa_service.db.listing import CallPage, CallSummary


class ErrorDetail(BaseModel):
    code: str
    message: str = Field(description="中文说明 (for the people who read it)")
    detail: str | None = Field(default=None, description="English gist")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    queue: str


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class UserOut(BaseModel):
    user_id: int
    username: str
    display_name: str
    role: str
    agent_id: str | None
    team_ids: list[str]
    must_change_password: bool

    @classmethod
    def from_principal(cls, p: Principal) -> UserOut:
        return cls(
            user_id=p.user_id,
            username=p.username,
            display_name=p.display_name,
            role=p.role.value,
            agent_id=p.agent_id,
            team_ids=sorted(p.team_ids),
            must_change_password=p.must_change_password,
        )


class LoginResponse(BaseModel):
    user: UserOut
    csrf_token: str


class MeResponse(BaseModel):
    user: UserOut


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class UploadResult(BaseModel):
    call_id: str
    sha256: str
    status: str


class RejectedRow(BaseModel):
    line: int | None
    column: str | None
    message: str
    detail: str | None


class ImportResult(BaseModel):
    imported: int
    rejected: list[RejectedRow]


class CallItem(BaseModel):
    call_id: str
    recording: str
    status: str
    started_at: datetime | None
    agent_id: str | None
    team_id: str | None
    agency_id: str | None
    duration_s: float | None
    score: float | None
    rules: list[str]
    review_state: str | None  # None: not analysed yet

    @classmethod
    def from_summary(cls, s: CallSummary) -> CallItem:
        return cls(
            call_id=s.call_id,
            recording=s.recording,
            status=s.status,
            started_at=s.started_at,
            agent_id=s.agent_id,
            team_id=s.team_id,
            agency_id=s.agency_id,
            duration_s=s.duration_s,
            score=s.score,
            rules=list(s.rules),
            review_state=s.review,
        )


class CallList(BaseModel):
    items: list[CallItem]
    next_cursor: str | None

    @classmethod
    def from_page(cls, page: CallPage) -> CallList:
        return cls(
            items=[CallItem.from_summary(s) for s in page.items], next_cursor=page.next_cursor
        )


CallDetail = dict[str, Any]


class FailedCall(BaseModel):
    call_id: str
    recording: str
    attempts: int
    reason: str | None
    queued_at: datetime | None


class FailedCallList(BaseModel):
    items: list[FailedCall]


class RequeueResult(BaseModel):
    call_id: str
    status: str
