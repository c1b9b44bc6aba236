"""Mono speaker attribution by voice, on synthetic voices with known pitch."""

from __future__ import annotations

import numpy as np

from qa_service.diarize import attribute_speakers, voice_features
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


def test_pitch_is_read_from_harmonics_when_the_fundamental_is_missing() -> None:
    assert abs(voice_features(_voice(220, 1.5, 0), SR).shs_f0_hz - 220) < 12
    assert abs(voice_features(_voice(150, 1.5, 1), SR).shs_f0_hz - 150) < 12


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
    audio = np.concatenate([_voice(200, 2.0, i) for i in range(4)])
    result = attribute_speakers(utterances, audio, SR)
    assert [u.speaker.value for u in result] == ["agent", "customer", "agent", "customer"]
