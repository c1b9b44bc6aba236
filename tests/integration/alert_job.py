"""Run the analysis job once in this process, as a worker elsewhere would, for the live
alert test: the recording is submitted as a queued call and the job analyses it with an
analyser scripted to find complaint intent (C01), through the worker's own save path.

Settings come from the environment (the same as the server's). Prints one JSON line:
``{"status": ..., "saved_at": <time.time() once the save has committed>}``.

Usage: python tests/integration/alert_job.py WAV CALL_ID TEAM AGENT
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from qa_service.db import make_engine, make_session_factory
from qa_service.domain import CallAnalysis, CallMetadata, CallStatus, Finding, Speaker, Utterance
from qa_service.ingest.recordings import sha256_file
from qa_service.ingest.store import AudioStore
from qa_service.settings import Settings
from qa_service.worker.jobs import WorkerRuntime, run_analysis
from qa_service.worker.submit import submit_recording


class ComplaintAnalyzer:
    def analyze(self, path, context, *, metadata=None) -> CallAnalysis:  # type: ignore[no-untyped-def]
        sha, _ = sha256_file(path)
        text = "你们再这样打我就去银保监会投诉"
        return CallAnalysis(
            call_id=metadata.call_id,
            recording=metadata.recording,
            status=CallStatus.ANALYZED,
            duration_s=3.0,
            channels="stereo",
            sha256=sha,
            metadata=metadata,
            utterances=(Utterance(Speaker.CUSTOMER, 0.5, 2.5, text, 0),),
            findings=(
                Finding(
                    rule="C01",
                    source="lexicon",
                    confidence=0.95,
                    speaker=Speaker.CUSTOMER,
                    start=0.5,
                    end=2.5,
                    text=text,
                ),
            ),
            score=100.0,
        )


class _NoQueue:
    """The job runs right here: nothing is queued anywhere."""

    def enqueue(self, call_id: str) -> bool:
        return True

    def is_live(self, call_id: str) -> bool:
        return True

    def discard(self, call_id: str) -> None:
        pass

    def ping(self) -> None:
        pass


def main() -> None:
    wav, call_id, team, agent = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    settings = Settings()
    engine = make_engine(settings.resolved_database_url)
    sessions = make_session_factory(engine)
    store = AudioStore(settings.resolved_audio_store)
    stored = store.put_file(wav, ext=".wav")
    metadata = CallMetadata(
        call_id=call_id, recording=wav.name, agent_id=agent, team_id=team, has_sidecar=True
    )
    submit_recording(
        sessions,
        stored=stored,
        filename=wav.name,
        metadata=metadata,
        uploaded_by="alert-test",
        queue=_NoQueue(),
    )
    runtime = WorkerRuntime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        analyzer=ComplaintAnalyzer(),
        store=store,
        versions={},
    )
    status = run_analysis(runtime, call_id)
    saved_at = time.time()
    engine.dispose()
    print(json.dumps({"status": status, "saved_at": saved_at}))


if __name__ == "__main__":
    main()
