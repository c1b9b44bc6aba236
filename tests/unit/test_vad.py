"""Speech activity on real telephone audio, and grouping of regions into turns."""

from __future__ import annotations

import numpy as np
from audio_factory import STEREO_WAV

from qa_service.asr.vad import VadParams, detect_speech, group_regions
from qa_service.domain import ArraySamples, SpeechRegion
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


def test_channel_read_in_batches_gives_faster_whispers_regions_exactly() -> None:
    # Past one batch of 10,000 windows (320 s) with speech across the boundary, ending
    # inside a window's last 64 samples (which faster-whisper zeroes).
    from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

    from qa_service.asr.vad import _timestamps, speech_probabilities

    with decode_audio(STEREO_WAV) as audio:
        clip = audio.channels[1].read()
    signal = np.tile(clip, 81)[: 512 * 10_050 + 470]
    assert np.abs(signal[512 * 9_990 : 512 * 10_010]).max() > 0.1  # speech at the boundary
    options = VadOptions(
        threshold=0.5,
        min_silence_duration_ms=350,
        speech_pad_ms=120,
        min_speech_duration_ms=200,
        max_speech_duration_s=25.0,
    )
    probabilities = speech_probabilities(ArraySamples(signal))
    padded = np.pad(signal, (0, 512 - len(signal) % 512))
    assert np.array_equal(probabilities, get_vad_model()(padded))
    expected = get_speech_timestamps(signal, options, sampling_rate=16000)
    assert len(expected) > 80
    assert _timestamps(probabilities, len(signal), options, 16000) == expected
