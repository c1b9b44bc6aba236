"""Late uploads join complaints (issue 11): a call analysed after its customer complained
is linked when the analysis is saved (worker job and ``qa-service analyze --store``), and
``qa-service complaints relink [--all]`` links calls stored before; nothing twice.

The worker job runs in this process with a scripted analyser (no model); the CLI's
analyser is replaced the same way. SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
import struct
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from api_support import Service, add_user, make_service
from sqlalchemy import func, select
from typer.testing import CliRunner

from qa_service.accounts.roles import Principal, Role
from qa_service.audit.events import Actor
from qa_service.cli.main import app
from qa_service.complaints.register import (
    ComplaintInput,
    link_saved_call,
    record_outcome,
    register_complaint,
)
from qa_service.complaints.vocabulary import ComplaintType, Level, Outcome, Source
from qa_service.db.repository import save_analysis
from qa_service.db.tables import (
    AuditEventRow,
    CallRow,
    ComplaintCallRow,
    ComplaintRow,
    UserRow,
)
from qa_service.domain import CallAnalysis, CallMetadata, CallStatus, Finding, Speaker, Utterance
from qa_service.ingest.recordings import sha256_file
from qa_service.settings import get_settings
from qa_service.worker.jobs import WorkerRuntime, run_analysis
from qa_service.worker.submit import submit_recording

CST = timezone(timedelta(hours=8))
# Today is after these dates: the complaint of 20 November is recent, that of 1 September
# (closed) is not.
RECEIVED = datetime(2026, 11, 20, 10, 0, tzinfo=CST)
OLD_RECEIVED = datetime(2026, 9, 1, 10, 0, tzinfo=CST)
SYSTEM = Actor.system("tests")


@dataclass(frozen=True)
class Upload:
    call_id: str
    customer: str | None
    started_at: datetime
    team: str = "T1"
    agency: str = "AG1"
    phone: str | None = None

    def metadata(self, recording: str) -> CallMetadata:
        return CallMetadata(
            call_id=self.call_id,
            recording=recording,
            agent_id=f"A-{self.team}",
            customer_id=self.customer,
            dialed_number=self.phone,
            team_id=self.team,
            agency_id=self.agency,
            started_at=self.started_at,
            channels="mono",
            has_sidecar=True,
        )


def _wav(path: Path) -> Path:
    """A tiny WAV with bytes of its own (the store is content-addressed)."""
    rng = random.Random(path.name)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"".join(struct.pack("<h", rng.randint(-900, 900)) for _ in range(800)))
    return path


def _analysis(path: Path, metadata: CallMetadata) -> CallAnalysis:
    sha, _ = sha256_file(path)
    text = "我要去投诉你们"
    return CallAnalysis(
        call_id=metadata.call_id,
        recording=metadata.recording,
        status=CallStatus.ANALYZED,
        duration_s=0.1,
        channels="mono",
        sha256=sha,
        metadata=metadata,
        utterances=(Utterance(Speaker.CUSTOMER, 0.0, 0.1, text, 0),),
        findings=(Finding("C01", "lexicon", 0.9, Speaker.CUSTOMER, 0.0, 0.1, text),),
        score=95.0,
    )


class _ScriptedAnalyzer:
    def analyze(self, path, context, *, metadata=None) -> CallAnalysis:  # type: ignore[no-untyped-def]
        assert metadata is not None
        return _analysis(path, metadata)


class _NoQueue:
    def enqueue(self, call_id: str) -> bool:
        return True

    def is_live(self, call_id: str) -> bool:
        return True

    def discard(self, call_id: str) -> None:
        pass

    def ping(self) -> None:
        pass


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[Service]:
    service = make_service(db_url, tmp_path)
    yield service
    service.state.engine.dispose()


def _upload(service: Service, upload: Upload, tmp: Path) -> str:
    """Submit and analyse ``upload`` through the worker's job, as a worker would."""
    wav = _wav(tmp / f"{upload.call_id}.wav")
    state = service.state
    stored = state.store.put_file(wav, ext=".wav")
    submit_recording(
        state.sessions,
        stored=stored,
        filename=wav.name,
        metadata=upload.metadata(wav.name),
        uploaded_by="tests",
        queue=_NoQueue(),
    )
    runtime = WorkerRuntime(
        settings=state.settings,
        engine=state.engine,
        sessions=state.sessions,
        analyzer=_ScriptedAnalyzer(),
        store=state.store,
        versions={},
    )
    return run_analysis(runtime, upload.call_id)


def _store_without_hook(service: Service, upload: Upload, tmp: Path) -> None:
    """A call saved as before late linking existed (only ``relink`` can find it)."""
    wav = _wav(tmp / f"{upload.call_id}.wav")
    with service.state.sessions.begin() as session:
        save_analysis(
            session,
            analysis=_analysis(wav, upload.metadata(wav.name)),
            source_path=None,
            versions={},
        )


def _register(service: Service, *, received: datetime, **customer: str) -> int:
    with service.state.sessions.begin() as session:
        done = register_complaint(
            session,
            data=ComplaintInput(
                source=Source.BANK_FORWARDED,
                level=Level.SERIOUS,
                type=ComplaintType.ABUSE,
                received_at=received,
                **customer,
            ),
            link_days=service.state.settings.complaint_link_days,
            actor=SYSTEM,
        )
    return done.complaint_id


def _close(service: Service, complaint_id: int, outcome: Outcome, follow_up: str) -> None:
    """Record the outcome as a manager does (the register's own function)."""
    if "manager" not in service.tokens:
        add_user(service, "manager", "manager")
    with service.state.sessions.begin() as session:
        user_id = session.scalars(select(UserRow.id).where(UserRow.username == "manager")).one()
        manager = Principal(
            user_id=user_id, username="manager", display_name="经理", role=Role.MANAGER
        )
        record_outcome(
            session,
            complaint_id=complaint_id,
            outcome=outcome,
            follow_up=follow_up,
            principal=manager,
            actor=SYSTEM,
        )


def _linked(service: Service, complaint_id: int) -> list[str]:
    with service.state.sessions() as session:
        return list(
            session.scalars(
                select(CallRow.call_id)
                .join(ComplaintCallRow, ComplaintCallRow.call_id == CallRow.id)
                .where(ComplaintCallRow.complaint_id == complaint_id)
                .order_by(CallRow.call_id)
            )
        )


def _link_rows(service: Service) -> int:
    with service.state.sessions() as session:
        return session.scalar(select(func.count()).select_from(ComplaintCallRow)) or 0


def _placement(service: Service, complaint_id: int) -> tuple[Any, ...]:
    with service.state.sessions() as session:
        row = session.get(ComplaintRow, complaint_id)
        assert row is not None
        return (row.team_id, row.agency_id, row.agent_id)


def test_the_worker_links_a_call_uploaded_after_the_complaint(
    service: Service, tmp_path: Path
) -> None:
    _upload(service, Upload("k1-early", "K1", RECEIVED - timedelta(days=20)), tmp_path)
    by_id = _register(service, received=RECEIVED, customer_id="K1")
    by_phone = _register(service, received=RECEIVED, phone="13800138000")
    assert _linked(service, by_id) == ["k1-early"] and _linked(service, by_phone) == []
    assert _placement(service, by_id) == ("T1", "AG1", "A-T1")

    uploads = [
        # K1's late recording, from another team: the complaint moves to it (latest call)
        Upload("k1-late", "K1", RECEIVED - timedelta(days=2), team="T3", agency="AG2"),
        Upload("k1-after", "K1", RECEIVED + timedelta(hours=1)),  # after the complaint
        Upload("k1-old", "K1", RECEIVED - timedelta(days=31)),  # outside the 30 days
        Upload("k9", "K9", RECEIVED - timedelta(days=1)),  # somebody else
        # the customer complained by phone; the call names the number
        Upload("k2-late", "K2", RECEIVED - timedelta(days=5), phone="13800138000"),
    ]
    for upload in uploads:
        assert _upload(service, upload, tmp_path) == "analyzed"

    assert _linked(service, by_id) == ["k1-early", "k1-late"]
    assert _linked(service, by_phone) == ["k2-late"]
    assert _placement(service, by_id) == ("T3", "AG2", "A-T3")
    with service.state.sessions() as session:
        events = session.scalars(
            select(AuditEventRow).where(AuditEventRow.event == "complaint.link")
        ).all()
    assert sorted(e.target for e in events) == sorted(
        [f"complaint:{by_id}", f"complaint:{by_phone}"]
    )

    # A duplicated job, and the hook called again on the same call: no second link.
    links = _link_rows(service)
    assert _upload(service, uploads[0], tmp_path) == "analyzed"
    with service.state.sessions.begin() as session:
        pk = session.scalars(select(CallRow.id).where(CallRow.call_id == "k1-late")).one()
        assert link_saved_call(session, call_pk=pk, link_days=30, actor=SYSTEM) == ()
    assert _link_rows(service) == links


def test_a_late_call_is_not_added_to_an_old_closed_complaint(
    service: Service, tmp_path: Path
) -> None:
    closed = _register(service, received=OLD_RECEIVED, customer_id="K3")
    _close(service, closed, Outcome.NOT_AT_FAULT, "已结案")
    _upload(service, Upload("k3-late", "K3", OLD_RECEIVED - timedelta(days=3)), tmp_path)
    assert _linked(service, closed) == []


@pytest.fixture
def cli(service: Service, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    settings = service.state.settings
    monkeypatch.setenv("DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.setenv("QA_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_relink_links_stored_calls_once_and_all_reaches_closed_ones(
    service: Service, cli: CliRunner, tmp_path: Path
) -> None:
    recent = _register(service, received=RECEIVED, customer_id="K1")
    closed = _register(service, received=OLD_RECEIVED, customer_id="K3")
    _close(service, closed, Outcome.AT_FAULT, "已整改")
    _store_without_hook(service, Upload("k1-stored", "K1", RECEIVED - timedelta(days=4)), tmp_path)
    _store_without_hook(
        service, Upload("k3-stored", "K3", OLD_RECEIVED - timedelta(days=4)), tmp_path
    )
    assert _linked(service, recent) == [] and _linked(service, closed) == []

    first = cli.invoke(app, ["complaints", "relink"])
    assert first.exit_code == 0, first.output
    assert "新关联通话 1 通" in first.stdout
    assert _linked(service, recent) == ["k1-stored"] and _linked(service, closed) == []

    everything = cli.invoke(app, ["complaints", "relink", "--all"])
    assert everything.exit_code == 0, everything.output
    assert _linked(service, closed) == ["k3-stored"]

    links = _link_rows(service)
    again = cli.invoke(app, ["complaints", "relink", "--all"])
    assert again.exit_code == 0 and "新关联通话 0 通" in again.stdout
    assert _link_rows(service) == links == 2


def test_cli_analyze_store_links_a_late_recording(
    service: Service, cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    complaint = _register(service, received=RECEIVED, customer_id="K5")
    upload = Upload("k5-late", "K5", RECEIVED - timedelta(days=1), team="T2")
    folder = tmp_path / "recordings"
    folder.mkdir()
    wav = _wav(folder / "k5-late.wav")

    class CliAnalyzer:  # stands in for the Whisper pipeline; reads no sidecar
        def __init__(self, settings: object) -> None:
            pass

        def analyze(self, path: Path, context: object) -> CallAnalysis:
            return _analysis(path, upload.metadata(path.name))

    monkeypatch.setattr("qa_service.pipeline.Analyzer", CliAnalyzer)
    for _ in range(2):  # analysing the same recording again links nothing more
        result = cli.invoke(app, ["analyze", str(wav), "--json"])
        assert result.exit_code == 0, result.output
    assert _linked(service, complaint) == ["k5-late"]
    assert _link_rows(service) == 1
    assert _placement(service, complaint) == ("T2", "AG1", "A-T2")
