"""The analysis JSON contract (``shared/spec/output.md``): one object per call."""

from __future__ import annotations

from typing import Any

from qa_service.domain import CallAnalysis, CallStatus, Finding, Utterance


def utterance_to_json(u: Utterance) -> dict[str, Any]:
    return {"speaker": u.speaker.value, "start": u.start, "end": u.end, "text": u.text}


def finding_to_json(f: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rule": f.rule,
        "speaker": f.speaker.value if f.speaker is not None else None,
        "start": f.start,
        "end": f.end,
        "text": f.text,
        "source": f.source,
        "confidence": round(f.confidence, 3),
    }
    if f.evidence:
        out["evidence"] = f.evidence
    return out


def analysis_to_json(a: CallAnalysis) -> dict[str, Any]:
    """The required keys of output.md, plus a few extras (sha256, timings, model)."""
    out: dict[str, Any] = {
        "call_id": a.call_id,
        "recording": a.recording,
        "duration_s": a.duration_s,
        "channels": a.channels,
        "status": a.status.value,
        "utterances": [utterance_to_json(u) for u in a.utterances],
        "findings": [finding_to_json(f) for f in a.findings],
        "score": a.score,
    }
    if a.status is CallStatus.ERROR:
        out["error"] = a.error
        out["findings"] = []
    if a.score_detail is not None and a.status is not CallStatus.ERROR:
        # Which rubric items deducted how much, each naming its findings by index.
        out["score_breakdown"] = a.score_detail.as_dict()
    if a.sha256:
        out["sha256"] = a.sha256
    if a.model_name:
        out["model"] = a.model_name
    if a.timings:
        out["timings_s"] = {t.stage: t.seconds for t in a.timings}
    return out
