"""The whole review loop through HTTP on PostgreSQL, with real accounts (issue 10).

upload → analysis (the job function, in process, with a scripted analyser instead of the
model) → queue order → claim → confirm one finding, dismiss another, add a missed one →
score recomputed → feedback → the agent appeals → the supervisor overturns → final score
and history. Along the way every role tries steps that are not its own and is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from api_support import (
    FIXTURES,
    OTHER_AGENT,
    OTHER_TEAM,
    OWN_AGENT,
    OWN_TEAM,
    Service,
    add_role_users,
    add_user,
    bearer,
    make_service,
    seed_call,
)
from fastapi.testclient import TestClient

from qa_service.domain import CallAnalysis, CallStatus, Finding, Speaker, StageTiming, Utterance
from qa_service.ingest.recordings import sha256_file
from qa_service.scoring.rubric import load_rubric
from qa_service.scoring.score import score_call
from qa_service.worker.jobs import WorkerRuntime, run_analysis

pytestmark = pytest.mark.integration

# What the scripted analyser "hears" on the main call: a fatal P03, an insult (P02), a
# complaint (C01) the agent does not de-escalate (R04).
MAIN_FINDINGS = (
    ("P03", Speaker.AGENT, 0.0, 1.0, "我是法院的，马上来抓你"),
    ("P02", Speaker.AGENT, 1.0, 2.0, "你这个老赖"),
    ("C01", Speaker.CUSTOMER, 2.0, 3.0, "我要去银保监投诉你"),
    ("R04", Speaker.AGENT, 3.0, 4.0, "投诉也没用，今天必须还"),
)
FATAL_FINDINGS = (("P03", Speaker.UNKNOWN, 0.0, 1.0, "法警明天上门"),)


@dataclass
class ScriptedAnalyzer:
    """Stands in for the Analyzer: findings by call id, scored with the real rubric."""

    rubric_path: Path
    script: dict[str, tuple[tuple[str, Speaker, float, float, str], ...]]
    analysed: list[str] = field(default_factory=list)

    def analyze(self, path, context, *, metadata=None) -> CallAnalysis:  # type: ignore[no-untyped-def]
        assert metadata is not None
        self.analysed.append(metadata.call_id)
        sha, _ = sha256_file(path)
        rows = self.script[metadata.call_id]
        findings = tuple(
            Finding(
                rule=rule,
                source="lexicon+encoder",
                confidence=0.9,
                speaker=speaker,
                start=start,
                end=end,
                text=text,
                evidence={
                    "weak_evidence": ["guessed_speaker"] if speaker is Speaker.UNKNOWN else []
                },
            )
            for rule, speaker, start, end, text in rows
        )
        utterances = tuple(
            Utterance(speaker, start, end, text, 0 if speaker is Speaker.AGENT else 1)
            for _, speaker, start, end, text in rows
        )
        score = score_call(findings, load_rubric(self.rubric_path))
        return CallAnalysis(
            call_id=metadata.call_id,
            recording=metadata.recording,
            status=CallStatus.ANALYZED,
            duration_s=4.0,
            channels="stereo",
            sha256=sha,
            metadata=metadata,
            utterances=utterances,
            findings=findings,
            score=score.score,
            score_detail=score,
            timings=(StageTiming("ingest", 0.01),),
            model_name="scripted",
        )


@pytest.fixture
def service(postgres_url: str, tmp_path: Path) -> Iterator[Service]:
    service = make_service(postgres_url, tmp_path)
    add_role_users(service)  # supervisor of T1, inspector, agent A1, manager, admin
    add_user(service, "inspector2", "inspector")
    add_user(service, "supervisor2", "supervisor", teams=(OTHER_TEAM,))
    yield service
    service.state.engine.dispose()


def _upload(client: TestClient, token: str, wav: str, call_id: str, agent: str, team: str) -> str:
    meta = json.loads((FIXTURES / "stereo_8k.json").read_text(encoding="utf-8"))
    meta.update({"call_id": call_id, "recording": wav, "agent_id": agent, "team_id": team})
    if wav.startswith("mono"):
        meta.update({"channels": "mono", "channel_map": None})
    response = client.post(
        "/api/v1/recordings",
        files={"file": (wav, (FIXTURES / wav).read_bytes(), "audio/wav")},
        data={"metadata": json.dumps(meta)},
        headers=bearer(token),
    )
    assert response.status_code == 202, response.text
    return str(response.json()["call_id"])


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _refused(response: Any, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    if code is not None:
        assert response.json()["error"]["code"] == code, response.text


def test_the_whole_review_loop_over_http(service: Service, tmp_path: Path) -> None:
    client = TestClient(service.app)
    t = {name: bearer(token) for name, token in service.tokens.items()}
    settings = service.state.settings

    # --- upload → analysis (the job function, in process) ---------------------------------
    assert (
        _upload(
            client, service.tokens["inspector"], "stereo_8k.wav", "loop-main", OWN_AGENT, OWN_TEAM
        )
        == "loop-main"
    )
    _upload(client, service.tokens["inspector"], "mono_8k.wav", "loop-fatal", OWN_AGENT, OWN_TEAM)
    analyzer = ScriptedAnalyzer(
        settings.rubric_path, {"loop-main": MAIN_FINDINGS, "loop-fatal": FATAL_FINDINGS}
    )
    runtime = WorkerRuntime(
        settings=settings,
        engine=service.state.engine,
        sessions=service.state.sessions,
        analyzer=analyzer,
        store=service.state.store,
        versions={},
    )
    for call_id in list(service.queue.jobs):
        assert run_analysis(runtime, call_id) == "analyzed"
    main = _ok(client.get("/api/v1/calls/loop-main", headers=t["manager"]))
    assert main["review"]["state"] == "flagged" and main["score"] == 0.0
    findings = {f["rule"]: f for f in main["findings"]}
    assert set(findings) == {"P03", "P02", "C01", "R04"}

    # Seeded beside it: a complaint the agent handled, a low score, and another team's call.
    seed_call(service, "loop-complaint", wav=_copy(tmp_path, "c"), rules=("C01",), score=95.0)
    seed_call(service, "loop-low", wav=_copy(tmp_path, "l"), rules=("P02", "P07"), score=40.0)
    seed_call(service, "loop-passed", wav=_copy(tmp_path, "p"), rules=(), score=100.0)
    seed_call(
        service,
        "loop-other-team",
        wav=_copy(tmp_path, "o"),
        agent_id=OTHER_AGENT,
        team_id=OTHER_TEAM,
    )

    # --- the queue: complaint not de-escalated, complaint, fatal, then lowest score ------
    queue = _ok(client.get("/api/v1/review/queue", headers=t["inspector"]))["items"]
    order = [item["call_id"] for item in queue]
    assert order == ["loop-main", "loop-complaint", "loop-fatal", "loop-low", "loop-other-team"]
    assert queue[0]["risk_tier"] == 0 and queue[0]["rules"] == ["C01", "P02", "P03", "R04"]
    assert "loop-passed" not in order  # passed: not in the queue, not even visible
    _refused(client.get("/api/v1/calls/loop-passed", headers=t["inspector"]), 404)
    supervisor_view = _ok(client.get("/api/v1/review/queue", headers=t["supervisor"]))["items"]
    assert "loop-other-team" not in {i["call_id"] for i in supervisor_view}
    weak = _ok(client.get("/api/v1/review/queue?weak=guessed_speaker", headers=t["inspector"]))
    assert [i["call_id"] for i in weak["items"]] == ["loop-fatal"]
    assert weak["items"][0]["weak_evidence"] == ["guessed_speaker"]
    c01 = _ok(client.get("/api/v1/review/queue?rule=C01", headers=t["inspector"]))["items"]
    assert [i["call_id"] for i in c01] == ["loop-main", "loop-complaint"]
    _refused(client.get("/api/v1/review/queue", headers=t["agent"]), 403)

    # --- assignment by a supervisor, release --------------------------------------------
    _refused(client.post("/api/v1/calls/loop-complaint/claim", headers=t["supervisor"]), 403)
    assigned = _ok(
        client.post(
            "/api/v1/calls/loop-complaint/assign",
            json={"inspector": "inspector2"},
            headers=t["supervisor"],
        )
    )
    assert assigned["state"] == "in_review" and assigned["assignee"] == "inspector2"
    _refused(
        client.post(
            "/api/v1/calls/loop-other-team/assign",
            json={"inspector": "inspector2"},
            headers=t["supervisor"],
        ),
        404,
    )
    _refused(
        client.post("/api/v1/calls/loop-complaint/claim", headers=t["inspector"]),
        409,
        "illegal_transition",
    )
    _refused(client.post("/api/v1/calls/loop-complaint/release", headers=t["inspector"]), 409)
    assert (
        _ok(client.post("/api/v1/calls/loop-complaint/release", headers=t["inspector2"]))["state"]
        == "flagged"
    )

    # --- claim and decide ---------------------------------------------------------------
    _refused(client.post("/api/v1/calls/loop-main/claim", headers=t["agent"]), 403)
    claimed = _ok(client.post("/api/v1/calls/loop-main/claim", headers=t["inspector"]))
    assert claimed["state"] == "in_review" and claimed["lease_expires_at"]
    _refused(client.post("/api/v1/calls/loop-main/claim", headers=t["inspector2"]), 409)

    def decide(rule: str, who: str = "inspector", **body: Any) -> Any:
        return client.post(
            f"/api/v1/findings/{findings[rule]['finding_id']}/decision", json=body, headers=t[who]
        )

    _refused(decide("P02", "supervisor", decision="confirm"), 403)
    _refused(decide("P02", "inspector2", decision="confirm"), 409)  # not the holder
    _refused(decide("P03", decision="dismiss"), 422)  # a dismissal needs its reason
    confirmed = _ok(decide("P02", decision="confirm", comment="确有辱骂"))
    assert confirmed["score"] == 0.0 and not confirmed["score_changed"]  # still fatal
    dismissed = _ok(
        decide(
            "P03", decision="dismiss", reason_code="compliant_in_context", comment="引用法院公告"
        )
    )
    rubric = load_rubric(settings.rubric_path)

    def expect(*rules: str) -> float:
        return score_call(
            [Finding(rule=r, source="x", confidence=1.0) for r in rules], rubric
        ).score

    assert dismissed["score_changed"] and dismissed["score"] == expect("P02", "C01", "R04") > 0
    _ok(decide("C01", decision="confirm"))
    _ok(decide("R04", decision="confirm"))
    added = _ok(
        client.post(
            "/api/v1/calls/loop-main/findings",
            json={"rule": "P05", "start": 3.0, "end": 4.0, "note": "私下承诺减免"},
            headers=t["inspector"],
        ),
        201,
    )
    assert added["score"] == expect("P02", "C01", "R04", "P05") < dismissed["score"]
    _refused(
        client.post("/api/v1/calls/loop-main/feedback", json={"notes": {}}, headers=t["inspector"]),
        409,
    )
    done = _ok(client.post("/api/v1/calls/loop-main/complete", headers=t["inspector"]))
    assert done["state"] == "reviewed"

    # --- feedback → inbox → appeal ------------------------------------------------------
    detail = _ok(client.get("/api/v1/calls/loop-main", headers=t["inspector"]))
    standing = {f["rule"]: f["finding_id"] for f in detail["findings"] if f["rule"] != "P03"}
    notes = {str(fid): f"关于 {rule} 的辅导意见" for rule, fid in standing.items()}
    _refused(
        client.post("/api/v1/calls/loop-main/feedback", json={"notes": {}}, headers=t["inspector"]),
        422,
    )
    _refused(
        client.post("/api/v1/calls/loop-main/feedback", json={"notes": notes}, headers=t["agent"]),
        403,
    )
    sent = _ok(
        client.post(
            "/api/v1/calls/loop-main/feedback",
            json={"notes": notes, "summary": "注意话术"},
            headers=t["inspector"],
        )
    )
    assert sent["state"] == "feedback_sent" and sent["appeal_deadline"]
    inbox = _ok(client.get("/api/v1/inbox", headers=t["agent"]))["items"]
    assert [i["call_id"] for i in inbox] == ["loop-main"] and inbox[0]["needs_answer"]
    assert {f["rule"] for f in inbox[0]["findings"]} == {"P02", "C01", "R04", "P05"}
    assert all(f["coaching_note"] for f in inbox[0]["findings"])
    _refused(
        client.post(
            f"/api/v1/findings/{standing['P02']}/appeal",
            json={"reason": "x"},
            headers=t["inspector"],
        ),
        403,
    )
    _refused(
        client.post(
            f"/api/v1/findings/{findings['P03']['finding_id']}/appeal",
            json={"reason": "x"},
            headers=t["agent"],
        ),
        409,
    )
    appealed = _ok(
        client.post(
            f"/api/v1/findings/{standing['P02']}/appeal",
            json={"reason": "我说的是“老赖名单”的政策解释，不是骂人"},
            headers=t["agent"],
        ),
        201,
    )
    assert appealed["state"] == "appealed"
    _refused(client.post("/api/v1/calls/loop-main/acknowledge", headers=t["agent"]), 409)

    # --- the supervisor of the agent's team rules ---------------------------------------
    _refused(client.get("/api/v1/appeals", headers=t["agent"]), 403)
    assert _ok(client.get("/api/v1/appeals", headers=t["supervisor2"]))["items"] == []
    [appeal] = _ok(client.get("/api/v1/appeals", headers=t["supervisor"]))["items"]
    assert appeal["call_id"] == "loop-main" and appeal["rule"] == "P02"
    ruling = f"/api/v1/appeals/{appeal['appeal_id']}/ruling"
    _refused(client.post(ruling, json={"ruling": "overturned"}, headers=t["supervisor2"]), 404)
    _refused(client.post(ruling, json={"ruling": "overturned"}, headers=t["inspector"]), 403)
    ruled = _ok(
        client.post(
            ruling, json={"ruling": "overturned", "note": "语境为政策解释"}, headers=t["supervisor"]
        )
    )
    assert ruled["state"] == "ruled"
    _refused(client.post(ruling, json={"ruling": "upheld"}, headers=t["supervisor"]), 409)

    # --- final score and history --------------------------------------------------------
    final = _ok(client.get("/api/v1/calls/loop-main", headers=t["agent"]))
    assert final["score"] == expect("C01", "R04", "P05")
    assert final["review"]["state"] == "ruled"
    scores = _ok(client.get("/api/v1/calls/loop-main/scores", headers=t["agent"]))["items"]
    assert [(s["reason"], s["score"]) for s in scores] == [
        ("analysis", 0.0),
        ("review", dismissed["score"]),
        ("review", added["score"]),
        ("review", final["score"]),
    ]
    assert "dismissed finding" in scores[1]["note"] and "P03" in scores[1]["note"]
    assert "added finding" in scores[2]["note"] and "P05" in scores[2]["note"]
    assert "overturned appeal" in scores[3]["note"] and scores[3]["is_current"]
    record = _ok(client.get("/api/v1/calls/loop-main/history", headers=t["supervisor"]))
    steps = [(e["action"], e["from_state"], e["to_state"], e["actor"]) for e in record["events"]]
    assert steps == [
        ("flag", None, "flagged", None),
        ("claim", "flagged", "in_review", "inspector"),
        ("complete", "in_review", "reviewed", "inspector"),
        ("send_feedback", "reviewed", "feedback_sent", "inspector"),
        ("appeal", "feedback_sent", "appealed", "agent"),
        ("rule", "appealed", "ruled", "supervisor"),
    ]
    assert all(e["reason"] and e["at"] for e in record["events"])
    by_rule = {d["rule"]: d for d in record["decisions"]}
    assert by_rule["P03"]["decision"] == "dismissed"
    assert by_rule["P03"]["reason_code"] == "compliant_in_context"
    assert by_rule["P02"]["overturned"] and by_rule["P05"]["decision"] == "added"
    assert record["appeals"][0]["status"] == "overturned"
    listed = _ok(client.get("/api/v1/calls?review=ruled", headers=t["manager"]))["items"]
    assert [c["call_id"] for c in listed] == ["loop-main"] and listed[0]["review_state"] == "ruled"
    _refused(client.post("/api/v1/calls/loop-main/acknowledge", headers=t["agent"]), 409)  # final


def _copy(tmp_path: Path, marker: str) -> str:
    """A recording with other bytes (a trailing marker): another call for seeding."""
    path = tmp_path / f"seed-{marker}.wav"
    path.write_bytes((FIXTURES / "stereo_8k.wav").read_bytes() + marker.encode())
    return str(path)
