"""Masking per role: the call detail, the call list and the call's export.

Roles with ``view_pii`` (manager, supervisor, inspector) read the numbers; the agent reads
them masked (last four digits kept, a mobile's first three too); the admin reads no call
at all. Filtering the list by number is for ``view_pii`` holders only.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import pytest
from api_support import (
    CST,
    FIXTURES,
    OWN_AGENT,
    OWN_TEAM,
    Service,
    add_role_users,
    bearer,
    make_service,
)
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from qa_service.db.repository import save_analysis
from qa_service.db.tables import CallRow
from qa_service.domain import CallAnalysis, CallMetadata, CallStatus, Finding, Speaker, Utterance

DIALED = "13812345678"
CARD = "4111111111111111"
SPOKEN = "幺三八幺二三四五六七八"
SEES_PII = ("manager", "supervisor", "inspector")


def _seed(service: Service) -> None:
    stored = service.state.store.put_file(FIXTURES / "stereo_8k.wav", ext=".wav")
    utterances = (
        Utterance(Speaker.AGENT, 0.0, 1.0, "请报一下卡号"),
        Utterance(Speaker.CUSTOMER, 1.0, 2.0, "4111 1111"),
        Utterance(Speaker.CUSTOMER, 2.0, 3.0, "1111 1111"),
        Utterance(Speaker.CUSTOMER, 3.0, 4.0, f"手机{SPOKEN}"),
    )
    finding = Finding(
        rule="P09",
        source="lexicon",
        confidence=0.9,
        speaker=Speaker.CUSTOMER,
        start=3.0,
        end=4.0,
        text=utterances[3].text,
        evidence={"quote": f"打{DIALED}"},
    )
    analysis = CallAnalysis(
        call_id="pii-call",
        recording=f"{DIALED}.wav",
        status=CallStatus.ANALYZED,
        duration_s=4.0,
        channels="stereo",
        sha256=stored.sha256,
        metadata=CallMetadata(
            call_id="pii-call",
            recording=f"{DIALED}.wav",
            agent_id=OWN_AGENT,
            team_id=OWN_TEAM,
            customer_id="C1",
            dialed_number=DIALED,
            started_at=datetime(2026, 11, 6, 10, tzinfo=CST),
            has_sidecar=True,
        ),
        utterances=utterances,
        findings=(finding,),
        score=70.0,
    )
    with service.state.sessions.begin() as session:
        call_pk = save_analysis(session, analysis=analysis, source_path=None, versions={})
        # The inspector uploaded it: inspectors see the calls in review and their uploads.
        session.get_one(CallRow, call_pk).uploaded_by = "inspector"


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Service:
    service = make_service(db_url, tmp_path)
    add_role_users(service)
    _seed(service)
    return service


def _texts(detail: dict[str, object]) -> list[str]:
    return [u["text"] for u in detail["utterances"]]  # type: ignore[attr-defined,index]


@pytest.mark.parametrize("role", [*SEES_PII, "agent"])
def test_call_detail_list_and_export_are_masked_per_role(service: Service, role: str) -> None:
    client = TestClient(service.app)
    auth = bearer(service.tokens[role])
    detail = client.get("/api/v1/calls/pii-call", headers=auth).json()
    listed = client.get("/api/v1/calls", headers=auth).json()["items"]
    exported = client.get("/api/v1/calls/pii-call/export", headers=auth)
    workbook = client.get("/api/v1/calls/pii-call/export?format=xlsx", headers=auth)
    assert exported.status_code == workbook.status_code == 200
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    sheet = load_workbook(io.BytesIO(workbook.content)).active
    cells = [str(c) for row in sheet.iter_rows(values_only=True) for c in row if c is not None]
    export_text = "\n".join(",".join(r) for r in rows)

    if role in SEES_PII:
        assert _texts(detail) == ["请报一下卡号", "4111 1111", "1111 1111", f"手机{SPOKEN}"]
        assert detail["findings"][0]["evidence"] == {"quote": f"打{DIALED}"}
        assert detail["dialed_number"] == DIALED
        assert listed[0]["recording"] == f"{DIALED}.wav"
        assert f"手机{SPOKEN}" in export_text and f"手机{SPOKEN}" in cells
        return

    assert _texts(detail) == ["请报一下卡号", "**** ****", "**** 1111", "手机幺三八****五六七八"]
    assert detail["findings"][0]["text"] == "手机幺三八****五六七八"
    assert detail["findings"][0]["evidence"] == {"quote": "打138****5678"}
    assert detail["dialed_number"] == "138****5678"
    assert detail["recording"] == listed[0]["recording"] == "138****5678.wav"
    assert "手机幺三八****五六七八" in export_text and "**** 1111" in cells
    for text in (str(detail), str(listed), export_text, "\n".join(cells)):
        for secret in (DIALED, CARD, SPOKEN, "4111 1111\n", "二三四"):
            assert secret not in text


def test_filter_by_number_needs_view_pii(service: Service) -> None:
    client = TestClient(service.app)
    for role in SEES_PII:
        auth = bearer(service.tokens[role])
        hit = client.get("/api/v1/calls", params={"number": "+86 138-1234-5678"}, headers=auth)
        miss = client.get("/api/v1/calls", params={"number": "13900000000"}, headers=auth)
        assert [c["call_id"] for c in hit.json()["items"]] == ["pii-call"], role
        assert miss.json()["items"] == []
    agent = client.get(
        "/api/v1/calls", params={"number": DIALED}, headers=bearer(service.tokens["agent"])
    )
    # Guessing the four hidden digits against this filter would unmask the number.
    assert agent.status_code == 403
