"""The review layer on SQLite, without HTTP: leases with an injected clock, re-analysis,
and what review decisions teach (exported labels, per-rule precision, the trainer's input)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from api_support import (
    FIXTURES,
    Service,
    add_role_users,
    finding_ids,
    make_service,
    seed_appeal,
    seed_call,
)
from sqlalchemy import select
from sqlalchemy.orm import Session
from trainer_support import load_trainer

from qa_service.accounts.roles import Principal
from qa_service.accounts.sessions import resolve_api_token
from qa_service.db.tables import CallRow, utcnow
from qa_service.evaluation.text import load_lines
from qa_service.review import decisions, history, queue
from qa_service.review.labels import review_labels, review_precision
from qa_service.review.states import ReviewState

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    service = make_service(f"sqlite:///{tmp_path / 'qa.sqlite3'}", tmp_path)
    add_role_users(service)
    yield service
    service.state.engine.dispose()


def _who(service: Service, session: Session, name: str) -> Principal:
    return resolve_api_token(session, token=service.tokens[name], settings=service.state.settings)


def _pk(session: Session, call_id: str) -> int:
    return session.scalars(select(CallRow.id).where(CallRow.call_id == call_id)).one()


def _wav(tmp_path: Path, marker: str) -> str:
    path = tmp_path / f"{marker}.wav"
    path.write_bytes((FIXTURES / "stereo_8k.wav").read_bytes() + marker.encode())
    return str(path)


def test_an_idle_claim_returns_to_the_queue(service: Service, tmp_path: Path) -> None:
    seed_call(service, "c-1", wav=_wav(tmp_path, "a"))
    settings = service.state.settings
    now = utcnow()
    with service.state.sessions.begin() as session:
        inspector = _who(service, session, "inspector")
        queue.claim(
            session, call_pk=_pk(session, "c-1"), principal=inspector, settings=settings, now=now
        )
    everyone = queue.QueueFilters(include_claimed=True)
    with service.state.sessions.begin() as session:
        almost = now + timedelta(minutes=settings.review_lease_minutes) - timedelta(seconds=1)
        [item] = queue.list_queue(
            session, principal=inspector, scope=None, filters=everyone, now=almost
        )
        assert item.state == "in_review" and item.assignee == "inspector"
    with service.state.sessions.begin() as session:
        later = now + timedelta(minutes=settings.review_lease_minutes)
        [item] = queue.list_queue(
            session, principal=inspector, scope=None, filters=everyone, now=later
        )
        assert item.state == "flagged" and item.assignee is None
        events = history.events_for_call(session, call_pk=_pk(session, "c-1"))
    assert [(e.action, e.to_state, e.actor) for e in events][-1] == ("expire", "flagged", None)


def test_activity_renews_the_lease(service: Service, tmp_path: Path) -> None:
    seed_call(service, "c-1", wav=_wav(tmp_path, "a"), rules=("P02", "P07"))
    settings = service.state.settings
    now = utcnow()
    first, second = finding_ids(service, "c-1")
    with service.state.sessions.begin() as session:
        inspector = _who(service, session, "inspector")
        pk = _pk(session, "c-1")
        queue.claim(session, call_pk=pk, principal=inspector, settings=settings, now=now)
        later = now + timedelta(minutes=settings.review_lease_minutes - 1)
        decisions.decide(
            session,
            finding_id=first,
            verdict=decisions.Verdict.CONFIRM,
            principal=inspector,
            settings=settings,
            now=later,
        )
    with service.state.sessions.begin() as session:
        # Past the first lease, within the renewed one: still held, decisions still go in.
        decisions.decide(
            session,
            finding_id=second,
            verdict=decisions.Verdict.CONFIRM,
            principal=inspector,
            settings=settings,
            now=now + timedelta(minutes=settings.review_lease_minutes + 5),
        )
        assert queue.review_row(session, call_pk=pk).state == ReviewState.IN_REVIEW


def test_a_reanalysis_does_not_undo_a_review(service: Service, tmp_path: Path) -> None:
    wav = _wav(tmp_path, "a")
    seed_call(service, "c-1", wav=wav)
    with service.state.sessions.begin() as session:
        inspector = _who(service, session, "inspector")
        queue.claim(
            session,
            call_pk=_pk(session, "c-1"),
            principal=inspector,
            settings=service.state.settings,
        )
    seed_call(service, "c-1", wav=wav, rules=())  # analysed again, now clean
    with service.state.sessions() as session:
        assert queue.review_row(session, call_pk=_pk(session, "c-1")).state == "in_review"
    seed_call(service, "c-2", wav=_wav(tmp_path, "b"))
    seed_call(service, "c-2", wav=_wav(tmp_path, "b"), rules=())  # not claimed: re-classified
    with service.state.sessions() as session:
        assert queue.review_row(session, call_pk=_pk(session, "c-2")).state == "passed"


def test_review_labels_feed_the_trainer(service: Service, tmp_path: Path) -> None:
    texts = ("你这个老赖，法院马上来抓你", "你们这样搞，我明早就去金融监管局窗口实名投诉你这个工号")
    seed_call(service, "c-1", wav=_wav(tmp_path, "a"), rules=("P02", "P03"), texts=texts)
    settings = service.state.settings
    p02, p03 = finding_ids(service, "c-1")
    with service.state.sessions.begin() as session:
        inspector = _who(service, session, "inspector")
        pk = _pk(session, "c-1")
        queue.claim(session, call_pk=pk, principal=inspector, settings=settings)
        decisions.decide(
            session,
            finding_id=p02,
            verdict=decisions.Verdict.CONFIRM,
            principal=inspector,
            settings=settings,
        )
        decisions.decide(
            session,
            finding_id=p03,
            verdict=decisions.Verdict.DISMISS,
            reason_code=decisions.DismissReason.RULE_NOT_APPLICABLE,
            principal=inspector,
            settings=settings,
        )
        decisions.add_finding(
            session,
            call_pk=pk,
            rule="C01",
            start=1.0,
            end=2.0,
            note="漏检投诉",
            principal=inspector,
            settings=settings,
        )
    seed_call(service, "c-2", wav=_wav(tmp_path, "b"), rules=("P03",), texts=("法警上门",))
    seed_appeal(service, "c-2", inspector="inspector", agent="agent")

    with service.state.sessions() as session:
        export = review_labels(session)
        precision = {r.rule: r for r in review_precision(session)}
    lines = {(line["speaker"], line["text"]): line["labels"] for line in export.lines}
    # seed_call puts every finding on the first utterance, spoken by the agent.
    assert lines[("agent", texts[0])] == ["P02"]  # P02 confirmed, P03 dismissed: a negative
    # Added over the second utterance's span (the agent's in the transcript): a complaint
    # is the customer's signal, and the trainer learns C labels from customer lines only.
    assert lines[("customer", texts[1])] == ["C01"]
    assert ("agent", texts[1]) not in lines
    assert lines[("agent", "法警上门")] == ["P03"]  # confirmed, appealed, not yet ruled
    assert precision["P02"].precision == 1.0
    assert precision["P03"].confirmed == 1 and precision["P03"].dismissed == 1
    assert precision["P03"].by_reason == {"rule_not_applicable": 1}
    assert precision["C01"].added == 1 and precision["C01"].precision is None

    out = tmp_path / "review-labels.jsonl"
    out.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in export.lines))
    load_rows = load_trainer().load_rows
    rows = load_rows(ROOT / "models" / "data", [out])
    mine = {(r["speaker"], r["text"]): r for r in rows if r["text"] in {texts[0], texts[1]}}
    assert mine[("agent", texts[0])]["labels"] == ["P02"]
    assert mine[("agent", texts[0])]["source"] == "written"
    assert mine[("customer", texts[1])]["labels"] == ["C01"]
    # The same file scores a head: `qa-service eval-text` reads it (an id on every line).
    evaluated = load_lines(out)
    assert len({line.id for line in evaluated}) == len(export.lines) == len(evaluated)
    by_text = {(line.speaker, line.text): line.labels for line in evaluated}
    assert by_text[("agent", texts[0])] == ("P02",)
