"""The analysis job, and the per-process runtime it runs in.

:func:`analyze_call` is thin and idempotent: it claims the call in the database (queued →
analyzing, one more attempt), runs the pipeline on the stored recording with the call's
metadata, saves under the same call and sets ``analyzed``. A second run of a finished job
finds nothing to claim and changes nothing. Bad input (undecodable audio) fails the call
at once with the reason; anything else is retried with backoff until
``job_max_attempts``, then ``failed``. While it runs, a heartbeat thread stamps the call
so that the sweep can tell a slow analysis from a dead worker.

The runtime (database engine, Analyzer with its models, audio store) is built once per
process, when the worker starts (or lazily by the first job of an in-process queue),
never at import.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from qa_service.alerts.notify import announce
from qa_service.alerts.store import raise_alert
from qa_service.alerts.triggers import alert_trigger
from qa_service.audit.events import Actor
from qa_service.complaints.register import link_saved_call
from qa_service.db import queue as calls
from qa_service.db import repository as repo
from qa_service.db.session import make_engine, make_session_factory, migrate
from qa_service.db.tables import utcnow
from qa_service.domain import CallAnalysis, CallMetadata, CallStatus
from qa_service.errors import QAServiceError, StorageError
from qa_service.ingest.store import AudioStore
from qa_service.ingest.waveform import cached_waveform
from qa_service.review.queue import classify_call
from qa_service.settings import Settings, get_settings
from qa_service.worker.retry import RetryAnalysis

if TYPE_CHECKING:
    from pathlib import Path

    from qa_service.pipeline import ContextProvider

logger = logging.getLogger(__name__)


class AnalyzerLike(Protocol):
    """What a job needs of :class:`qa_service.pipeline.Analyzer` (tests pass a fake)."""

    def analyze(
        self, path: Path, context: ContextProvider, *, metadata: CallMetadata | None = None
    ) -> CallAnalysis: ...


@dataclass
class WorkerRuntime:
    """The heavy, process-wide things a job uses."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    analyzer: AnalyzerLike
    store: AudioStore
    versions: dict[str, str]


_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def start_runtime(
    settings: Settings | None = None, *, analyzer: AnalyzerLike | None = None
) -> WorkerRuntime:
    """Build the process's runtime once (migrates the database, loads the models).

    Later calls return the same runtime, whatever they pass.
    """
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            settings = settings or get_settings()
            engine = make_engine(settings.resolved_database_url)
            migrate(engine)
            if analyzer is None:
                from qa_service.pipeline import Analyzer

                analyzer = Analyzer(settings)
            _runtime = WorkerRuntime(
                settings=settings,
                engine=engine,
                sessions=make_session_factory(engine),
                analyzer=analyzer,
                store=AudioStore(settings.resolved_audio_store),
                versions=_versions(),
            )
            logger.info("worker runtime ready (database, models, audio store)")
        return _runtime


def stop_runtime() -> None:
    """Drop the runtime (closes database connections); the next job builds a new one."""
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.engine.dispose()
            _runtime = None


def analyze_call(call_id: str) -> str:
    """The job: analyse call ``call_id``; returns the call's status afterwards.

    Raises :class:`RetryAnalysis` (after the call is ``queued`` again in the database)
    when the attempt failed for a reason that may pass.
    """
    return run_analysis(start_runtime(), call_id, job_id=_current_job_id())


def run_analysis(rt: WorkerRuntime, call_id: str, *, job_id: str | None = None) -> str:
    """:func:`analyze_call` on an explicit runtime."""
    with rt.sessions.begin() as session:
        call = calls.claim_for_analysis(session, call_id=call_id, job_id=job_id, now=utcnow())
    if call is None:
        with rt.sessions() as session:
            found = calls.find_queued_call(session, call_id=call_id)
        status = found.status.value if found is not None else "missing"
        logger.info("call %s is %s: nothing to do", call_id, status)
        return status
    metadata = replace(
        call.metadata or CallMetadata(call_id=call.call_id, recording=call.recording),
        call_id=call.call_id,
        recording=call.recording,
    )
    try:
        with _Heartbeat(rt, call):
            path = rt.store.path_for(call.sha256, call.audio_ext)
            if not path.is_file():
                # A shared mount missing on this machine, not a bad upload: worth retrying.
                raise StorageError(
                    f"录音存储中找不到录音 {path} / the recording is missing from the audio "
                    f"store: {path}",
                    path=path,
                )
            from qa_service.worker.context import dial_context

            analysis = rt.analyzer.analyze(
                path, dial_context(rt.sessions, rt.settings), metadata=metadata
            )
            if analysis.status is CallStatus.ERROR:
                return _fail_on_input(rt, call, analysis)
            saved = _save(rt, call, analysis)
    except RetryAnalysis:
        raise
    except Exception as exc:  # anything but bad input may pass: a retry decides
        logger.exception("analysis of call %s failed (attempt %d)", call_id, call.attempts)
        return _retry_or_fail(rt, call, exc)
    if saved == CallStatus.ANALYZED.value:
        _cache_waveform(rt, call, path)
    return saved


def _cache_waveform(rt: WorkerRuntime, call: calls.QueuedCall, path: Path) -> None:
    """Compute the call page's waveform peaks now (~0.25 s for 10 minutes), so that the
    first reviewer to open the call does not wait for them. Best effort: the call is saved,
    and the page's waveform route computes what is missing."""
    try:
        cached_waveform(rt.store, call.sha256, path)
    except QAServiceError as exc:
        logger.warning("call %s: waveform peaks not cached: %s", call.call_id, exc.message)
    except Exception:  # the analysis stands whatever happens here
        logger.exception("call %s: waveform peaks not cached", call.call_id)


def _save(rt: WorkerRuntime, call: calls.QueuedCall, analysis: CallAnalysis) -> str:
    from qa_service.pipeline import refusals_to_remember

    with rt.sessions.begin() as session:
        if not calls.still_owned(session, call=call):
            # The sweep took the call back (this worker looked dead) and another run owns it.
            logger.warning("call %s: claim lost, result discarded", call.call_id)
            return "superseded"
        repo.save_analysis(
            session,
            analysis=analysis,
            source_path=None,
            versions=rt.versions,
            started_at=call.analysis_started_at,
            call_pk=call.pk,
        )
        refusals = refusals_to_remember(analysis)
        if refusals:
            repo.add_do_not_call(session, entries=refusals, source_call_id=call.call_id)
        calls.finish_analysis(session, call=call, status=CallStatus.ANALYZED)
        # Same transaction: an analysed call is never seen without its review state.
        classify_call(session, call_pk=call.pk, settings=rt.settings)
        # A recording uploaded after its customer complained joins the complaint's evidence.
        link_saved_call(
            session,
            call_pk=call.pk,
            link_days=rt.settings.complaint_link_days,
            actor=Actor.system("worker"),
        )
        alert_id = _raise_alert(rt, session, call, analysis)
    if alert_id is not None:
        announce(rt.settings.redis_url, rt.settings.queue_name, alert_id)
    return CallStatus.ANALYZED.value


def _raise_alert(
    rt: WorkerRuntime, session: Session, call: calls.QueuedCall, analysis: CallAnalysis
) -> int | None:
    """The supervisors' alert for a complaint-intent or fatal call, in the save's transaction."""
    trigger = alert_trigger(analysis)
    if trigger is None:
        return None
    alert_id = raise_alert(
        session,
        call_pk=call.pk,
        trigger=trigger,
        webhook_url=rt.settings.alert_webhook_url,
        now=utcnow(),
    )
    if alert_id is not None:
        logger.info("call %s: alert %s (%s)", call.call_id, alert_id, ", ".join(trigger.kinds))
    return alert_id


def _fail_on_input(rt: WorkerRuntime, call: calls.QueuedCall, analysis: CallAnalysis) -> str:
    error = analysis.error or {}
    code = str(error.get("code", "invalid_input"))
    message = str(error.get("message", "无法分析 / cannot be analysed"))
    with rt.sessions.begin() as session:
        if not calls.still_owned(session, call=call):
            return "superseded"
        if analysis.sha256 == call.sha256:
            # Keeps the run (with the error's full context) in the call's history.
            repo.save_analysis(
                session,
                analysis=analysis,
                source_path=None,
                versions=rt.versions,
                started_at=call.analysis_started_at,
                call_pk=call.pk,
            )
        calls.mark_failed(session, pk=call.pk, code=code, message=message, now=utcnow())
    logger.info("call %s failed on its input: %s", call.call_id, message)
    return CallStatus.FAILED.value


def _retry_or_fail(rt: WorkerRuntime, call: calls.QueuedCall, exc: Exception) -> str:
    reason = exc.message if isinstance(exc, QAServiceError) else f"{type(exc).__name__}: {exc}"
    code = exc.code if isinstance(exc, QAServiceError) else "analysis_error"
    with rt.sessions.begin() as session:
        if call.attempts >= rt.settings.job_max_attempts:
            calls.mark_failed(
                session,
                pk=call.pk,
                code=code,
                message=f"分析失败 {call.attempts} 次，不再重试：{reason} / analysis failed "
                f"{call.attempts} times, giving up: {reason}",
                now=utcnow(),
                only_from=CallStatus.ANALYZING,
                started_at=call.analysis_started_at,
            )
            return CallStatus.FAILED.value
        released = calls.release_for_retry(session, call=call, reason=reason, now=utcnow())
    if not released:
        return "superseded"
    raise RetryAnalysis(call.call_id, call.attempts, reason) from exc


class _Heartbeat:
    """Stamps ``heartbeat_at`` on the call every ``stale_analysis_s / 6`` seconds."""

    def __init__(self, rt: WorkerRuntime, call: calls.QueuedCall) -> None:
        self.rt = rt
        self.call = call
        self.interval_s = max(1.0, rt.settings.stale_analysis_s / 6)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"qa-heartbeat-{call.call_id}", daemon=True
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with self.rt.sessions.begin() as session:
                    if not calls.beat(session, call=self.call, now=utcnow()):
                        return  # claim lost; the save will notice too
            except Exception:  # a database hiccup: the next beat may pass
                logger.warning("heartbeat of call %s failed", self.call.call_id, exc_info=True)


def _current_job_id() -> str | None:
    try:
        from rq import get_current_job
    except ImportError:  # pragma: no cover - rq is a dependency
        return None
    job = get_current_job()
    return job.id if job is not None else None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("qa-service", "faster-whisper", "ctranslate2", "av", "opencc", "pypinyin"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out
