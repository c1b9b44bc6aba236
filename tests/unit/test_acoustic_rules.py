"""A01 dead air and A02 agent interruption from speech activity."""

from __future__ import annotations

from qa_service.domain import ChannelActivity, Speaker, SpeechRegion
from qa_service.rules.acoustic import AcousticParams, detect_dead_air, detect_interruptions

PARAMS = AcousticParams()


def _act(agent: list[tuple[float, float]], customer: list[tuple[float, float]]):
    return (
        ChannelActivity(0, Speaker.AGENT, tuple(SpeechRegion(a, b) for a, b in agent)),
        ChannelActivity(1, Speaker.CUSTOMER, tuple(SpeechRegion(a, b) for a, b in customer)),
    )


def test_dead_air_of_eight_seconds_between_parties_is_flagged() -> None:
    act = _act([(0.5, 10.0), (30.0, 35.0)], [(10.5, 12.0)])
    [finding] = detect_dead_air(act, PARAMS)
    assert (finding.rule, finding.start, finding.end) == ("A01", 12.0, 30.0)
    assert finding.evidence["silence_s"] == 18.0


def test_pause_just_under_threshold_and_silence_before_first_speech_are_not_dead_air() -> None:
    act = _act([(20.0, 25.0), (32.9, 40.0)], [])  # 7.9 s pause; 20 s before anyone speaks
    assert detect_dead_air(act, PARAMS) == []


def test_one_party_talking_through_the_other_silence_is_not_dead_air() -> None:
    act = _act([(0.0, 2.0), (15.0, 16.0)], [(2.5, 14.0)])
    assert detect_dead_air(act, PARAMS) == []


def test_agent_starting_inside_customer_speech_with_long_overlap_is_a02() -> None:
    act = _act([(0.0, 5.0), (8.0, 12.0)], [(5.5, 9.5)])
    [finding] = detect_interruptions(act, PARAMS)
    assert (finding.rule, finding.speaker, finding.start, finding.end) == (
        "A02",
        Speaker.AGENT,
        8.0,
        9.5,
    )


def test_short_overlap_or_customer_interrupting_agent_is_not_a02() -> None:
    brief = _act([(0.0, 5.0), (8.8, 12.0)], [(5.5, 9.5)])  # 0.7 s of overlap
    assert detect_interruptions(brief, PARAMS) == []
    customer_barges_in = _act([(0.0, 10.0)], [(4.0, 8.0)])
    assert detect_interruptions(customer_barges_in, PARAMS) == []


def test_agent_continuing_after_a_breath_is_not_a_new_start() -> None:
    # The agent pauses 0.3 s inside its own turn while the customer has started talking.
    act = _act([(0.0, 5.0), (5.3, 9.0)], [(5.1, 7.0)])
    assert detect_interruptions(act, PARAMS) == []


def test_mono_activity_never_yields_a02() -> None:
    mono = (ChannelActivity(0, Speaker.UNKNOWN, (SpeechRegion(0, 5), SpeechRegion(4, 9))),)
    assert detect_interruptions(mono, PARAMS) == []
