"""Mono speaker attribution by voice, on synthetic harmonic voices made in the test."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from qa_service.asr.diarize import CallFrames, attribute_speakers, timbre, two_voices, voice_points
from qa_service.asr.voice_models import CutPoint, VoiceModels, VoiceParams
from qa_service.domain import ArraySamples, Speaker, Utterance

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


AGENT_F0, CUSTOMER_F0 = 230, 160
# Vowel formants (Hz) of an average voice; each voice scales them by its vocal tract.
_VOWELS = ((800, 1200, 2500), (400, 2000, 2700), (300, 900, 2300), (500, 1700, 2500))
_TRACT = {AGENT_F0: 1.15, CUSTOMER_F0: 0.9}


def _speech(f0: float, seconds: float, seed: int) -> np.ndarray:
    """Speech-like audio of one voice: syllables of random vowels (formants scaled by the
    voice's tract), a drifting pitch around ``f0``, a syllable rhythm, line noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    syllable = 0.2
    count = int(np.ceil(seconds / syllable))
    pitch = f0 * (1 + 0.06 * np.repeat(rng.normal(size=count), int(syllable * SR))[:n])
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    vowels = np.repeat(rng.integers(len(_VOWELS), size=count), int(syllable * SR))[:n]
    formants = np.array(_VOWELS)[vowels] * _TRACT.get(f0, 1.0)  # (n, 3)
    x = np.zeros(n)
    for h in range(1, int(3400 / (0.9 * f0)) + 1):
        freq = h * pitch
        gain = sum(np.exp(-(((freq - formants[:, k]) / 120.0) ** 2)) for k in range(3))
        x += np.where((freq >= 300) & (freq <= 3400), gain, 0.0) * np.sin(h * phase)
    rhythm = 0.6 + 0.4 * np.abs(np.sin(np.pi * t / syllable))
    x = x * rhythm / max(np.abs(x).max(), 1e-9)
    return (0.3 * x + 0.01 * rng.normal(size=n)).astype(np.float32)


def _call(pattern: list[list[tuple[int, float]]], pause: float = 0.5):
    """Audio and utterances of a call: each utterance is a list of (f0, seconds) stretches
    spoken without a pause (one stretch of speech to the VAD); utterances are ``pause`` apart.
    Utterances are labelled by the voice of their longest stretch, as attribution would."""
    pieces, utterances, truth, t, seed = [], [], [], 0.0, 0
    for stretches in pattern:
        start = t
        for f0, seconds in stretches:
            pieces.append(_speech(f0, seconds, seed))
            truth.append((t, t + seconds, Speaker.AGENT if f0 == AGENT_F0 else Speaker.CUSTOMER))
            t += seconds
            seed += 1
        main = max(stretches, key=lambda s: s[1])[0]
        speaker = Speaker.AGENT if main == AGENT_F0 else Speaker.CUSTOMER
        utterances.append(Utterance(speaker, round(start, 3), round(t, 3), "x"))
        pieces.append(np.zeros(int(pause * SR), dtype=np.float32))
        t += pause
    return np.concatenate(pieces), utterances, truth


def _word_boundaries(u: Utterance, truth: list, step: float = 0.2) -> list[CutPoint]:
    """Candidate cuts as Whisper's word boundaries give them: between the syllables of each
    stretch (every ``step`` seconds from its start) and between stretches, no pause."""
    times = {round(a + k * step, 3) for a, b, _ in truth for k in range(int((b - a) / step) + 1)}
    return [CutPoint(t) for t in sorted(times) if u.start < t < u.end]


def _models(
    audio: np.ndarray, utterances: list[Utterance], params: VoiceParams | None = None
) -> VoiceModels:
    frames = CallFrames.compute(audio, SR)
    assert two_voices(voice_points(utterances, frames))
    voices = VoiceModels.fit(frames, utterances, params=params or VoiceParams())
    assert voices is not None
    return voices


# The customer's 0.6-s "对，我是" inside the agent's 4-s turn, with no pause around it.
_INSIDE = [
    [(AGENT_F0, 3.0)],
    [(CUSTOMER_F0, 2.0)],
    [(AGENT_F0, 1.7), (CUSTOMER_F0, 0.6), (AGENT_F0, 1.7)],
    [(CUSTOMER_F0, 2.0)],
    [(AGENT_F0, 2.0)],
]
# A cheap cut: the reply's ~20 voiced frames are evidence enough. At the defaults, taking
# a reply out of a turn must earn about 30 voiced frames' worth of evidence at a pause and
# 60 without (fewer false cuts on real calls); one closing the stretch, half that.
_CHEAP = VoiceParams(cut_penalty=10.0)


def test_a_short_reply_inside_an_agent_turn_is_cut_out_and_given_to_the_customer() -> None:
    audio, utterances, truth = _call(_INSIDE)
    merged = utterances[2]
    assert merged.speaker is Speaker.AGENT  # attribution alone charges the agent with it
    voices = _models(audio, utterances, _CHEAP)
    parts = voices.turns(merged.start, merged.end, _word_boundaries(merged, truth), merged.speaker)
    assert [s for _, _, s in parts] == [Speaker.AGENT, Speaker.CUSTOMER, Speaker.AGENT]
    reply_start, reply_end = truth[3][0], truth[3][1]
    assert abs(parts[1][0] - reply_start) <= 0.2 and abs(parts[1][1] - reply_end) <= 0.2
    assert (parts[0][0], parts[-1][1]) == (merged.start, merged.end)


def test_a_short_reply_right_after_an_agent_turn_is_cut_off_at_a_pause() -> None:
    # Defaults: a 0.6-s reply closing the stretch, after a word boundary with a pause.
    audio, utterances, truth = _call(
        [
            [(AGENT_F0, 3.0)],
            [(CUSTOMER_F0, 2.0)],
            [(AGENT_F0, 3.0), (CUSTOMER_F0, 0.6)],
            [(AGENT_F0, 2.5)],
            [(CUSTOMER_F0, 1.5)],
        ]
    )
    merged = utterances[2]
    voices = _models(audio, utterances)
    change = truth[3][0]
    cuts = [
        CutPoint(c.time, easy=abs(c.time - change) < 0.01) for c in _word_boundaries(merged, truth)
    ]
    parts = voices.turns(merged.start, merged.end, cuts, merged.speaker)
    assert [(round(a, 2), s) for a, _, s in parts] == [
        (round(merged.start, 2), Speaker.AGENT),
        (round(change, 2), Speaker.CUSTOMER),
    ]


def test_one_voice_is_never_cut_even_when_cuts_are_cheap() -> None:
    audio, utterances, truth = _call(
        [
            [(AGENT_F0, 3.0)],
            [(CUSTOMER_F0, 2.0)],
            [(AGENT_F0, 4.0)],
            [(CUSTOMER_F0, 2.5)],
            [(AGENT_F0, 2.0)],
        ]
    )
    for params in (VoiceParams(), _CHEAP):
        voices = _models(audio, utterances, params)
        for u in utterances:
            cuts = [CutPoint(c.time, easy=True) for c in _word_boundaries(u, truth, 0.1)]
            assert voices.turns(u.start, u.end, cuts, u.speaker) == [(u.start, u.end, u.speaker)]


def test_a_reply_is_cut_only_at_a_word_boundary() -> None:
    # Without a candidate cut the merged utterance stays whole, and keeps its speaker.
    audio, utterances, _ = _call(_INSIDE)
    merged = utterances[2]
    voices = _models(audio, utterances, _CHEAP)
    assert voices.turns(merged.start, merged.end, [], merged.speaker) == [
        (merged.start, merged.end, Speaker.AGENT)
    ]


def test_one_voice_in_the_whole_call_gives_no_model_to_cut_by() -> None:
    same = _speech(AGENT_F0, 2.0, 0)  # one voice, the same sounds: no two groups
    audio = np.concatenate([same, np.zeros(SR // 2, dtype=np.float32)] * 4)
    utterances = [Utterance(Speaker.UNKNOWN, i * 2.5, i * 2.5 + 2.0, "x") for i in range(4)]
    utterances = attribute_speakers(utterances, audio, SR)  # turn-taking labels
    assert {u.speaker for u in utterances} == {Speaker.AGENT, Speaker.CUSTOMER}
    frames = CallFrames.compute(audio, SR)
    assert not two_voices(voice_points(utterances, frames))


def test_call_frames_give_the_same_timbre_as_a_stretch_of_its_own() -> None:
    audio = _speech(AGENT_F0, 2.0, 0)
    frames = CallFrames.compute(audio, SR)
    whole = timbre(audio, SR)
    assert whole is not None
    assert np.allclose(frames.timbre(0.0, 2.0), whole)
    assert frames.timbre(0.0, 0.01) is None


def test_call_frames_read_chunk_by_chunk_are_each_frames_own() -> None:
    # A long call's samples are read a chunk of frames at a time; every frame, on either
    # side of a chunk's edge, must still see its own 400 samples.
    from qa_service.asr.diarize import _CHUNK, _MFCC_FRAME, _MFCC_HOP, _mel_dct

    rng = np.random.default_rng(4)
    audio = rng.normal(0, 0.1, _MFCC_HOP * (_CHUNK + 50) + 237).astype(np.float32)
    frames = CallFrames.compute(ArraySamples(audio), SR)
    assert len(frames.energy) == 1 + (len(audio) - _MFCC_FRAME) // _MFCC_HOP
    bank, basis = _mel_dct(SR)
    window = np.hamming(_MFCC_FRAME)
    for k in (0, _CHUNK - 1, _CHUNK, _CHUNK + 1, len(frames.energy) - 1):
        piece = audio[k * _MFCC_HOP : k * _MFCC_HOP + _MFCC_FRAME].astype(np.float64)
        power = np.abs(np.fft.rfft(piece * window, n=512)) ** 2
        assert frames.energy[k] == pytest.approx(power.sum(), rel=1e-12)
        cepstra = np.log(power @ bank.T + 1e-10) @ basis.T
        assert np.allclose(frames.cepstra[k], cepstra, rtol=1e-9, atol=1e-9)


def test_a_whole_utterance_goes_to_the_voice_it_leans_to() -> None:
    # Utterance clustering gave the customer's short answer to the agent (it happens when
    # the customer barely speaks alone); the frame models give it back.
    audio, utterances, _ = _call(
        [[(AGENT_F0, 3.0)], [(CUSTOMER_F0, 2.0)], [(AGENT_F0, 3.0)], [(CUSTOMER_F0, 1.0)]]
        + [[(AGENT_F0, 2.0)], [(CUSTOMER_F0, 2.0)]]
    )
    utterances[3] = replace(utterances[3], speaker=Speaker.AGENT)
    voices = _models(audio, utterances)
    u = utterances[3]
    assert voices.turns(u.start, u.end, [], u.speaker) == [(u.start, u.end, Speaker.CUSTOMER)]
