"""Helpers shared by the API tests: an app on a throw-away database, users, seeded calls.

The queue is a recording fake (``FakeQueue``): API tests check what would be queued, the
worker tests check the queue itself, and the end-to-end test runs the real thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fastapi import FastAPI

from qa_service.accounts.service import create_user
from qa_service.accounts.sessions import create_api_token
from qa_service.api.app import build_state, create_app
from qa_service.api.state import ServiceState
from qa_service.db.repository import save_analysis
from qa_service.db.session import migrate
from qa_service.domain import (
    CallAnalysis,
    CallMetadata,
    CallStatus,
    Finding,
    Speaker,
    Utterance,
)
from qa_service.review.queue import classify_call
from qa_service.settings import Settings

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CST = timezone(timedelta(hours=8))
# Strong enough for the policy (length, classes, zxcvbn), one per role.
PASSWORDS = {
    "admin": "Plum-Kettle-7391!x",
    "manager": "Quartz-Lily-4822!x",
    "supervisor": "Maple-Orbit-5513!x",
    "inspector": "Cobalt-Fern-6604!x",
    "agent": "Tundra-Wharf-2295!x",
}
OWN_TEAM, OTHER_TEAM = "T1", "T2"
OWN_AGENT, OTHER_AGENT = "A1", "A2"


@dataclass
class FakeQueue:
    """Records the call ids it is given; every job stays live (nothing runs them)."""

    jobs: list[str] = field(default_factory=list)
    live: set[str] = field(default_factory=set)
    up: bool = True

    def enqueue(self, call_id: str) -> bool:
        if call_id in self.live:
            return False
        self.live.add(call_id)
        self.jobs.append(call_id)
        return True

    def is_live(self, call_id: str) -> bool:
        return call_id in self.live

    def discard(self, call_id: str) -> None:
        self.live.discard(call_id)

    def ping(self) -> None:
        from qa_service.errors import QueueUnavailable

        if not self.up:
            raise QueueUnavailable("队列不可用 / queue down")


@dataclass
class Service:
    app: FastAPI
    state: ServiceState
    queue: FakeQueue
    tokens: dict[str, str] = field(default_factory=dict)


def make_service(db_url: str, tmp_path: Path, **settings: object) -> Service:
    """An app on a migrated ``db_url`` with its audio store and temp files under tmp_path."""
    config = Settings(
        DATABASE_URL=db_url,
        REDIS_URL="",
        environment="test",
        data_dir=tmp_path / "var",
        audio_store=tmp_path / "audio",
        **settings,
    )
    queue = FakeQueue()
    state = build_state(config, queue=queue)
    migrate(state.engine)
    return Service(create_app(config, state=state), state, queue)


def add_user(
    service: Service,
    username: str,
    role: str,
    *,
    teams: tuple[str, ...] = (),
    agent_id: str | None = None,
    must_change_password: bool = False,
) -> str:
    """Create an account with the role's password and return an API token for it."""
    with service.state.sessions.begin() as session:
        account = create_user(
            session,
            username=username,
            role=role,
            password=PASSWORDS[role],
            team_ids=teams,
            agent_id=agent_id,
            must_change_password=must_change_password,
            settings=service.state.settings,
        )
        token = create_api_token(session, user_id=account.user_id, name="tests")
    service.tokens[username] = token
    return token


def add_role_users(service: Service) -> None:
    """One user per role: supervisor of OWN_TEAM, agent OWN_AGENT (named after the role)."""
    add_user(service, "admin", "admin")
    add_user(service, "manager", "manager")
    add_user(service, "supervisor", "supervisor", teams=(OWN_TEAM,))
    add_user(service, "inspector", "inspector")
    add_user(service, "agent", "agent", agent_id=OWN_AGENT)


def seed_call(
    service: Service,
    call_id: str,
    *,
    wav: str = "stereo_8k.wav",
    agent_id: str = OWN_AGENT,
    team_id: str = OWN_TEAM,
    texts: tuple[str, ...] = ("您好，这里是信用卡中心",),
    started_at: datetime | None = None,
    score: float = 80.0,
    rules: tuple[str, ...] = ("P03",),
) -> str:
    """Store a fixture recording and an analysed call for it; returns its sha256."""
    stored = service.state.store.put_file(FIXTURES / wav, ext=".wav")
    metadata = CallMetadata(
        call_id=call_id,
        recording=wav,
        agent_id=agent_id,
        team_id=team_id,
        agency_id="AG1",
        started_at=started_at or datetime(2026, 11, 6, 14, 32, 18, tzinfo=CST),
        channels="stereo",
        has_sidecar=True,
    )
    utterances = tuple(
        Utterance(Speaker.AGENT, float(i), float(i) + 1.0, text, 0) for i, text in enumerate(texts)
    )
    findings = tuple(
        Finding(rule=rule, source="lexicon", confidence=0.9, speaker=Speaker.AGENT, text=texts[0])
        for rule in rules
    )
    analysis = CallAnalysis(
        call_id=call_id,
        recording=wav,
        status=CallStatus.ANALYZED,
        duration_s=4.0,
        channels="stereo",
        sha256=stored.sha256,
        metadata=metadata,
        utterances=utterances,
        findings=findings,
        score=score,
    )
    with service.state.sessions.begin() as session:
        call_pk = save_analysis(session, analysis=analysis, source_path=None, versions={})
        assert call_pk is not None
        # As the analysis job does: the call gets its review state (flagged with findings).
        classify_call(session, call_pk=call_pk, settings=service.state.settings)
    return stored.sha256


def seed_alert(service: Service, call_id: str, *, kinds: tuple[str, ...] = ("complaint",)) -> int:
    """Raise an alert on an already seeded call, as the analysis job does; returns its id."""
    from sqlalchemy import select

    from qa_service.alerts.store import raise_alert
    from qa_service.alerts.triggers import AlertKind, AlertTrigger
    from qa_service.db.tables import CallRow, utcnow

    trigger = AlertTrigger(tuple(AlertKind(k) for k in kinds), ("C01",))
    with service.state.sessions.begin() as session:
        pk = session.scalars(select(CallRow.id).where(CallRow.call_id == call_id)).one()
        alert_id = raise_alert(session, call_pk=pk, trigger=trigger, now=utcnow())
    assert alert_id is not None
    return alert_id


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def finding_ids(service: Service, call_id: str) -> list[int]:
    """The stored finding ids of a seeded call, in stored order."""
    from sqlalchemy import select

    from qa_service.db.tables import CallRow, FindingRow

    with service.state.sessions() as session:
        return list(
            session.scalars(
                select(FindingRow.id)
                .join(CallRow, CallRow.id == FindingRow.call_id)
                .where(CallRow.call_id == call_id)
                .order_by(FindingRow.id)
            )
        )


def seed_appeal(service: Service, call_id: str, *, inspector: str, agent: str) -> int:
    """Drive a seeded call through review to an open appeal on its first finding, as the
    users ``inspector`` and ``agent`` would; returns the appeal id."""
    from sqlalchemy import select

    from qa_service.accounts.sessions import resolve_api_token
    from qa_service.db.tables import CallRow
    from qa_service.review import decisions, feedback, queue

    settings = service.state.settings
    with service.state.sessions.begin() as session:
        qa = resolve_api_token(session, token=service.tokens[inspector], settings=settings)
        who = resolve_api_token(session, token=service.tokens[agent], settings=settings)
        pk = session.scalars(select(CallRow.id).where(CallRow.call_id == call_id)).one()
        [first, *rest] = finding_ids(service, call_id)
        queue.claim(session, call_pk=pk, principal=qa, settings=settings)
        for fid in (first, *rest):
            decisions.decide(
                session,
                finding_id=fid,
                verdict=decisions.Verdict.CONFIRM,
                principal=qa,
                settings=settings,
            )
        decisions.complete(session, call_pk=pk, principal=qa)
        notes = {fid: "注意措辞" for fid in (first, *rest)}
        feedback.send_feedback(session, call_pk=pk, principal=qa, settings=settings, notes=notes)
        return feedback.appeal(session, finding_id=first, principal=who, reason="我没有这样说")
