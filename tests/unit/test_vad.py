"""Speech activity on real telephone audio, and grouping of regions into turns."""

from __future__ import annotations

import numpy as np
from audio_factory import STEREO_WAV

from qa_service.asr.vad import VadParams, detect_speech, group_regions
from qa_service.domain import SpeechRegion
from qa_service.ingest.audio import decode_audio


def test_each_channel_finds_its_own_speaker() -> None:
    audio = decode_audio(STEREO_WAV)
    agent = detect_speech(audio.channels[0], audio.sample_rate, VadParams())
    customer = detect_speech(audio.channels[1], audio.sample_rate, VadParams())
    # Fixture: the agent ends a question at ~0.9 s; the customer answers ~1.5–3.8 s.
    assert agent and agent[0].start < 0.3 and 0.6 < agent[-1].end < 1.4
    assert customer and 1.1 < customer[0].start < 1.9 and 3.3 < customer[-1].end < 4.1


def test_silence_and_line_noise_have_no_speech() -> None:
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.002, 16000 * 5).astype(np.float32)
    assert detect_speech(noise, 16000, VadParams()) == []
    assert detect_speech(np.zeros(0, dtype=np.float32), 16000, VadParams()) == []


def test_regions_closer_than_the_gap_form_one_turn() -> None:
    regions = [SpeechRegion(0.0, 2.0), SpeechRegion(2.5, 4.0), SpeechRegion(6.0, 7.0)]
    assert group_regions(regions, 0.8) == [SpeechRegion(0.0, 4.0), SpeechRegion(6.0, 7.0)]
    assert group_regions(regions, 0.3) == regions
