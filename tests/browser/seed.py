"""Seed data for the browser tests, through the real save path (``save_analysis`` and the
review state the analysis job sets), with one demo-like stereo call scored by the rubric."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/api_support.py

from api_support import CST, FIXTURES, Service  # noqa: E402

from qa_service.db.repository import save_analysis  # noqa: E402
from qa_service.domain import (  # noqa: E402
    CallAnalysis,
    CallMetadata,
    CallStatus,
    Finding,
    Speaker,
    Utterance,
)
from qa_service.review.queue import classify_call  # noqa: E402
from qa_service.scoring.rubric import load_rubric  # noqa: E402
from qa_service.scoring.score import score_call  # noqa: E402

A, C = Speaker.AGENT, Speaker.CUSTOMER
# (speaker, start, end, text): a 4-s fixture recording, so the times are packed.
LINES = (
    (A, 0.0, 0.6, "您好，这里是信用卡中心，请问是王先生吗"),
    (C, 0.6, 1.1, "是我，什么事"),
    (A, 1.1, 1.8, "您的账单已经逾期，今天必须还清，不然天天给你打电话"),
    (C, 1.8, 2.4, "你们再这样我就去投诉你们"),
    (A, 2.4, 3.1, "投诉也没用，你这种老赖真不要脸"),
    (C, 3.1, 3.5, "好吧我想想办法"),
    (A, 3.5, 4.0, "那就这样，再见"),
)
# (rule, line index, clause): P07 endless calling, C01 complaint, R04 no de-escalation,
# P02 pressure wording.
FINDINGS = (
    ("P07", 2, "不然天天给你打电话"),
    ("C01", 3, "我就去投诉你们"),
    ("R04", 4, "投诉也没用"),
    ("P02", 4, "你这种老赖真不要脸"),
)


def scripted_analysis(
    metadata: CallMetadata, *, sha256: str, rubric_path: Path, with_findings: bool = True
) -> CallAnalysis:
    """What the pipeline would make of the fixture call: LINES, FINDINGS, the rubric's score."""
    channel = {A: 0, C: 1} if metadata.channels != "mono" else {A: 0, C: 0}
    utterances = tuple(Utterance(s, a, b, t, channel[s]) for s, a, b, t in LINES)
    findings = tuple(
        Finding(
            rule=rule,
            source="lexicon",
            confidence=0.91,
            speaker=LINES[i][0],
            text=clause,
            start=LINES[i][1],
            end=LINES[i][2],
            evidence={"terms": [{"term": clause[:4], "how": "chars"}]},
        )
        for rule, i, clause in (FINDINGS if with_findings else ())
    )
    detail = score_call(findings, load_rubric(rubric_path))
    return CallAnalysis(
        call_id=metadata.call_id,
        recording=metadata.recording,
        status=CallStatus.ANALYZED,
        duration_s=4.0,
        channels=metadata.channels or "stereo",
        sha256=sha256,
        metadata=metadata,
        utterances=utterances,
        findings=findings,
        score=detail.score,
        score_detail=detail,
    )


class ScriptedAnalyser:
    """Stands in for :class:`qa_service.pipeline.Analyzer` in the analysis job: the worker's
    own claim, save, review-state and alert path runs; only ASR and detection are scripted."""

    def __init__(self, rubric_path: Path) -> None:
        self.rubric_path = rubric_path

    def analyze(self, path, context, *, metadata=None) -> CallAnalysis:  # type: ignore[no-untyped-def]
        from qa_service.ingest.recordings import sha256_file

        sha, _ = sha256_file(path)
        return scripted_analysis(metadata, sha256=sha, rubric_path=self.rubric_path)


def seed_review_call(
    service: Service,
    call_id: str,
    *,
    agent_id: str = "A1",
    team_id: str = "T1",
    wav: str = "stereo_8k.wav",
    marker: bytes = b"",
    channels: str = "stereo",
    with_findings: bool = True,
) -> None:
    """Store ``wav`` (plus ``marker`` bytes, so each call is its own recording) and an
    analysed, rubric-scored call with four findings; it lands in the review queue."""
    data = (FIXTURES / wav).read_bytes() + marker
    tmp = service.state.settings.resolved_audio_store.parent / f"{call_id}.wav"
    tmp.write_bytes(data)
    stored = service.state.store.put_file(tmp, ext=".wav")
    metadata = CallMetadata(
        call_id=call_id,
        recording=f"{call_id}.wav",
        agent_id=agent_id,
        team_id=team_id,
        agency_id="AG1",
        started_at=datetime(2026, 11, 6, 14, 32, 18, tzinfo=CST),
        channels=channels,
        has_sidecar=True,
    )
    analysis = scripted_analysis(
        metadata,
        sha256=stored.sha256,
        rubric_path=service.state.settings.rubric_path,
        with_findings=with_findings,
    )
    with service.state.sessions.begin() as session:
        call_pk = save_analysis(session, analysis=analysis, source_path=None, versions={})
        assert call_pk is not None
        classify_call(session, call_pk=call_pk, settings=service.state.settings)
