"""Coaching: who goes back to training, the trainings supervisors record, and their effect.

The service plan sends staff who score under the pass mark (80) back to training. An agent
is listed, over a period, when

- the mean of its calls' current QA scores is under ``pass_mark`` (reason ``low_score``,
  no rule: re-training on the whole rubric), or
- it has a *confirmed* violation (see :mod:`qa_service.trends.reviewed`) of one P/R/A/M
  rule on at least ``repeat_calls`` different calls (reason ``repeated_violation``, that
  rule).

A supervisor records a training (agent, rule or none, when); its effect is the agent's
rate for that rule, calls with a standing finding of it per 100 calls, and the mean score,
over the ``window_days`` before the training and the ``window_days`` after it.

Scope: a supervisor sees and coaches its teams' agents (an agent is in a team by the roster
or by a call of that team), a manager sees everyone's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.orm import Session

from qa_service.accounts.roles import Principal, Role
from qa_service.audit.events import Actor, record_event
from qa_service.db.rows import aware, storage_errors
from qa_service.db.tables import AgentRow, CallRow, TrainingRow, utcnow
from qa_service.errors import InputError
from qa_service.rules.catalogue import RULES
from qa_service.settings import Settings
from qa_service.trends.figures import VIOLATION_FAMILIES, per_100
from qa_service.trends.records import CallFact, load_calls

LOW_SCORE = "low_score"
REPEATED = "repeated_violation"
REASONS_ZH = {LOW_SCORE: "质检均分低于及格线", REPEATED: "同一规则违规经确认多次"}
EVENT_TRAINING = "coaching.training"


@dataclass(frozen=True)
class CoachingParams:
    pass_mark: float = 80.0
    repeat_calls: int = 2
    window_days: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> CoachingParams:
        return cls(
            settings.coaching_pass_mark,
            settings.coaching_repeat_calls,
            settings.coaching_window_days,
        )


@dataclass(frozen=True)
class Training:
    id: int
    agent_id: str
    rule: str | None
    trained_at: datetime
    note: str
    recorded_by: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent_id": self.agent_id,
            "rule": self.rule,
            "rule_name": RULES[self.rule].name_zh if self.rule in RULES else None,
            "trained_at": self.trained_at.isoformat(),
            "note": self.note,
            "recorded_by": self.recorded_by,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class CoachingEntry:
    """One agent to re-train, why, and on which rule (None: the whole rubric)."""

    agent_id: str
    team_id: str | None
    agency_id: str | None
    reason: str
    rule: str | None
    calls: int
    scored_calls: int
    mean_score: float | None
    confirmed_calls: int  # calls with a confirmed finding of ``rule`` (0 for low_score)
    last_training_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "team_id": self.team_id,
            "agency_id": self.agency_id,
            "reason": self.reason,
            "reason_label": REASONS_ZH[self.reason],
            "rule": self.rule,
            "rule_name": RULES[self.rule].name_zh if self.rule in RULES else None,
            "calls": self.calls,
            "scored_calls": self.scored_calls,
            "mean_score": self.mean_score,
            "confirmed_calls": self.confirmed_calls,
            "last_training_at": self.last_training_at.isoformat()
            if self.last_training_at
            else None,
        }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def coaching_list(
    calls: Sequence[CallFact], trainings: Sequence[Training], params: CoachingParams
) -> list[CoachingEntry]:
    """The agents of ``calls`` to re-train (pure: the calls of the period, in scope)."""
    by_agent: dict[str, list[CallFact]] = defaultdict(list)
    for call in calls:
        if call.agent_id:
            by_agent[call.agent_id].append(call)
    last: dict[tuple[str, str | None], datetime] = {}
    for t in sorted(trainings, key=lambda t: t.trained_at):
        last[(t.agent_id, t.rule)] = t.trained_at
    out: list[CoachingEntry] = []
    for agent, own in sorted(by_agent.items()):
        scores = [c.score for c in own if c.score is not None]
        mean = _mean(scores)
        base = CoachingEntry(
            agent_id=agent,
            team_id=own[-1].team_id,  # the latest call's organisation
            agency_id=own[-1].agency_id,
            reason=LOW_SCORE,
            rule=None,
            calls=len(own),
            scored_calls=len(scores),
            mean_score=mean,
            confirmed_calls=0,
            last_training_at=last.get((agent, None)),
        )
        if mean is not None and mean < params.pass_mark:
            out.append(base)
        confirmed: dict[str, int] = defaultdict(int)
        for call in own:
            for rule in {f.rule for f in call.findings if f.confirmed}:
                if rule[:1] in VIOLATION_FAMILIES:
                    confirmed[rule] += 1
        for rule in sorted(confirmed):
            if confirmed[rule] >= params.repeat_calls:
                out.append(
                    replace(
                        base,
                        reason=REPEATED,
                        rule=rule,
                        confirmed_calls=confirmed[rule],
                        last_training_at=last.get((agent, rule)),
                    )
                )
    return out


@dataclass(frozen=True)
class TrainingEffect:
    """A training and the agent's figures in the windows before and after it."""

    training: Training
    before_calls: int
    before_rate: float | None  # calls with a standing finding of the rule per 100 calls
    before_mean_score: float | None
    after_calls: int
    after_rate: float | None
    after_mean_score: float | None

    @property
    def rate_change(self) -> float | None:
        if self.before_rate is None or self.after_rate is None:
            return None
        return round(self.after_rate - self.before_rate, 2)

    def as_json(self) -> dict[str, Any]:
        return {
            **self.training.as_json(),
            "before": {
                "calls": self.before_calls,
                "rate_per_100_calls": self.before_rate,
                "mean_score": self.before_mean_score,
            },
            "after": {
                "calls": self.after_calls,
                "rate_per_100_calls": self.after_rate,
                "mean_score": self.after_mean_score,
            },
            "rate_change": self.rate_change,
        }


def training_effect(
    training: Training, calls: Sequence[CallFact], *, window_days: int, now: datetime
) -> TrainingEffect:
    """The agent's rule rate and mean score before and after ``training`` (pure)."""
    window = timedelta(days=window_days)
    t = training.trained_at
    own = [c for c in calls if c.agent_id == training.agent_id]
    before = [c for c in own if t - window <= c.started_at < t]
    after = [c for c in own if t <= c.started_at < min(t + window, now)]

    def rate(group: list[CallFact]) -> float | None:
        if training.rule is None:
            return None
        rule = training.rule
        return per_100(sum(1 for c in group if c.has_standing(rule)), len(group))

    def mean(group: list[CallFact]) -> float | None:
        return _mean([c.score for c in group if c.score is not None])

    return TrainingEffect(
        training, len(before), rate(before), mean(before), len(after), rate(after), mean(after)
    )


# --- database -----------------------------------------------------------------------------


def _agents_in_scope(principal: Principal) -> ColumnElement[bool]:
    """A where-clause on TrainingRow.agent_id: the agents a supervisor coaches."""
    if principal.role is not Role.SUPERVISOR:
        return true()
    teams = sorted(principal.team_ids)
    rostered = select(AgentRow.agent_id).where(AgentRow.team_id.in_(teams))
    on_calls = select(CallRow.agent_id).where(CallRow.team_id.in_(teams))
    return or_(TrainingRow.agent_id.in_(rostered), TrainingRow.agent_id.in_(on_calls))


def _agent_coached_by(session: Session, principal: Principal, agent_id: str) -> bool:
    if principal.role is not Role.SUPERVISOR:
        return True
    teams = sorted(principal.team_ids)
    rostered = session.scalar(
        select(AgentRow.id).where(AgentRow.agent_id == agent_id, AgentRow.team_id.in_(teams))
    )
    on_calls = session.scalar(
        select(CallRow.id).where(CallRow.agent_id == agent_id, CallRow.team_id.in_(teams)).limit(1)
    )
    return rostered is not None or on_calls is not None


def _training(row: TrainingRow) -> Training:
    return Training(
        row.id, row.agent_id, row.rule, row.trained_at, row.note, row.recorded_by, row.created_at
    )


def record_training(
    session: Session,
    *,
    agent_id: str,
    rule: str | None,
    trained_at: datetime,
    note: str,
    principal: Principal,
    actor: Actor,
) -> Training:
    """Record that ``agent_id`` was re-trained (on ``rule``, or on the rubric as a whole)."""
    agent_id = agent_id.strip()
    rule = rule.strip().upper() if rule else None
    if rule is not None and rule not in RULES:
        raise InputError(f"未知规则 {rule} / unknown rule {rule}", field="rule")
    if not agent_id or not _agent_coached_by(session, principal, agent_id):
        raise InputError(
            f"坐席 {agent_id} 不在您负责的组内 / agent {agent_id!r} is not in your teams",
            field="agent_id",
        )
    with storage_errors("record_training"):
        row = TrainingRow(
            agent_id=agent_id,
            rule=rule,
            trained_at=aware(trained_at, "trained_at"),
            note=note.strip(),
            recorded_by_id=principal.user_id,
            recorded_by=principal.display_name or principal.username,
        )
        session.add(row)
        session.flush()
        record_event(
            session,
            actor=actor,
            event=EVENT_TRAINING,
            target=f"agent:{agent_id}",
            details={"rule": rule, "trained_at": row.trained_at.isoformat(), "id": row.id},
        )
        return _training(row)


def list_trainings(
    session: Session, *, principal: Principal, agent_id: str | None = None
) -> list[Training]:
    """The trainings of the agents the caller coaches or oversees, oldest first."""
    query = select(TrainingRow).where(_agents_in_scope(principal))
    if agent_id:
        query = query.where(TrainingRow.agent_id == agent_id)
    with storage_errors("list_trainings"):
        rows = session.scalars(query.order_by(TrainingRow.trained_at, TrainingRow.id))
        return [_training(r) for r in rows]


def coaching_for_period(
    session: Session,
    *,
    principal: Principal,
    start: datetime,
    end: datetime,
    params: CoachingParams,
) -> list[CoachingEntry]:
    """The coaching list of ``[start, end)`` within the caller's scope."""
    calls = load_calls(session, principal=principal, start=start, end=end)
    return coaching_list(calls, list_trainings(session, principal=principal), params)


def training_effects(
    session: Session,
    *,
    principal: Principal,
    params: CoachingParams,
    agent_id: str | None = None,
    now: datetime | None = None,
) -> list[TrainingEffect]:
    """Every training in scope with its before/after figures."""
    now = now or utcnow()
    window = timedelta(days=params.window_days)
    out = []
    for training in list_trainings(session, principal=principal, agent_id=agent_id):
        calls = load_calls(
            session,
            principal=principal,
            start=training.trained_at - window,
            end=training.trained_at + window,
        )
        out.append(training_effect(training, calls, window_days=params.window_days, now=now))
    return out
