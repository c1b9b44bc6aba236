"""Complaints end to end (issue 11): register and link, evidence packs, outcomes, trends,
early warning, coaching, and each role's scope, on SQLite and on PostgreSQL.

Calls are seeded through the repository's save path (no Whisper) with small WAVs in the
audio store; review decisions and appeals are written as the review loop writes them.
Every trend figure is recomputed here independently from the seed specification.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import statistics
import struct
import wave
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from api_support import Service, add_user, bearer, make_service
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select

from qa_service.db.repository import save_analysis, save_dial_attempts
from qa_service.db.tables import (
    FindingRow,
    ReviewAppealRow,
    ReviewDecisionRow,
)
from qa_service.domain import (
    CallAnalysis,
    CallMetadata,
    CallStatus,
    DialAttempt,
    Finding,
    Speaker,
    Utterance,
)

CST = timezone(timedelta(hours=8))
TEAMS = {"T1": "AG1", "T2": "AG1", "T3": "AG2"}
AGENTS = {"T1": "A1", "T2": "A2", "T3": "A3"}
VIOLATION_FAMILIES = ("P", "R", "A", "M")


@dataclass
class F:
    rule: str
    status: str = "pending"  # pending | confirmed | dismissed
    added: bool = False  # added by an inspector
    appeal: str | None = None  # open | upheld | overturned (on a confirmed finding)


@dataclass
class CallSpec:
    call_id: str
    team: str
    started_at: datetime
    customer: str
    score: float
    findings: list[F] = field(default_factory=list)
    phone: str | None = None

    @property
    def agency(self) -> str:
        return TEAMS[self.team]

    @property
    def agent(self) -> str:
        return AGENTS[self.team]

    def standing(self) -> list[F]:
        # An overturned appeal dismisses the finding (the review loop does so).
        return [f for f in self.findings if f.status != "dismissed" and f.appeal != "overturned"]


def _wav(path: Path, seed: str) -> bytes:
    """A tiny 8 kHz mono WAV whose samples depend on ``seed`` (distinct bytes per call)."""
    rng = random.Random(seed)
    frames = b"".join(struct.pack("<h", rng.randint(-2000, 2000)) for _ in range(800))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(frames)
    return path.read_bytes()


def _seed_call(service: Service, spec: CallSpec, tmp: Path) -> bytes:
    path = tmp / f"{spec.call_id}.wav"
    data = _wav(path, spec.call_id)
    stored = service.state.store.put_file(path, ext=".wav")
    meta = CallMetadata(
        call_id=spec.call_id,
        recording=path.name,
        agent_id=spec.agent,
        customer_id=spec.customer,
        dialed_number=spec.phone,
        team_id=spec.team,
        agency_id=spec.agency,
        started_at=spec.started_at,
        channels="mono",
        has_sidecar=True,
    )
    utterances = (
        Utterance(Speaker.AGENT, 0.0, 1.0, "您好，这里是信用卡中心", 0),
        Utterance(Speaker.CUSTOMER, 1.0, 2.0, f"我要投诉，我的电话是{spec.phone or '无'}", 0),
    )
    findings = tuple(
        Finding(
            rule=f.rule,
            source="inspector" if f.added else "lexicon",
            confidence=0.9,
            speaker=Speaker.CUSTOMER if f.rule.startswith("C") else Speaker.AGENT,
            start=0.0,
            end=1.0,
            text="您好，这里是信用卡中心",
        )
        for f in spec.findings
    )
    analysis = CallAnalysis(
        call_id=spec.call_id,
        recording=path.name,
        status=CallStatus.ANALYZED,
        duration_s=2.0,
        channels="mono",
        sha256=stored.sha256,
        metadata=meta,
        utterances=utterances,
        findings=findings,
        score=spec.score,
    )
    with service.state.sessions.begin() as session:
        call_pk = save_analysis(session, analysis=analysis, source_path=None, versions={})
        rows = session.scalars(
            select(FindingRow).where(FindingRow.call_id == call_pk).order_by(FindingRow.id)
        ).all()
        for f, row in zip(spec.findings, rows, strict=True):
            _review(session, call_pk, f, row)
    return data


def _review(session: Any, call_pk: int, f: F, row: FindingRow) -> None:
    """Write a decision (and appeal) as qa_service.review does."""
    if f.status == "pending" and not f.added:
        return
    decision = ReviewDecisionRow(
        call_id=call_pk,
        finding_id=row.id,
        decision="added" if f.added else f.status,
        reason_code="compliant_in_context" if f.status == "dismissed" else None,
        rule=f.rule,
        overturned=f.appeal == "overturned",
    )
    session.add(decision)
    row.review_status = "dismissed" if f.appeal == "overturned" else f.status
    if f.added:
        row.review_status = "confirmed"
    session.flush()
    if f.appeal:
        session.add(
            ReviewAppealRow(
                call_id=call_pk, decision_id=decision.id, reason="我没有说", status=f.appeal
            )
        )
        session.flush()


def _client(service: Service, user: str) -> Callable[..., Any]:
    client = TestClient(service.app)
    headers = bearer(service.tokens[user])

    def call(method: str, url: str, **kwargs: Any) -> Any:
        return client.request(method, url, headers=headers, **kwargs)

    return call


def _users(service: Service) -> None:
    add_user(service, "manager", "manager")
    add_user(service, "supervisor", "supervisor", teams=("T1",))
    add_user(service, "inspector", "inspector")
    add_user(service, "agent", "agent", agent_id="A1")
    add_user(service, "admin", "admin")


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[Service]:
    service = make_service(db_url, tmp_path)
    _users(service)
    yield service
    service.state.engine.dispose()


# --- register, link, evidence, outcome -----------------------------------------------------


def _complaint(customer: str | None, received: datetime, **extra: Any) -> dict[str, Any]:
    body = {
        "source": "hotline",
        "level": "serious",
        "type": "abuse",
        "received_at": received.isoformat(),
        "customer_id": customer,
        "description": "客户称坐席态度恶劣",
    }
    return {**body, **extra}


def test_complaint_links_calls_evidence_pack_and_outcome(service: Service, tmp_path: Path) -> None:
    received = datetime(2026, 11, 20, 10, 0, tzinfo=CST)
    specs = [
        # customer K1: two calls in the 30-day window (one flagged), one too old, one after
        CallSpec(
            "k1-a", "T1", received - timedelta(days=3), "K1", 70, [F("P02", "confirmed"), F("C01")]
        ),
        CallSpec("k1-b", "T1", received - timedelta(days=25), "K1", 95, [F("R03", "dismissed")]),
        CallSpec("k1-old", "T1", received - timedelta(days=40), "K1", 90),
        CallSpec("k1-after", "T1", received + timedelta(hours=2), "K1", 90),
        # customer K2, reached by phone only: the complaint names the number
        CallSpec(
            "k2-a", "T2", received - timedelta(days=1), "K2", 88, [F("C01")], phone="13800138000"
        ),
        CallSpec("other", "T1", received - timedelta(days=2), "K9", 85, [F("P01")]),
    ]
    recordings = {s.call_id: _seed_call(service, s, tmp_path) for s in specs}
    with service.state.sessions.begin() as session:
        save_dial_attempts(
            session,
            attempts=[
                DialAttempt("A1", "K1", "13900139000", received - timedelta(days=3), True, 60.0),
                DialAttempt("A1", "K1", "13900139000", received - timedelta(days=50), True, 9.0),
                DialAttempt("A1", "K9", "13700137000", received - timedelta(days=2), True, 30.0),
            ],
        )
    inspector = _client(service, "inspector")
    made = inspector(
        "POST", "/api/v1/complaints", json=_complaint("K1", received, reference="TS-1")
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["created"] and body["linked_calls"] == 2
    k1 = body["complaint_id"]
    assert body["complaint"]["team_id"] == "T1" and body["complaint"]["status"] == "open"
    # Inspectors register; managers and the team's supervisor read the calls behind it
    # (an inspector sees only calls in review, see qa_service.accounts.scope).
    manager = _client(service, "manager")
    linked = manager("GET", f"/api/v1/complaints/{k1}").json()["calls"]
    assert [c["call_id"] for c in linked] == ["k1-b", "k1-a"]
    # The same reference again adds nothing.
    again = inspector(
        "POST", "/api/v1/complaints", json=_complaint("K1", received, reference="TS-1")
    )
    assert again.json()["created"] is False and again.json()["complaint_id"] == k1
    by_phone = inspector(
        "POST", "/api/v1/complaints", json=_complaint(None, received, phone="138-0013-8000")
    )
    assert by_phone.status_code == 201, by_phone.text
    phone_id = by_phone.json()["complaint_id"]
    linked = manager("GET", f"/api/v1/complaints/{phone_id}").json()["calls"]
    assert [c["call_id"] for c in linked] == ["k2-a"]

    detail = manager("GET", f"/api/v1/complaints/{k1}").json()
    flagged = next(c for c in detail["calls"] if c["call_id"] == "k1-a")
    assert {f["rule"]: f["review_status"] for f in flagged["findings"]} == {
        "P02": "confirmed",
        "C01": "pending",
    }
    assert flagged["decisions"][0]["decision"] == "confirmed"
    assert flagged["findings"][0]["citation"]["clauses"]

    pack = _client(service, "supervisor")("GET", f"/api/v1/complaints/{k1}/evidence")
    assert pack.status_code == 200 and pack.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(pack.content))
    names = set(archive.namelist())
    assert {n for n in names if n.startswith("recordings/")} == {
        "recordings/k1-a.wav",
        "recordings/k1-b.wav",
    }
    assert {n for n in names if n.startswith("transcripts/")} == {
        "transcripts/k1-a.txt",
        "transcripts/k1-b.txt",
    }
    for call_id in ("k1-a", "k1-b"):
        assert archive.read(f"recordings/{call_id}.wav") == recordings[call_id]
    manifest = json.loads(archive.read("manifest.json"))
    assert (
        manifest["files"]["recordings/k1-a.wav"] == hashlib.sha256(recordings["k1-a"]).hexdigest()
    )
    assert manifest["missing_recordings"] == [] and manifest["hidden_calls"] == 0
    findings = json.loads(archive.read("findings.json"))
    assert {entry["call_id"] for entry in findings} == {"k1-a", "k1-b"}
    assert all(f["citation"]["clauses"] for entry in findings for f in entry["findings"])
    dial = list(csv.reader(io.StringIO(archive.read("dial_log.csv").decode("utf-8-sig"))))
    assert dial[0][0] == "拨打时间" and len(dial) == 2  # K1's attempt in the window only
    summary = load_workbook(io.BytesIO(archive.read("摘要.xlsx")))
    assert summary.sheetnames == [
        "投诉信息",
        "关联通话",
        "命中与依据条款",
        "复核决定与申诉裁决",
        "拨号记录",
    ]
    assert "投诉证据包" in archive.read("摘要.html").decode()

    closed = inspector(
        "POST",
        f"/api/v1/complaints/{k1}/outcome",
        json={"outcome": "not_at_fault", "follow_up": "录音证明坐席合规，已向银行反馈"},
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert closed.json()["outcome"]["label"] == "无责"
    assert closed.json()["outcome"]["decided_by"] == "inspector"
    listed = inspector("GET", "/api/v1/complaints", params={"status": "open"}).json()["items"]
    assert [c["id"] for c in listed] == [by_phone.json()["complaint_id"]]


def test_each_role_sees_only_its_scope(service: Service, tmp_path: Path) -> None:
    received = datetime(2026, 11, 20, 10, 0, tzinfo=CST)
    for spec in (
        CallSpec("t1", "T1", received - timedelta(days=1), "S1", 90, [F("C01")]),
        CallSpec("t2", "T2", received - timedelta(days=1), "S2", 90, [F("C01")]),
    ):
        _seed_call(service, spec, tmp_path)
    inspector = _client(service, "inspector")
    ids = {
        customer: inspector(
            "POST", "/api/v1/complaints", json=_complaint(customer, received)
        ).json()["complaint_id"]
        for customer in ("S1", "S2")
    }
    manager, supervisor = _client(service, "manager"), _client(service, "supervisor")
    agent, admin = _client(service, "agent"), _client(service, "admin")
    assert {c["id"] for c in manager("GET", "/api/v1/complaints").json()["items"]} == set(
        ids.values()
    )
    assert [c["id"] for c in supervisor("GET", "/api/v1/complaints").json()["items"]] == [ids["S1"]]
    assert supervisor("GET", f"/api/v1/complaints/{ids['S2']}").status_code == 404
    assert supervisor("GET", f"/api/v1/complaints/{ids['S2']}/evidence").status_code == 404
    for outsider in (agent, admin):
        assert outsider("GET", "/api/v1/complaints").status_code == 403
        assert outsider("GET", f"/api/v1/complaints/{ids['S1']}").status_code == 403
        assert outsider("GET", "/api/v1/trends").status_code == 403
    assert (
        manager(
            "POST", f"/api/v1/complaints/{ids['S1']}/outcome", json={"outcome": "at_fault"}
        ).status_code
        == 403
    )
    params = {"from": "2026-11-01", "to": "2026-11-30"}
    sup = supervisor("GET", "/api/v1/trends", params=params).json()
    assert {r["group"] for r in sup["complaint_signals"]} == {"T1", "合计"}
    assert {r["group"] for r in sup["complaints"]} == {"T1", "合计"}
    mgr = manager("GET", "/api/v1/trends", params=params).json()
    assert {r["group"] for r in mgr["complaint_signals"]} == {"T1", "T2", "合计"}


# --- trends, early warning, coaching on a seeded database ---------------------------------


def _dataset() -> tuple[list[CallSpec], list[dict[str, Any]]]:
    """Three teams (two agencies) over three months, random but fixed."""
    rng = random.Random(11)
    pool = ["P01", "P02", "P05", "R01", "R03", "R04", "A01", "M01", "C01", "C03"]
    specs: list[CallSpec] = []
    n = 0
    for month in (9, 10, 11):
        for team in TEAMS:
            for _ in range(5):
                n += 1
                started = datetime(2026, month, rng.randint(1, 28), rng.randint(9, 20), tzinfo=CST)
                findings = []
                for rule in rng.sample(pool, rng.randint(0, 3)):
                    status = rng.choice(["pending", "confirmed", "confirmed", "dismissed"])
                    appeal = None
                    if status == "confirmed" and rng.random() < 0.3:
                        appeal = rng.choice(["open", "upheld", "overturned"])
                    findings.append(F(rule, status, appeal=appeal))
                if rng.random() < 0.15:
                    findings.append(F(rng.choice(["P02", "R01"]), "confirmed", added=True))
                score = float(rng.choice([55, 65, 75, 85, 95]))
                specs.append(CallSpec(f"c{n:03d}", team, started, f"U{n:03d}", score, findings))
    # Agent A1 repeats a confirmed P02 on two calls in November (coaching).
    specs.append(
        CallSpec(
            "rep1", "T1", datetime(2026, 11, 3, 10, tzinfo=CST), "R1", 90, [F("P02", "confirmed")]
        )
    )
    specs.append(
        CallSpec(
            "rep2", "T1", datetime(2026, 11, 5, 10, tzinfo=CST), "R2", 90, [F("P02", "confirmed")]
        )
    )
    # Early warning: W1 had a C01 call before its complaint; W2 only a dismissed C01; W3 a C01
    # only after the complaint; W4 no call at all (by phone, nothing linked).
    specs.append(
        CallSpec(
            "w1", "T2", datetime(2026, 10, 20, 9, tzinfo=CST), "W1", 80, [F("C01", "confirmed")]
        )
    )
    specs.append(
        CallSpec(
            "w2", "T2", datetime(2026, 10, 21, 9, tzinfo=CST), "W2", 80, [F("C01", "dismissed")]
        )
    )
    specs.append(CallSpec("w3", "T3", datetime(2026, 11, 9, 9, tzinfo=CST), "W3", 80, [F("C01")]))
    complaints = [
        {
            "customer_id": "W1",
            "received_at": datetime(2026, 10, 25, 9, tzinfo=CST),
            "level": "serious",
            "type": "abuse",
            "source": "hotline",
        },
        {
            "customer_id": "W2",
            "received_at": datetime(2026, 10, 26, 9, tzinfo=CST),
            "level": "general",
            "type": "other",
            "source": "branch",
        },
        {
            "customer_id": "W3",
            "received_at": datetime(2026, 11, 8, 9, tzinfo=CST),
            "level": "major",
            "type": "misinformation",
            "source": "bank_forwarded",
        },
        {
            "customer_id": "W4",
            "received_at": datetime(2026, 11, 9, 9, tzinfo=CST),
            "level": "general",
            "type": "broken_promise",
            "source": "agency",
        },
    ]
    for i, spec in enumerate(specs[:45:4]):  # complaints by some ordinary customers too
        when = spec.started_at + timedelta(days=2 + i % 5)
        complaints.append(
            {
                "customer_id": spec.customer,
                "received_at": when,
                "level": ["general", "serious", "major"][i % 3],
                "type": ["abuse", "improper_method", "misinformation"][i % 3],
                "source": ["agency", "hotline", "branch"][i % 3],
                "outcome": [None, "at_fault", "partly_at_fault", "not_at_fault"][i % 4],
            }
        )
    return specs, complaints


def _month(moment: datetime) -> str:
    return moment.astimezone(CST).strftime("%Y-%m")


def _week(moment: datetime) -> str:
    year, week, _ = moment.astimezone(CST).isocalendar()
    return f"{year}-W{week:02d}"


@dataclass
class Seeded:
    specs: list[CallSpec]
    complaints: list[dict[str, Any]]  # with "team", "agency", "warning_lead_h" filled in


@pytest.fixture
def seeded(service: Service, tmp_path: Path) -> Seeded:
    specs, complaints = _dataset()
    for spec in specs:
        _seed_call(service, spec, tmp_path)
    inspector = _client(service, "inspector")
    by_customer = defaultdict(list)
    for spec in specs:
        by_customer[spec.customer].append(spec)
    for c in complaints:
        body = _complaint(
            c["customer_id"], c["received_at"], level=c["level"], type=c["type"], source=c["source"]
        )
        made = inspector("POST", "/api/v1/complaints", json=body)
        assert made.status_code == 201, made.text
        if c.get("outcome"):
            done = inspector(
                "POST",
                f"/api/v1/complaints/{made.json()['complaint_id']}/outcome",
                json={"outcome": c["outcome"]},
            )
            assert done.status_code == 200
        window = [
            s
            for s in by_customer[c["customer_id"]]
            if c["received_at"] - timedelta(days=30) <= s.started_at < c["received_at"]
        ]
        latest = max(window, key=lambda s: s.started_at) if window else None
        c["team"] = latest.team if latest else None
        c["agency"] = latest.agency if latest else None
        warnings = [s.started_at for s in window if any(f.rule == "C01" for f in s.standing())]
        c["lead_h"] = (
            (c["received_at"] - min(warnings)).total_seconds() / 3600 if warnings else None
        )
    return Seeded(specs, complaints)


def _prev_month(label: str) -> str:
    year, month = map(int, label.split("-"))
    return f"{year - (month == 1)}-{(month - 2) % 12 + 1:02d}"


def _prev_week(label: str) -> str:
    year, week = label.split("-W")
    monday = datetime.fromisocalendar(int(year), int(week), 1)
    return _week((monday - timedelta(days=7)).replace(tzinfo=CST))


def _r(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def _expected(
    seeded: Seeded,
    by: str,
    period_of: Callable[[datetime], str],
    prev: Callable[[str], str],
    periods: list[str],
) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """Every trend table recomputed from the seed specification."""
    calls: dict[tuple[str, str], list[CallSpec]] = defaultdict(list)
    for s in seeded.specs:
        for group in (s.team if by == "team" else s.agency, "合计"):
            calls[(group, period_of(s.started_at))].append(s)
    complaints: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for c in seeded.complaints:
        own = (c["team"] if by == "team" else c["agency"]) or "未分组"
        for group in (own, "合计"):
            complaints[(group, period_of(c["received_at"]))].append(c)
    groups = {g for g, _ in calls} | {g for g, _ in complaints}
    out: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = defaultdict(dict)

    def per100(n: int, d: int) -> float | None:
        return round(100 * n / d, 2) if d else None

    def frac(n: int, d: int) -> float | None:
        return round(n / d, 4) if d else None

    def diff(a: float | None, b: float | None) -> float | None:
        return round(a - b, 4) if a is not None and b is not None else None

    for g in groups:
        for p in periods:
            now, before = calls[(g, p)], calls[(g, prev(p))]
            if now:
                for table, key in (("rule", lambda r: r), ("family", lambda r: r[0])):
                    cn = Counter(
                        key(f.rule)
                        for s in now
                        for f in s.standing()
                        if f.rule[0] in VIOLATION_FAMILIES
                    )
                    cb = Counter(
                        key(f.rule)
                        for s in before
                        for f in s.standing()
                        if f.rule[0] in VIOLATION_FAMILIES
                    )
                    for k in set(cn) | set(cb):
                        rate, brate = per100(cn[k], len(now)), per100(cb[k], len(before))
                        out[table][(g, p, k)] = {
                            "findings": cn[k],
                            "calls": len(now),
                            "per_100_calls": rate,
                            "previous_per_100_calls": brate,
                            "change": diff(rate, brate),
                        }

                def sig(group: list[CallSpec]) -> tuple[int, int]:
                    flagged = [s for s in group if any(f.rule == "C01" for f in s.standing())]
                    calm = [s for s in flagged if not any(f.rule == "R04" for f in s.standing())]
                    return len(flagged), len(calm)

                fl, ca = sig(now)
                bfl, bca = sig(before)
                out["signals"][(g, p)] = {
                    "c01_calls": fl,
                    "c01_per_100_calls": per100(fl, len(now)),
                    "c01_change": diff(per100(fl, len(now)), per100(bfl, len(before))),
                    "de_escalated_calls": ca,
                    "de_escalated_share": frac(ca, fl),
                    "de_escalated_change": diff(frac(ca, fl), frac(bca, bfl)),
                }
                rev: dict[str, Counter[str]] = defaultdict(Counter)
                for s in now:
                    for f in s.findings:
                        for rule in (f.rule, "合计"):
                            machine_decided = not f.added and (f.status != "pending")
                            rev[rule]["decided"] += machine_decided
                            rev[rule]["confirmed"] += (
                                machine_decided
                                and f.status == "confirmed"
                                and f.appeal != "overturned"
                            )
                            rev[rule]["added"] += f.added
                            rev[rule]["ruled"] += f.appeal in ("upheld", "overturned")
                            rev[rule]["overturned"] += f.appeal == "overturned"
                for rule, c in rev.items():
                    if c["decided"] or c["added"] or c["ruled"]:
                        out["review"][(g, p, rule)] = {
                            "decided": c["decided"],
                            "confirmed": c["confirmed"],
                            "precision": frac(c["confirmed"], c["decided"]),
                            "added": c["added"],
                            "appeals_ruled": c["ruled"],
                            "overturned": c["overturned"],
                            "overturn_rate": frac(c["overturned"], c["ruled"]),
                        }
            cnow, cbefore = complaints[(g, p)], complaints[(g, prev(p))]
            if cnow or cbefore:
                out["complaints"][(g, p, "all", "")] = {
                    "complaints": len(cnow),
                    "previous_complaints": len(cbefore),
                }
                for dim in ("level", "type", "source", "outcome"):

                    def value(c: dict[str, Any], dim: str = dim) -> str:
                        return (c.get(dim) or "open") if dim == "outcome" else c[dim]

                    cn, cb = Counter(map(value, cnow)), Counter(map(value, cbefore))
                    for v in set(cn) | set(cb):
                        out["complaints"][(g, p, dim, v)] = {
                            "complaints": cn[v],
                            "previous_complaints": cb[v],
                        }
            if cnow:
                leads = [c["lead_h"] for c in cnow if c["lead_h"] is not None]
                bleads = [c for c in cbefore if c["lead_h"] is not None]
                share = frac(len(leads), len(cnow))
                out["early"][(g, p)] = {
                    "complaints": len(cnow),
                    "warned": len(leads),
                    "warned_share": share,
                    "median_lead_hours": _r(statistics.median(leads), 1) if leads else None,
                    "change": diff(share, frac(len(bleads), len(cbefore))),
                }
    return out


def _actual(report: dict[str, Any]) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    def pick(row: dict[str, Any], keys: list[str]) -> dict[str, Any]:
        return {k: row[k] for k in keys}

    out: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = defaultdict(dict)
    rate = ["findings", "calls", "per_100_calls", "previous_per_100_calls", "change"]
    for name, table in (("rule", "violations_by_rule"), ("family", "violations_by_family")):
        for row in report[table]:
            out[name][(row["group"], row["period"], row["key"])] = pick(row, rate)
    for row in report["complaint_signals"]:
        out["signals"][(row["group"], row["period"])] = pick(
            row,
            [
                "c01_calls",
                "c01_per_100_calls",
                "c01_change",
                "de_escalated_calls",
                "de_escalated_share",
                "de_escalated_change",
            ],
        )
    for row in report["review"]:
        out["review"][(row["group"], row["period"], row["rule"])] = pick(
            row,
            [
                "decided",
                "confirmed",
                "precision",
                "added",
                "appeals_ruled",
                "overturned",
                "overturn_rate",
            ],
        )
    for row in report["complaints"]:
        out["complaints"][(row["group"], row["period"], row["breakdown"], row["value"])] = pick(
            row, ["complaints", "previous_complaints"]
        )
    for row in report["early_warning"]:
        out["early"][(row["group"], row["period"])] = pick(
            row, ["complaints", "warned", "warned_share", "median_lead_hours", "change"]
        )
    return out


@pytest.mark.parametrize("by", ["team", "agency"])
def test_monthly_trends_equal_independent_counts(service: Service, seeded: Seeded, by: str) -> None:
    manager = _client(service, "manager")
    report = manager(
        "GET",
        "/api/v1/trends",
        params={"period": "month", "by": by, "from": "2026-10-01", "to": "2026-11-30"},
    ).json()
    assert report["periods"] == ["2026-10", "2026-11"]
    expected = _expected(seeded, by, _month, _prev_month, report["periods"])
    actual = _actual(report)
    for table in ("rule", "family", "signals", "review", "complaints", "early"):
        assert actual[table] == expected[table], table
    # The early-warning cases: W1 (C01 before) is warned, W2 (dismissed C01), W3 (C01 only
    # after) and W4 (no call) are not.
    leads = {c["customer_id"]: c["lead_h"] for c in seeded.complaints}
    assert leads["W1"] == 5 * 24 and leads["W2"] is None and leads["W3"] is None
    assert leads["W4"] is None
    total_oct = actual["early"][("合计", "2026-10")]
    assert total_oct["warned"] >= 1


def test_weekly_trends_equal_independent_counts(service: Service, seeded: Seeded) -> None:
    supervisor = _client(service, "manager")
    report = supervisor(
        "GET",
        "/api/v1/trends",
        params={"period": "week", "by": "team", "from": "2026-10-12", "to": "2026-11-08"},
    ).json()
    assert report["periods"][0] == "2026-W42" and report["periods"][-1] == "2026-W45"
    expected = _expected(seeded, "team", _week, _prev_week, report["periods"])
    actual = _actual(report)
    for table in ("rule", "family", "signals", "review", "complaints", "early"):
        assert actual[table] == expected[table], table


def test_trend_and_coaching_exports_have_chinese_headers(service: Service, seeded: Seeded) -> None:
    manager = _client(service, "manager")
    xlsx = manager(
        "GET", "/api/v1/trends/export", params={"from": "2026-10-01", "to": "2026-11-30"}
    )
    assert xlsx.status_code == 200
    book = load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames == [
        "违规趋势（按规则）",
        "违规趋势（按类别）",
        "投诉倾向与安抚",
        "投诉统计",
        "投诉预警",
        "复核统计",
    ]
    assert [c.value for c in book["投诉预警"][1]][:4] == [
        "组别",
        "期间（月）",
        "投诉数",
        "事前有投诉倾向",
    ]
    coaching = manager(
        "GET", "/api/v1/coaching/export", params={"from": "2026-11-01", "to": "2026-11-30"}
    )
    assert load_workbook(io.BytesIO(coaching.content)).sheetnames == ["培训名单", "培训效果"]


def test_coaching_list_and_training_effect(service: Service, seeded: Seeded) -> None:
    supervisor, manager = _client(service, "supervisor"), _client(service, "manager")
    params = {"from": "2026-11-01", "to": "2026-11-30"}
    listed = manager("GET", "/api/v1/coaching", params=params).json()
    november = [s for s in seeded.specs if s.started_at.month == 11]
    expected = set()
    for agent in AGENTS.values():
        own = [s for s in november if s.agent == agent]
        if own and sum(s.score for s in own) / len(own) < 80:
            expected.add((agent, "low_score", None))
        confirmed = Counter(
            rule
            for s in own
            for rule in {
                f.rule
                for f in s.findings
                if (f.added or (f.status == "confirmed" and f.appeal != "overturned"))
                and f.rule[0] in VIOLATION_FAMILIES
            }
        )
        expected |= {(agent, "repeated_violation", r) for r, n in confirmed.items() if n >= 2}
    assert {(i["agent_id"], i["reason"], i["rule"]) for i in listed["items"]} == expected
    assert ("A1", "repeated_violation", "P02") in expected
    # A supervisor sees its team's agent only, and records a training for it.
    own = supervisor("GET", "/api/v1/coaching", params=params).json()["items"]
    assert {i["agent_id"] for i in own} == {"A1"}
    trained_at = datetime(2026, 10, 16, 12, tzinfo=CST)
    made = supervisor(
        "POST",
        "/api/v1/coaching/trainings",
        json={
            "agent_id": "A1",
            "rule": "P02",
            "trained_at": trained_at.isoformat(),
            "note": "十禁复训",
        },
    )
    assert made.status_code == 201, made.text
    refused = supervisor(
        "POST",
        "/api/v1/coaching/trainings",
        json={"agent_id": "A3", "trained_at": trained_at.isoformat()},
    )
    assert refused.status_code == 422
    effects = manager("GET", "/api/v1/coaching/trainings").json()["items"]
    assert len(effects) == 1
    window = timedelta(days=30)
    a1 = [s for s in seeded.specs if s.agent == "A1"]
    before = [s for s in a1 if trained_at - window <= s.started_at < trained_at]
    after = [s for s in a1 if trained_at <= s.started_at < trained_at + window]

    def rate(group: list[CallSpec]) -> float | None:
        hit = sum(1 for s in group if any(f.rule == "P02" for f in s.standing()))
        return round(100 * hit / len(group), 2) if group else None

    effect = effects[0]
    assert effect["before"] == {
        "calls": len(before),
        "rate_per_100_calls": rate(before),
        "mean_score": round(sum(s.score for s in before) / len(before), 2) if before else None,
    }
    assert effect["after"]["calls"] == len(after)
    assert effect["after"]["rate_per_100_calls"] == rate(after)
    listed_again = manager("GET", "/api/v1/coaching", params=params).json()["items"]
    entry = next(
        i
        for i in listed_again
        if i["reason"] == "repeated_violation" and i["agent_id"] == "A1" and i["rule"] == "P02"
    )
    assert entry["last_training_at"] is not None
