"""Mono speaker attribution by voice, on synthetic harmonic voices."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from qa_service.diarize import SpeakerVoices, attribute_speakers, timbre
from qa_service.domain import Speaker, Utterance

SR = 16000


def _voice(f0: float, seconds: float, seed: int) -> np.ndarray:
    """A harmonic voice band-limited like a phone line (no energy under 300 Hz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    vibrato = 1 + 0.02 * np.sin(2 * np.pi * 5 * t)
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / SR
    x = sum(np.sin(h * phase) / h for h in range(2, 14) if 300 <= h * f0 <= 3400)
    return (0.3 * x + 0.005 * rng.normal(size=t.size)).astype(np.float32)


def test_timbre_needs_enough_audio_and_tells_voices_apart() -> None:
    assert timbre(np.zeros(100, dtype=np.float32), SR) is None
    assert timbre(np.zeros(SR, dtype=np.float32), SR) is None  # silence: no loud frame
    low, low2, high = (
        timbre(_voice(f0, 1.5, seed), SR) for f0, seed in ((150, 0), (150, 1), (230, 2))
    )
    assert np.linalg.norm(low - low2) < np.linalg.norm(low - high)


def test_two_voices_are_separated_and_the_first_speaker_is_the_agent() -> None:
    pattern = [(230, 2.0), (160, 1.2), (230, 3.0), (230, 1.0), (160, 2.5), (230, 1.5)]
    pieces, utterances, t = [], [], 0.0
    for i, (f0, dur) in enumerate(pattern):
        pieces += [_voice(f0, dur, i), np.zeros(int(0.5 * SR), dtype=np.float32)]
        utterances.append(Utterance(Speaker.UNKNOWN, t, t + dur, f"u{i}"))
        t += dur + 0.5
    audio = np.concatenate(pieces)
    result = attribute_speakers(utterances, audio, SR)
    expected = ["agent", "customer", "agent", "agent", "customer", "agent"]
    assert [u.speaker.value for u in result] == expected  # not mere alternation
    inbound = attribute_speakers(utterances, audio, SR, first_speaker=Speaker.CUSTOMER)
    assert inbound[0].speaker is Speaker.CUSTOMER and inbound[1].speaker is Speaker.AGENT


def test_indistinct_voices_fall_back_to_turn_taking() -> None:
    utterances = [Utterance(Speaker.UNKNOWN, i * 2.0, i * 2.0 + 1.5, "x") for i in range(4)]
    audio = np.concatenate([_voice(200, 2.0, 0) for _ in range(4)])  # one voice, no apart
    result = attribute_speakers(utterances, audio, SR)
    assert [u.speaker.value for u in result] == ["agent", "customer", "agent", "customer"]


def _conversation(pattern: list[tuple[float, float]], pause: float = 0.5, *, same_seed=False):
    pieces, utterances, t = [], [], 0.0
    for i, (f0, dur) in enumerate(pattern):
        voice = _voice(f0, dur, 0 if same_seed else i)
        pieces += [voice, np.zeros(int(pause * SR), dtype=np.float32)]
        speaker = Speaker.AGENT if f0 > 200 else Speaker.CUSTOMER
        utterances.append(Utterance(speaker, t, t + dur, f"u{i}"))
        t += dur + pause
    return np.concatenate(pieces), utterances


def test_a_reply_merged_into_one_utterance_is_cut_where_the_voice_changes() -> None:
    audio, utterances = _conversation([(230, 2.0), (160, 1.5), (230, 2.5), (160, 2.0)])
    voices = SpeakerVoices.fit(utterances, audio, SR)
    assert voices is not None
    # The customer's 2.0 s reply and the agent's 2.5 s turn heard as one stretch
    # (4.5 s + the pause), with candidate cuts at several word gaps.
    start, end = utterances[1].start, utterances[2].end
    change = (utterances[1].end + utterances[2].start) / 2
    cuts = [start + 0.9, change, end - 1.0]
    parts = voices.turn_changes(audio, SR, start, end, cuts)
    assert [(round(a, 2), round(b, 2), s) for a, b, s in parts] == [
        (round(start, 2), round(change, 2), Speaker.CUSTOMER),
        (round(change, 2), round(end, 2), Speaker.AGENT),
    ]
    # One voice throughout: no cut, however many candidates.
    whole = utterances[2]
    steps = [whole.start + k * 0.25 for k in range(1, 10)]
    assert voices.turn_changes(audio, SR, whole.start, whole.end, steps) == []


def test_agent_customer_agent_in_one_stretch_gets_two_cuts() -> None:
    audio, utterances = _conversation([(160, 1.5), (230, 2.0), (160, 1.5), (230, 2.0)], 0.3)
    voices = SpeakerVoices.fit(utterances, audio, SR)
    assert voices is not None
    start, end = utterances[1].start, utterances[3].end
    cuts = [utterances[1].end + 0.15, utterances[2].end + 0.15]
    parts = voices.turn_changes(audio, SR, start, end, cuts)
    assert [s for _, _, s in parts] == [Speaker.AGENT, Speaker.CUSTOMER, Speaker.AGENT]
    assert [round(b, 2) for _, b, _ in parts[:2]] == [round(c, 2) for c in cuts]


def test_similar_voices_give_no_model_to_cut_by() -> None:
    audio, utterances = _conversation([(200, 2.0)] * 4, same_seed=True)
    utterances = [
        replace(u, speaker=Speaker.AGENT if i % 2 == 0 else Speaker.CUSTOMER)
        for i, u in enumerate(utterances)
    ]
    assert SpeakerVoices.fit(utterances, audio, SR) is None
