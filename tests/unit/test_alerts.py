"""Alerts (issue 10): raised only for complaint intent or a fatal finding, once per call,
in the job's save; the list, acknowledgement and the stream's replay through the API; the
hub's poll; webhook deliveries retried with backoff. Live streams across processes (and
Redis) are in tests/integration/test_alerts_live.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from api_support import (
    OTHER_AGENT,
    OTHER_TEAM,
    Service,
    add_role_users,
    add_user,
    bearer,
    make_service,
    seed_alert,
)
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from qa_service.alerts import store
from qa_service.alerts.hub import AlertHub
from qa_service.alerts.triggers import AlertKind, alert_trigger
from qa_service.alerts.webhook import deliver_due
from qa_service.db import make_engine, make_session_factory, migrate
from qa_service.db.tables import AlertDeliveryRow, AlertRow, utcnow
from qa_service.domain import (
    CallAnalysis,
    CallMetadata,
    CallScore,
    CallStatus,
    Finding,
    Speaker,
    Utterance,
)
from qa_service.ingest.recordings import sha256_file
from qa_service.ingest.store import AudioStore
from qa_service.settings import Settings
from qa_service.worker.jobs import WorkerRuntime, run_analysis
from qa_service.worker.submit import submit_recording

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _run_in_fresh_loop(coro):  # type: ignore[no-untyped-def]
    """``asyncio.run`` in its own thread: Playwright's sync API (the browser tests, earlier
    in the same pytest process) may leave an event loop running in the main thread."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _finding(rule: str) -> Finding:
    return Finding(rule=rule, source="lexicon", confidence=0.9, speaker=Speaker.CUSTOMER)


def _score(*, fatal_rules: tuple[str, ...] = ()) -> CallScore:
    fatal = bool(fatal_rules)
    return CallScore(
        score=0.0 if fatal else 90.0,
        passed=not fatal,
        fatal=fatal,
        rubric_version="test",
        pass_mark=80.0,
        fatal_rules=fatal_rules,
    )


def _analysis(*rules: str, fatal_rules: tuple[str, ...] = (), **changes: Any) -> CallAnalysis:
    return CallAnalysis(
        call_id="c1",
        recording="c1.wav",
        status=changes.pop("status", CallStatus.ANALYZED),
        findings=tuple(_finding(r) for r in rules),
        score_detail=_score(fatal_rules=fatal_rules),
        **changes,
    )


# --- the trigger ---------------------------------------------------------------------


def test_complaint_intent_alerts() -> None:
    trigger = alert_trigger(_analysis("C01", "C03"))
    assert trigger is not None
    assert trigger.kinds == (AlertKind.COMPLAINT,) and trigger.rules == ("C01",)


def test_a_fatal_finding_alerts_with_its_rules() -> None:
    trigger = alert_trigger(_analysis("P03", "P02", fatal_rules=("P03",)))
    assert trigger is not None
    assert trigger.kinds == (AlertKind.FATAL,) and trigger.rules == ("P03",)
    both = alert_trigger(_analysis("C01", "P01", fatal_rules=("P01",)))
    assert both is not None and both.kinds == (AlertKind.COMPLAINT, AlertKind.FATAL)
    assert both.rules == ("C01", "P01")


@pytest.mark.parametrize(
    "rules", [(), ("P02",), ("C02", "C03"), ("R04", "A01", "M01", "M02", "M03", "P05", "P07")]
)
def test_other_findings_do_not_alert(rules: tuple[str, ...]) -> None:
    assert alert_trigger(_analysis(*rules)) is None


def test_a_failed_analysis_does_not_alert() -> None:
    assert alert_trigger(_analysis("C01", status=CallStatus.ERROR)) is None


# --- raised by the job, in its save ----------------------------------------------------


@dataclass
class ScriptedAnalyzer:
    """Answers each call with the findings scripted for it (no model)."""

    rules: tuple[str, ...] = ("C01",)
    fatal_rules: tuple[str, ...] = ()
    calls: list[str] = field(default_factory=list)

    def analyze(self, path, context, *, metadata=None) -> CallAnalysis:  # type: ignore[no-untyped-def]
        assert metadata is not None
        self.calls.append(metadata.call_id)
        sha, _ = sha256_file(path)
        return CallAnalysis(
            call_id=metadata.call_id,
            recording=metadata.recording,
            status=CallStatus.ANALYZED,
            duration_s=3.0,
            channels="mono",
            sha256=sha,
            metadata=metadata,
            utterances=(Utterance(Speaker.CUSTOMER, 0.0, 1.5, "我要去银保监投诉你们"),),
            findings=tuple(_finding(r) for r in self.rules),
            score_detail=_score(fatal_rules=self.fatal_rules),
            score=0.0 if self.fatal_rules else 90.0,
        )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'qa.sqlite3'}",
        REDIS_URL="",
        data_dir=tmp_path,
        audio_store=tmp_path / "audio",
        alert_webhook_url="http://127.0.0.1:9/hook",
        alert_webhook_backoff_s=[5, 30],
        alert_webhook_max_attempts=3,
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


class _NoQueue:
    def enqueue(self, call_id: str) -> bool:
        return True

    def is_live(self, call_id: str) -> bool:
        return True

    def discard(self, call_id: str) -> None:
        pass

    def ping(self) -> None:
        pass


def analyse_upload(
    settings: Settings,
    engine: Engine,
    analyzer: ScriptedAnalyzer,
    *,
    call_id: str,
    wav: Path,
    team_id: str | None = "T1",
    agent_id: str = "A1",
) -> str:
    """Submit ``wav`` as call ``call_id`` and run the analysis job on it, as a worker does."""
    sessions = make_session_factory(engine)
    stored = AudioStore(settings.resolved_audio_store).put_file(wav, ext=".wav")
    metadata = CallMetadata(
        call_id=call_id, recording=wav.name, agent_id=agent_id, team_id=team_id, has_sidecar=True
    )
    submit_recording(
        sessions,
        stored=stored,
        filename=wav.name,
        metadata=metadata,
        uploaded_by="tests",
        queue=_NoQueue(),
    )
    runtime = WorkerRuntime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        analyzer=analyzer,
        store=AudioStore(settings.resolved_audio_store),
        versions={},
    )
    return run_analysis(runtime, call_id)


def _alerts(sessions: sessionmaker[Session]) -> list[AlertRow]:
    with sessions() as session:
        return list(session.scalars(select(AlertRow).order_by(AlertRow.id)))


def test_the_job_raises_one_alert_for_a_complaint_call(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    analyzer = ScriptedAnalyzer(rules=("C01",))
    wav = FIXTURES / "stereo_8k.wav"
    assert analyse_upload(settings, engine, analyzer, call_id="c-complaint", wav=wav) == "analyzed"
    (alert,) = _alerts(sessions)
    assert alert.kinds == ["complaint"] and alert.rules == ["C01"]
    assert (alert.team_id, alert.agent_id, alert.acknowledged_at) == ("T1", "A1", None)
    # The webhook delivery is queued with it, in the same transaction; nothing was sent.
    with sessions() as session:
        delivery = session.scalars(select(AlertDeliveryRow)).one()
    assert (delivery.alert_id, delivery.status, delivery.attempts) == (alert.id, "pending", 0)

    # The job again (a retried or duplicated job): nothing to claim, no second alert.
    assert analyse_upload(settings, engine, analyzer, call_id="c-complaint", wav=wav) in (
        "analyzed",
    )
    assert len(_alerts(sessions)) == 1


def test_the_job_raises_no_alert_for_an_ordinary_call(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    analyzer = ScriptedAnalyzer(rules=("P02", "C03", "R03"))
    analyse_upload(settings, engine, analyzer, call_id="c-plain", wav=FIXTURES / "mono_8k.wav")
    assert _alerts(sessions) == []


def test_a_fatal_call_alerts_the_roster_team_when_the_call_has_none(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    from qa_service.db.tables import AgentRow

    with sessions.begin() as session:
        session.add(AgentRow(agent_id="A9", team_id="T9"))
    analyzer = ScriptedAnalyzer(rules=("P03",), fatal_rules=("P03",))
    analyse_upload(
        settings, engine, analyzer, call_id="c-fatal", wav=FIXTURES / "mono_8k.wav",
        team_id=None, agent_id="A9",
    )  # fmt: skip
    (alert,) = _alerts(sessions)
    assert alert.kinds == ["fatal"] and alert.rules == ["P03"] and alert.team_id == "T9"


# --- webhook deliveries ----------------------------------------------------------------


def test_webhook_is_retried_with_backoff_then_delivered(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    analyse_upload(
        settings, engine, ScriptedAnalyzer(), call_id="c-hook", wav=FIXTURES / "mono_8k.wav"
    )
    answers = [503, 200]
    posted: list[dict[str, Any]] = []

    def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        posted.append({"url": url, "body": json.loads(body), "headers": headers})
        return answers.pop(0)

    now = utcnow()
    first = deliver_due(sessions, settings, now=now, post=post)
    assert first.retrying and first.errors == {first.retrying[0]: "HTTP 503"}
    # Not due again before its backoff (5 s) has passed.
    assert deliver_due(sessions, settings, now=now + timedelta(seconds=1), post=post).retrying == ()
    second = deliver_due(sessions, settings, now=now + timedelta(seconds=10), post=post)
    assert second.delivered == first.retrying
    assert [p["url"] for p in posted] == ["http://127.0.0.1:9/hook"] * 2
    assert posted[0]["body"]["event"] == "alert"
    assert posted[0]["body"]["alert"]["call_id"] == "c-hook"
    assert posted[1]["headers"]["X-QA-Delivery-Attempt"] == "2"
    with sessions() as session:
        row = session.scalars(select(AlertDeliveryRow)).one()
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 2, 200)
    assert row.delivered_at is not None
    # Delivered is final: nothing is sent again.
    assert deliver_due(sessions, settings, now=now + timedelta(hours=1), post=post).delivered == ()


def test_webhook_gives_up_after_the_last_attempt(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    analyse_upload(
        settings, engine, ScriptedAnalyzer(), call_id="c-dead", wav=FIXTURES / "mono_8k.wav"
    )

    def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        raise ConnectionRefusedError("connection refused")

    now = utcnow()
    for step in range(3):
        deliver_due(sessions, settings, now=now + timedelta(hours=step), post=post)
    with sessions() as session:
        row = session.scalars(select(AlertDeliveryRow)).one()
    assert (row.status, row.attempts) == ("failed", 3)
    assert "connection refused" in (row.last_error or "")


# --- the API ---------------------------------------------------------------------------


def _seed_call(
    service: Service, call_id: str, *, agent_id: str = "A1", team_id: str = "T1"
) -> None:
    """An analysed C01 call without a recording (alerts need none)."""
    from qa_service.db.repository import save_analysis

    analysis = CallAnalysis(
        call_id=call_id,
        recording=f"{call_id}.wav",
        status=CallStatus.ANALYZED,
        sha256=hashlib.sha256(call_id.encode()).hexdigest(),
        metadata=CallMetadata(
            call_id=call_id, recording=f"{call_id}.wav", agent_id=agent_id, team_id=team_id
        ),
        findings=(_finding("C01"),),
    )
    with service.state.sessions.begin() as session:
        save_analysis(session, analysis=analysis, source_path=None, versions={})


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    service = make_service(f"sqlite:///{tmp_path / 'qa.sqlite3'}", tmp_path)
    add_role_users(service)
    add_user(service, "supervisor2", "supervisor", teams=(OTHER_TEAM,))
    _seed_call(service, "own-1")
    _seed_call(service, "own-2")
    _seed_call(service, "other-1", agent_id=OTHER_AGENT, team_id=OTHER_TEAM)
    yield service
    service.state.engine.dispose()


def test_alert_list_ack_and_scope(service: Service) -> None:
    client = TestClient(service.app)
    sup, other_sup = bearer(service.tokens["supervisor"]), bearer(service.tokens["supervisor2"])
    own_1, own_2 = seed_alert(service, "own-1"), seed_alert(service, "own-2", kinds=("fatal",))
    other = seed_alert(service, "other-1")

    listed = client.get("/api/v1/alerts", headers=sup).json()["items"]
    assert [a["id"] for a in listed] == [own_2, own_1]  # newest first, own team only
    assert listed[0]["kinds"] == ["fatal"] and listed[1]["call_id"] == "own-1"

    acked = client.post(f"/api/v1/alerts/{own_2}/ack", headers=sup)
    assert acked.status_code == 200
    assert acked.json()["acknowledged_by"] == "supervisor" and acked.json()["acknowledged"]
    # Unacknowledged first, then newest first.
    assert [a["id"] for a in client.get("/api/v1/alerts", headers=sup).json()["items"]] == [
        own_1,
        own_2,
    ]
    unacked = client.get("/api/v1/alerts", params={"acknowledged": False}, headers=sup).json()
    assert [a["id"] for a in unacked["items"]] == [own_1]
    # Another team's supervisor neither sees nor acknowledges it: 404, not 403.
    assert [a["id"] for a in client.get("/api/v1/alerts", headers=other_sup).json()["items"]] == [
        other
    ]
    refused = client.post(f"/api/v1/alerts/{own_1}/ack", headers=other_sup)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "alert_not_found"
    # A second acknowledgement keeps the first one's name and time.
    again = client.post(f"/api/v1/alerts/{own_2}/ack", headers=bearer(service.tokens["supervisor"]))
    assert again.json()["acknowledged_at"] == acked.json()["acknowledged_at"]
    # Managers see every team's alerts.
    managers = client.get("/api/v1/alerts", headers=bearer(service.tokens["manager"])).json()
    assert {a["id"] for a in managers["items"]} == {own_1, own_2, other}


def _events(body: str) -> list[dict[str, Any]]:
    events = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if fields.get("event") == "alert":
            events.append({"id": int(fields["id"]), **json.loads(fields["data"])})
    return events


def test_stream_resumes_after_last_event_id_with_the_callers_alerts_only(
    service: Service,
) -> None:
    client = TestClient(service.app)
    own_1, own_2 = seed_alert(service, "own-1"), seed_alert(service, "own-2")
    seed_alert(service, "other-1")
    headers = {**bearer(service.tokens["supervisor"]), "Last-Event-ID": str(own_1)}
    response = client.get("/api/v1/alerts/stream", params={"max_s": 0}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.startswith("retry: ")
    assert [(e["id"], e["call_id"]) for e in _events(response.text)] == [(own_2, "own-2")]
    everything = client.get(
        "/api/v1/alerts/stream",
        params={"max_s": 0, "after": 0},
        headers=bearer(service.tokens["supervisor"]),
    )
    assert [e["id"] for e in _events(everything.text)] == [own_1, own_2]


def test_stream_is_refused_to_roles_that_receive_no_alerts(service: Service) -> None:
    client = TestClient(service.app)
    for role in ("inspector", "agent", "admin"):
        response = client.get(
            "/api/v1/alerts/stream", params={"max_s": 0}, headers=bearer(service.tokens[role])
        )
        assert response.status_code == 403, role


def test_hub_pushes_new_alerts_to_open_streams_once(service: Service) -> None:
    hub = AlertHub(service.state.sessions, service.state.settings)
    before = seed_alert(service, "own-1")

    async def run() -> list[int]:
        sub = hub.subscribe(asyncio.get_running_loop())
        await asyncio.to_thread(hub.prime)  # alerts raised before the stream are not news
        assert await asyncio.to_thread(hub.poll) == []
        new = seed_alert(service, "own-2")
        found = await asyncio.to_thread(hub.poll)
        assert [a.id for a in found] == [new]
        assert await asyncio.to_thread(hub.poll) == []  # handed out once
        got = [await asyncio.wait_for(sub.queue.get(), 1.0)]
        hub.unsubscribe(sub)
        return [a.id for a in got]

    try:
        pushed = _run_in_fresh_loop(run())
    finally:
        hub.close()
    assert before not in pushed and len(pushed) == 1


def test_credentials_of_an_open_stream_are_rechecked(service: Service) -> None:
    from qa_service.accounts.sessions import resolve_api_token

    with service.state.sessions() as session:
        principal = resolve_api_token(session, token=service.tokens["supervisor"])
        session.commit()
    hub = AlertHub(service.state.sessions, service.state.settings)
    assert hub.credentials_live(principal)
    from qa_service.db.tables import ApiTokenRow

    with service.state.sessions.begin() as session:
        token = session.get(ApiTokenRow, principal.token_id)
        assert token is not None
        token.revoked_at = utcnow()
    assert not hub.credentials_live(principal)


def test_alert_count_stays_one_per_call(service: Service) -> None:
    seed_alert(service, "own-1")
    with service.state.sessions.begin() as session:
        from qa_service.alerts.triggers import AlertTrigger
        from qa_service.db.tables import CallRow

        pk = session.scalars(select(CallRow.id).where(CallRow.call_id == "own-1")).one()
        again = store.raise_alert(
            session,
            call_pk=pk,
            trigger=AlertTrigger((AlertKind.FATAL,), ("P01",)),
            now=utcnow(),
        )
        assert again is None
        count = session.scalar(select(func.count()).select_from(AlertRow))
        merged = session.scalars(select(AlertRow)).one()
    assert count == 1 and merged.kinds == ["complaint", "fatal"]
    assert merged.rules == ["C01", "P01"]
