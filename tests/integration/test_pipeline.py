"""The real pipeline on committed fixtures: real decoding, the real Whisper base model."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from audio_factory import MONO_WAV, STEREO_WAV, encode

from qa_service.domain import CallStatus, Speaker
from qa_service.pipeline import Analyzer, CallContext
from qa_service.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_TRADITIONAL_ONLY = re.compile(r"[們這裡時還嗎說氣錢銀開專錄]")


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> Analyzer:
    settings = Settings(data_dir=tmp_path_factory.mktemp("var"))
    return Analyzer(settings)


def test_stereo_call_is_transcribed_per_speaker_in_simplified_chinese(analyzer: Analyzer) -> None:
    result = analyzer.analyze(STEREO_WAV)
    assert result.status is CallStatus.ANALYZED, result.error
    assert result.channels == "stereo"
    assert result.call_id == "dev-001"  # from the sidecar, not the file stem
    speakers = {u.speaker for u in result.utterances}
    assert speakers == {Speaker.AGENT, Speaker.CUSTOMER}
    customer = "".join(u.text for u in result.utterances if u.speaker is Speaker.CUSTOMER)
    # The customer says 嗯，是我，你说吧 at about 1.5–3.8 s of the clip.
    assert "你说吧" in customer
    for u in result.utterances:
        assert not _TRADITIONAL_ONLY.search(u.text), u.text
        assert 0.0 <= u.start < u.end <= result.duration_s + 0.01
    cust = next(u for u in result.utterances if u.speaker is Speaker.CUSTOMER)
    assert 1.0 < cust.start < 2.2 and 3.2 < cust.end < 4.2
    stages = {t.stage for t in result.timings}
    assert stages == {"ingest", "transcribe", "scan", "detect", "score"}


def test_mono_call_is_transcribed_once_and_speakers_told_apart_by_voice(
    analyzer: Analyzer,
) -> None:
    result = analyzer.analyze(MONO_WAV)
    assert result.status is CallStatus.ANALYZED, result.error
    assert result.channels == "mono"
    assert result.utterances
    assert {u.speaker for u in result.utterances} <= {Speaker.AGENT, Speaker.CUSTOMER}
    assert result.utterances[0].speaker is Speaker.AGENT  # outbound: the agent speaks first


def test_silence_yields_no_text(analyzer: Analyzer, tmp_path: Path) -> None:
    import av
    import numpy as np

    path = tmp_path / "silence.wav"
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="stereo")
        noise = (np.random.default_rng(0).normal(0, 30, (2, 8000 * 6))).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(noise, format="s16p", layout="stereo")
        frame.rate = 8000
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    result = analyzer.analyze(path)
    assert result.status is CallStatus.ANALYZED
    assert result.utterances == ()
    assert result.findings == ()


@pytest.mark.parametrize("kind", ["mulaw", "mp3", "amr", "m4a", "ogg"])
def test_other_formats_go_through_the_whole_pipeline(
    analyzer: Analyzer, tmp_path: Path, kind: str
) -> None:
    shutil.copy(STEREO_WAV.with_suffix(".json"), tmp_path / f"{STEREO_WAV.stem}_{kind}.json")
    path = encode(STEREO_WAV, kind, tmp_path)
    result = analyzer.analyze(path, lambda meta: CallContext())
    assert result.status is CallStatus.ANALYZED, result.error
    assert "你说吧" in "".join(u.text for u in result.utterances)


def test_decoded_audio_leaves_nothing_in_the_temporary_directory(
    analyzer: Analyzer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import tempfile

    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))

    def open_in_spool() -> list[str]:
        fds = Path("/proc/self/fd")
        links = []
        for fd in fds.iterdir():
            try:
                links.append(os.readlink(fd))
            except OSError:
                continue
        return [link for link in links if link.startswith(str(spool) + os.sep)]

    result = analyzer.analyze(STEREO_WAV)
    assert result.status is CallStatus.ANALYZED, result.error
    assert open_in_spool() == [] and list(spool.iterdir()) == []
    # A recording refused after decoding (shorter than the minimum) leaves nothing either.
    import wave

    short = tmp_path / "short.wav"
    with wave.open(str(STEREO_WAV)) as src, wave.open(str(short), "wb") as out:
        out.setparams(src.getparams())
        out.writeframes(src.readframes(src.getframerate() // 2))
    refused = analyzer.analyze(short)
    assert refused.error is not None and refused.error["code"] == "audio_too_short"
    assert open_in_spool() == []


def test_a_full_temporary_directory_is_raised_not_blamed_on_the_recording(
    analyzer: Analyzer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from qa_service.errors import ScratchSpaceError

    # Not the recording's fault: a worker retries the call later instead of failing it.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    with pytest.raises(ScratchSpaceError, match="decoded audio"):
        analyzer.analyze(STEREO_WAV)
