"""Domain types shared by the pipeline stages: plain frozen dataclasses, no framework types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Speaker(StrEnum):
    AGENT = "agent"
    CUSTOMER = "customer"
    UNKNOWN = "unknown"


class CallStatus(StrEnum):
    """Where a call stands. The CLI gives ``analyzed`` or ``error`` at once; an upload goes
    ``queued`` → ``analyzing`` → ``analyzed`` | ``failed`` through the job queue."""

    QUEUED = "queued"
    ANALYZING = "analyzing"
    ANALYZED = "analyzed"
    FAILED = "failed"
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


class Samples(Protocol):
    """One channel of decoded audio (float32), read a stretch at a time.

    A long call's samples stay out of memory (:mod:`qa_service.ingest.spool` keeps them in
    a temporary file): each stage reads the stretches it needs when it needs them, so a
    2-hour call costs the analysis no more memory than a 10-minute one.
    """

    def __len__(self) -> int: ...

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples ``[start, stop)`` as float32, clipped to the channel like a slice."""
        ...

    def close(self) -> None:
        """Release what holds the samples; the length stays known, reading fails."""
        ...


@dataclass(frozen=True, eq=False)
class ArraySamples:
    """Samples already in memory: a short clip, a test signal."""

    array: np.ndarray

    def __len__(self) -> int:
        return len(self.array)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """A view of the array (do not modify it)."""
        return self.array[max(start, 0) : stop]

    def close(self) -> None:
        pass


def as_samples(samples: Samples | np.ndarray) -> Samples:
    """``samples`` as :class:`Samples`, wrapping an array."""
    return ArraySamples(samples) if isinstance(samples, np.ndarray) else samples


@dataclass(frozen=True, eq=False)
class DecodedAudio:
    """A recording decoded to float32 mono-per-channel at ``sample_rate``.

    Its channels may hold open temporary files: :meth:`close` it (or use it as a context
    manager) once the samples are no longer read.
    """

    channels: tuple[Samples, ...]
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

    def close(self) -> None:
        for channel in self.channels:
            channel.close()

    def __enter__(self) -> DecodedAudio:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
class ItemScore:
    """What one rubric item cost a call, and which findings it counted."""

    item_id: str
    section_id: str
    name_zh: str
    name_en: str
    occurrences: int
    deduction: float  # after the cap and the weight
    capped: bool = False  # occurrences × deduction exceeded the cap
    fatal: bool = False  # a fatal item (一票否决) was triggered
    finding_indexes: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "section_id": self.section_id,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "occurrences": self.occurrences,
            "deduction": self.deduction,
            "capped": self.capped,
            "fatal": self.fatal,
            "finding_indexes": list(self.finding_indexes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ItemScore:
        return cls(
            item_id=str(data["item_id"]),
            section_id=str(data["section_id"]),
            name_zh=str(data["name_zh"]),
            name_en=str(data.get("name_en", "")),
            occurrences=int(data["occurrences"]),
            deduction=float(data["deduction"]),
            capped=bool(data.get("capped", False)),
            fatal=bool(data.get("fatal", False)),
            finding_indexes=tuple(int(i) for i in data.get("finding_indexes", ())),
        )


@dataclass(frozen=True)
class CallScore:
    """A call's score under one rubric version, with the breakdown that explains it.

    ``items`` lists only items with at least one counted finding (0-point items included,
    so customer signals stay visible). ``unscored_rules`` are rules found on the call that
    the rubric does not cover: reported, never silently dropped. ``excluded`` are the
    indexes of findings left out (dismissed by a reviewer).
    """

    score: float
    passed: bool
    fatal: bool
    rubric_version: str
    pass_mark: float
    items: tuple[ItemScore, ...] = ()
    fatal_rules: tuple[str, ...] = ()
    unscored_rules: tuple[str, ...] = ()
    excluded: tuple[int, ...] = ()
    rubric_digest: str = ""

    @property
    def total_deduction(self) -> float:
        return round(sum(item.deduction for item in self.items), 2)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: what the analysis output and the call_scores table carry."""
        return {
            "score": self.score,
            "passed": self.passed,
            "fatal": self.fatal,
            "fatal_rules": list(self.fatal_rules),
            "rubric_version": self.rubric_version,
            "rubric_digest": self.rubric_digest,
            "pass_mark": self.pass_mark,
            "total_deduction": self.total_deduction,
            "items": [item.as_dict() for item in self.items],
            "unscored_rules": list(self.unscored_rules),
            "excluded_findings": list(self.excluded),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CallScore:
        return cls(
            score=float(data["score"]),
            passed=bool(data["passed"]),
            fatal=bool(data["fatal"]),
            rubric_version=str(data["rubric_version"]),
            pass_mark=float(data["pass_mark"]),
            items=tuple(ItemScore.from_dict(item) for item in data.get("items", ())),
            fatal_rules=tuple(data.get("fatal_rules", ())),
            unscored_rules=tuple(data.get("unscored_rules", ())),
            excluded=tuple(int(i) for i in data.get("excluded_findings", ())),
            rubric_digest=str(data.get("rubric_digest", "")),
        )


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
