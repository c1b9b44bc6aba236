"""Domain types shared by the pipeline stages: plain frozen dataclasses, no framework types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # scoring imports this module; the annotation only needs the name
    from qa_service.scoring import CallScore


class Speaker(StrEnum):
    AGENT = "agent"
    CUSTOMER = "customer"
    UNKNOWN = "unknown"


class CallStatus(StrEnum):
    ANALYZED = "analyzed"
    ERROR = "error"


@dataclass(frozen=True)
class CallMetadata:
    """What the call centre exports beside a recording (the sidecar ``<stem>.json``)."""

    call_id: str
    recording: str
    agent_id: str | None = None
    customer_id: str | None = None
    dialed_number: str | None = None
    contact_role: str | None = None  # "debtor" | "third_party"
    direction: str | None = None
    started_at: datetime | None = None
    duration_s: float | None = None
    channels: str | None = None  # "stereo" | "mono" as declared by the exporter
    channel_map: dict[int, Speaker] | None = None
    has_sidecar: bool = False
    # Organisation, when the exporter knows it: scorecards group agents by team and agency.
    team_id: str | None = None
    agency_id: str | None = None


@dataclass(frozen=True, eq=False)
class DecodedAudio:
    """A recording decoded to float32 mono-per-channel at ``sample_rate``."""

    channels: tuple[np.ndarray, ...]
    sample_rate: int
    source_sample_rate: int
    codec: str
    container: str

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def duration_s(self) -> float:
        return len(self.channels[0]) / self.sample_rate if self.channels else 0.0


@dataclass(frozen=True, eq=False)
class IngestedCall:
    """A recording ready for analysis: identity, metadata and decoded audio."""

    path: Path
    sha256: str
    size_bytes: int
    metadata: CallMetadata
    audio: DecodedAudio

    @property
    def layout(self) -> str:
        return "stereo" if self.audio.n_channels >= 2 else "mono"

    def speaker_of_channel(self, index: int) -> Speaker:
        if self.layout == "mono":
            return Speaker.UNKNOWN
        cmap = self.metadata.channel_map or {0: Speaker.AGENT, 1: Speaker.CUSTOMER}
        return cmap.get(index, Speaker.UNKNOWN)


@dataclass(frozen=True)
class SpeechRegion:
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class ChannelActivity:
    """Speech activity of one channel (one speaker on stereo, everybody on mono)."""

    channel: int
    speaker: Speaker
    regions: tuple[SpeechRegion, ...]


@dataclass(frozen=True)
class Utterance:
    speaker: Speaker
    start: float
    end: float
    text: str
    channel: int = 0
    avg_logprob: float | None = None
    raw_text: str | None = None  # Whisper's text before normalisation and correction


@dataclass(frozen=True)
class Transcript:
    utterances: tuple[Utterance, ...]
    activity: tuple[ChannelActivity, ...]
    model_name: str
    language: str


@dataclass(frozen=True)
class Finding:
    rule: str
    source: str
    confidence: float
    speaker: Speaker | None = None
    start: float | None = None
    end: float | None = None
    text: str | None = None
    evidence: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class DialAttempt:
    """One outbound attempt in the dial log (CDR), recorded or not."""

    agent_id: str
    customer_id: str
    dialed_number: str
    started_at: datetime
    connected: bool
    duration_s: float
    call_id: str | None = None


@dataclass(frozen=True)
class DoNotCallEntry:
    dialed_number: str
    reason: str = ""
    source: str = "import"
    added_at: datetime | None = None


@dataclass(frozen=True)
class StageTiming:
    stage: str
    seconds: float


@dataclass(frozen=True)
class CallAnalysis:
    """The result of analysing one recording (or the error that stopped it)."""

    call_id: str
    recording: str
    status: CallStatus
    duration_s: float | None = None
    channels: str | None = None
    sha256: str | None = None
    metadata: CallMetadata | None = None
    utterances: tuple[Utterance, ...] = ()
    findings: tuple[Finding, ...] = ()
    activity: tuple[ChannelActivity, ...] = ()
    score: float | None = None
    error: dict[str, object] | None = None
    timings: tuple[StageTiming, ...] = ()
    model_name: str | None = None
    score_detail: CallScore | None = None  # the breakdown behind ``score``
