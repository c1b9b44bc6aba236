"""The analysis pipeline: ingest → transcribe → scan → score, for one recording.

:class:`Analyzer` owns the heavy resources (the Whisper model) and is built once per
process. It never touches the database: callers pass in the dial log and do-not-call
list and persist the returned :class:`CallAnalysis`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from qa_service.asr.model import choose_device, resolve_model_dir
from qa_service.asr.textnorm import DomainVocabulary, TextNormalizer
from qa_service.asr.transcribe import TranscribeOptions, Transcriber
from qa_service.asr.vad import VadParams
from qa_service.detection.detect import ConductLexicon, Detector, FusionParams
from qa_service.domain import (
    CallAnalysis,
    CallMetadata,
    CallStatus,
    DialAttempt,
    DoNotCallEntry,
    Finding,
    IngestedCall,
    StageTiming,
    Transcript,
)
from qa_service.errors import QAServiceError, StorageError
from qa_service.ingest.recordings import ingest_recording, load_metadata
from qa_service.rules.acoustic import AcousticParams, scan_acoustics
from qa_service.rules.metadata import MetadataParams, scan_metadata
from qa_service.scoring.rubric import load_rubric
from qa_service.scoring.score import score_call
from qa_service.settings import Settings


@dataclass(frozen=True)
class CallContext:
    """What the analysis of one call needs from outside the recording."""

    dial_log: tuple[DialAttempt, ...] = ()
    do_not_call: tuple[DoNotCallEntry, ...] = ()


# The context often depends on the call (its customer, its day), known only after ingest.
ContextProvider = Callable[[CallMetadata], CallContext]


def _no_context(_meta: CallMetadata) -> CallContext:
    return CallContext()


class _Timer:
    def __init__(self) -> None:
        self.timings: list[StageTiming] = []

    def run(self, stage: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.timings.append(StageTiming(stage, round(time.perf_counter() - t0, 4)))


class Analyzer:
    """Runs the pipeline; load once per process (it holds the Whisper model)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.transcriber = build_transcriber(settings)
        self.device = self.transcriber.device
        self.acoustic = AcousticParams(
            dead_air_s=settings.dead_air_s, min_overlap_s=settings.interruption_overlap_s
        )
        self.metadata = MetadataParams.from_settings(settings)
        # A malformed rubric stops start-up: no call may be scored with half a rubric.
        self.rubric = load_rubric(settings.rubric_path)
        self.detector = build_detector(settings, self.device.cpu_threads)

    @property
    def model_name(self) -> str:
        return self.transcriber.model_name

    def analyze(
        self,
        path: Path,
        context: ContextProvider = _no_context,
        *,
        metadata: CallMetadata | None = None,
    ) -> CallAnalysis:
        """Analyse one recording. Never raises for bad input: returns an error analysis.

        ``metadata`` replaces the sidecar (an upload's metadata, kept in the database while
        the recording sits in the content-addressed audio store, where no sidecar lives).
        Raises :class:`StorageError` when the temporary directory that holds the decoded
        audio is full: not the recording's fault, so not its analysis's result either
        (a worker retries it later).
        """
        timer = _Timer()
        try:
            call: IngestedCall = timer.run(
                "ingest",
                ingest_recording,
                path,
                min_duration_s=self.settings.min_duration_s,
                assume_offset=self.settings.local_tz,
                max_duration_s=self.settings.max_audio_hours * 3600,
            )
        except StorageError:
            raise
        except QAServiceError as exc:
            error = _error_analysis(path, exc, timer)
            if metadata is not None:
                error = replace(error, call_id=metadata.call_id, recording=metadata.recording)
            return error
        if metadata is not None:
            call = replace(call, metadata=_given_metadata(metadata, call))
        try:
            try:
                transcript: Transcript = timer.run("transcribe", self.transcriber.transcribe, call)
            finally:
                call.audio.close()  # transcription is the last stage that reads the samples
            findings = timer.run("scan", self.scan, call, transcript, context(call.metadata))
            findings += timer.run("detect", self.detect, call, transcript)
            findings.sort(key=finding_order)
        except StorageError:
            raise
        except QAServiceError as exc:
            return replace(
                _error_analysis(path, exc, timer),
                call_id=call.metadata.call_id,
                sha256=call.sha256,
                metadata=call.metadata,
                duration_s=round(call.audio.duration_s, 2),
                channels=call.layout,
            )
        score = timer.run("score", score_call, findings, self.rubric)
        return CallAnalysis(
            call_id=call.metadata.call_id,
            recording=call.metadata.recording,
            status=CallStatus.ANALYZED,
            duration_s=round(call.audio.duration_s, 2),
            channels=call.layout,
            sha256=call.sha256,
            metadata=call.metadata,
            utterances=transcript.utterances,
            findings=tuple(findings),
            activity=transcript.activity,
            score=score.score,
            score_detail=score,
            timings=tuple(timer.timings),
            model_name=self.model_name,
        )

    def scan(
        self, call: IngestedCall, transcript: Transcript, context: CallContext
    ) -> list[Finding]:
        """Rules that need no language model (acoustic and metadata)."""
        return [
            *scan_acoustics(transcript.activity, self.acoustic),
            *scan_metadata(call.metadata, context.dial_log, context.do_not_call, self.metadata),
        ]

    def detect(self, call: IngestedCall, transcript: Transcript) -> list[Finding]:
        """Prohibitions, customer signals and required conduct in the speech."""
        return self.detector.detect(transcript.utterances, call.metadata)


def refusals_to_remember(analysis: CallAnalysis) -> list[DoNotCallEntry]:
    """C02 on a third-party call puts the dialled number on the do-not-call list (M03)."""
    meta = analysis.metadata
    if meta is None or not meta.dialed_number or meta.contact_role != "third_party":
        return []
    refusals = [f for f in analysis.findings if f.rule == "C02"]
    if not refusals:
        return []
    when = meta.started_at
    if when is not None and refusals[0].end is not None:
        when = when + timedelta(seconds=refusals[0].end)
    return [
        DoNotCallEntry(
            dialed_number=meta.dialed_number,
            reason=f"第三方拒绝联系（通话 {analysis.call_id}）：{refusals[0].text or ''}"[:200],
            source="C02",
            added_at=when,
        )
    ]


def build_transcriber(settings: Settings) -> Transcriber:
    """Whisper, VAD and the text normaliser as the settings configure them (loads the model)."""
    vocabulary = DomainVocabulary.load(settings.lexicon_dir / "asr_vocabulary.yaml")
    model_dir = resolve_model_dir(
        settings.whisper_model,
        models_dir=settings.models_dir,
        cache_dir=settings.model_cache_dir,
    )
    device = choose_device(settings.device, settings.compute_type, settings.cpu_threads)
    organisations = tuple(settings.organisation_names)
    prompt = vocabulary.prompt(organisations) if settings.domain_vocabulary else None
    options = TranscribeOptions(
        language=settings.language,
        beam_size=settings.beam_size,
        initial_prompt=prompt,
        vad=VadParams(
            threshold=settings.vad_threshold,
            min_silence_ms=settings.min_silence_ms,
            speech_pad_ms=settings.speech_pad_ms,
        ),
        utterance_gap_s=settings.utterance_gap_s,
    )
    normalizer = TextNormalizer(
        vocabulary.with_terms(organisations), correct=settings.domain_correction
    )
    return Transcriber(
        model_dir, device, options, normalizer, model_name=f"whisper-{settings.whisper_model}"
    )


def build_detector(settings: Settings, cpu_threads: int) -> Detector:
    """Lexicon automata and the classifier, built once per process."""
    from qa_service.detection.classifier import UtteranceClassifier
    from qa_service.detection.lexicon import LexiconMatcher
    from qa_service.detection.lexicon_schema import load_lexicon

    lexicon = load_lexicon(
        settings.lexicon_dir / "rules",
        user_dictionary=settings.lexicon_dir / "collection_terms.txt",
    )
    classifier = UtteranceClassifier.load(settings.classifier_dir, num_threads=cpu_threads)
    conduct = ConductLexicon.load(settings.lexicon_dir / "conduct.yaml")
    semantic = None
    if settings.semantic_detection:
        from qa_service.detection.semantic import (
            EncoderHead,
            SemanticScorer,
            SentenceEncoder,
            SimilarityIndex,
        )

        encoder = SentenceEncoder(
            num_threads=cpu_threads, cache_dir=settings.model_cache_dir / "encoder"
        )
        similarity = SimilarityIndex(lexicon.examples, lexicon.counter_examples, encoder)
        semantic = SemanticScorer(encoder, EncoderHead.load(settings.encoder_head_dir), similarity)
    return Detector(LexiconMatcher(lexicon), classifier, conduct, FusionParams(), semantic)


def _given_metadata(metadata: CallMetadata, call: IngestedCall) -> CallMetadata:
    # As ingest reconciles a sidecar: the file's layout wins, and a stereo file without a
    # channel map keeps the conventional one ingest has already applied.
    if call.layout == "mono":
        return replace(metadata, channels="mono", channel_map=None)
    return replace(
        metadata, channels="stereo", channel_map=metadata.channel_map or call.metadata.channel_map
    )


def finding_order(f: Finding) -> tuple[float, str]:
    return (f.start if f.start is not None else -1.0, f.rule)


def _error_analysis(path: Path, exc: QAServiceError, timer: _Timer) -> CallAnalysis:
    call_id = path.stem
    try:
        call_id = load_metadata(path).call_id
    except QAServiceError:
        pass  # the sidecar itself may be the problem; the file stem still names the call
    return CallAnalysis(
        call_id=call_id,
        recording=path.name,
        status=CallStatus.ERROR,
        error=exc.as_dict(),
        timings=tuple(timer.timings),
    )
