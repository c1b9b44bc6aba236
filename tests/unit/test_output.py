"""The JSON object of one call follows shared/spec/output.md."""

from __future__ import annotations

import json

from qa_service.domain import CallAnalysis, CallStatus, Finding, Speaker, StageTiming, Utterance
from qa_service.reports.output import analysis_to_json


def test_analysed_call_has_the_contract_keys_and_null_call_level_fields() -> None:
    analysis = CallAnalysis(
        call_id="dev-001",
        recording="dev-001.wav",
        status=CallStatus.ANALYZED,
        duration_s=42.18,
        channels="stereo",
        sha256="ab" * 32,
        utterances=(Utterance(Speaker.AGENT, 0.9, 12.4, "您好，我是……"),),
        findings=(
            Finding("A02", "acoustic", 1.0, Speaker.AGENT, 29.0, 30.5, evidence={"overlap_s": 1.5}),
            Finding("M01", "metadata", 1.0),
        ),
        timings=(StageTiming("ingest", 0.01),),
        model_name="whisper-base",
    )
    obj = json.loads(json.dumps(analysis_to_json(analysis), ensure_ascii=False))
    assert obj["utterances"] == [
        {"speaker": "agent", "start": 0.9, "end": 12.4, "text": "您好，我是……"}
    ]
    m01 = obj["findings"][1]
    assert {k: m01[k] for k in ("rule", "speaker", "start", "end", "text", "source")} == {
        "rule": "M01",
        "speaker": None,
        "start": None,
        "end": None,
        "text": None,
        "source": "metadata",
    }
    assert obj["score"] is None and obj["status"] == "analyzed"
    assert obj["timings_s"] == {"ingest": 0.01}


def test_error_object_has_code_message_and_no_findings() -> None:
    analysis = CallAnalysis(
        call_id="broken",
        recording="broken.wav",
        status=CallStatus.ERROR,
        error={"code": "empty_file", "message": "录音文件为空 / the file is empty"},
    )
    obj = analysis_to_json(analysis)
    assert obj["status"] == "error"
    assert obj["error"]["code"] == "empty_file"
    assert obj["findings"] == [] and obj["utterances"] == []
