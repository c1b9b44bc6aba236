"""Acoustic rules from per-channel speech activity: A01 dead air, A02 agent interruption.

Both work on the VAD regions the transcription stage computed, so they cost nothing
extra. A02 needs the two parties on separate channels; on a mono recording overlap is
not observable from activity alone and A02 is not evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

from qa_service.asr.vad import group_regions
from qa_service.domain import ChannelActivity, Finding, Speaker, SpeechRegion


@dataclass(frozen=True)
class AcousticParams:
    dead_air_s: float = 8.0
    min_overlap_s: float = 1.0
    # Pauses shorter than this inside one party's speech do not end their turn, so a
    # breath inside the customer's sentence is not an opening for the agent.
    turn_gap_s: float = 0.5


def detect_dead_air(activity: tuple[ChannelActivity, ...], params: AcousticParams) -> list[Finding]:
    """A01: a stretch ≥ ``dead_air_s`` with nobody speaking, between first and last speech."""
    regions = sorted((r for ch in activity for r in ch.regions), key=lambda r: r.start)
    if not regions:
        return []
    findings: list[Finding] = []
    covered_until = regions[0].end
    for region in regions[1:]:
        gap = region.start - covered_until
        if gap >= params.dead_air_s:
            findings.append(
                Finding(
                    rule="A01",
                    source="acoustic",
                    confidence=1.0,
                    start=round(covered_until, 2),
                    end=round(region.start, 2),
                    evidence={"silence_s": round(gap, 2)},
                )
            )
        covered_until = max(covered_until, region.end)
    return findings


def detect_interruptions(
    activity: tuple[ChannelActivity, ...], params: AcousticParams
) -> list[Finding]:
    """A02: the agent starts while the customer speaks and both talk ≥ ``min_overlap_s``."""
    agent = _turns(activity, Speaker.AGENT, params.turn_gap_s)
    customer = _turns(activity, Speaker.CUSTOMER, params.turn_gap_s)
    if not agent or not customer:
        return []
    findings: list[Finding] = []
    for turn in agent:
        for other in customer:
            if other.start < turn.start < other.end:
                overlap_end = min(turn.end, other.end)
                overlap = overlap_end - turn.start
                if overlap >= params.min_overlap_s:
                    findings.append(
                        Finding(
                            rule="A02",
                            source="acoustic",
                            confidence=1.0,
                            speaker=Speaker.AGENT,
                            start=round(turn.start, 2),
                            end=round(overlap_end, 2),
                            evidence={"overlap_s": round(overlap, 2)},
                        )
                    )
                break
    return findings


def _turns(
    activity: tuple[ChannelActivity, ...], speaker: Speaker, gap_s: float
) -> list[SpeechRegion]:
    regions = sorted(
        (r for ch in activity if ch.speaker == speaker for r in ch.regions), key=lambda r: r.start
    )
    return group_regions(regions, gap_s)


def scan_acoustics(activity: tuple[ChannelActivity, ...], params: AcousticParams) -> list[Finding]:
    """All acoustic findings of one call."""
    return [*detect_dead_air(activity, params), *detect_interruptions(activity, params)]
