"""Stand-ins for the job queue's tests: an analyser without a model, a queue that records.

Imported as ``queue_fakes`` (``tests/`` is on ``sys.path``, as for ``audio_factory``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from qa_service.domain import CallAnalysis, CallStatus, Speaker, StageTiming, Utterance
from qa_service.ingest.recordings import sha256_file


@dataclass
class FakeAnalyzer:
    """Stands in for the Analyzer: fails ``fail_times`` times, or answers like bad input."""

    fail_times: int = 0
    bad_input: bool = False
    calls: list[str] = field(default_factory=list)

    def analyze(self, path, context, *, metadata=None) -> CallAnalysis:  # type: ignore[no-untyped-def]
        assert metadata is not None
        context(metadata)  # the dial-log context is read through the database
        self.calls.append(metadata.call_id)
        if len(self.calls) <= self.fail_times:
            raise RuntimeError("CUDA out of memory (simulated)")
        sha, _ = sha256_file(path)
        if self.bad_input:
            return CallAnalysis(
                call_id=metadata.call_id,
                recording=metadata.recording,
                status=CallStatus.ERROR,
                sha256=sha,
                error={"code": "audio_decode_error", "message": "音频已损坏 / damaged audio"},
            )
        return CallAnalysis(
            call_id=metadata.call_id,
            recording=metadata.recording,
            status=CallStatus.ANALYZED,
            duration_s=3.0,
            channels="mono",
            sha256=sha,
            metadata=metadata,
            utterances=(Utterance(Speaker.UNKNOWN, 0.0, 1.5, "您好，这里是信用卡中心"),),
            timings=(StageTiming("ingest", 0.01), StageTiming("transcribe", 0.5)),
            model_name="fake",
        )


class RecordingQueue:
    """A queue that only records what it was asked (the sweep's and submit's side)."""

    def __init__(self) -> None:
        self.live: set[str] = set()
        self.enqueued: list[str] = []
        self.discarded: list[str] = []
        self._lock = threading.Lock()

    def enqueue(self, call_id: str) -> bool:
        with self._lock:
            if call_id in self.live:
                return False
            self.live.add(call_id)
            self.enqueued.append(call_id)
            return True

    def is_live(self, call_id: str) -> bool:
        return call_id in self.live

    def discard(self, call_id: str) -> None:
        self.live.discard(call_id)
        self.discarded.append(call_id)

    def ping(self) -> None:
        pass
