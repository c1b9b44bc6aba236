"""ORM tables: how analyses, dial logs and the do-not-call list are laid out in the database.

These classes are the persistence family of types (STYLE.md keeps ORM tables, domain
dataclasses and API schemas apart): pipeline stages never see them, and
:mod:`qa_service.db.repository` is the only module that converts between them and
:mod:`qa_service.domain`. The schema itself is created by the Alembic migrations in
``qa_service/migrations``; a test compares the two so they cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from qa_service.db.sealed import PHONE, TRANSCRIPT, SealedJSON, SealedText, number_digest

# Explicit constraint names: Alembic can only alter or drop a constraint it can name, and
# SQLite's batch mode (table copy) needs names to carry constraints over.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT ids on PostgreSQL (utterances grow by hundreds per call); SQLite only auto-increments
# a column declared exactly INTEGER PRIMARY KEY.
IdType = BigInteger().with_variant(Integer(), "sqlite")

# JSONB on PostgreSQL (indexable, compact); plain JSON text elsewhere.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")

# Stage timings keep the pipeline order (ingest, transcribe, scan, score); JSONB would
# re-sort the keys, so they use PostgreSQL's order-preserving ``json`` type.
OrderedJSON = JSON()

# Calls: the CLI stores ``analyzed`` or ``error``; uploads go queued → analyzing → analyzed |
# failed (since 0004). An analysis run itself only ever ends analyzed or error.
STATUS_VALUES = ("queued", "analyzing", "analyzed", "failed", "error")
RUN_STATUSES = ("analyzed", "error")
CHANNEL_LAYOUTS = ("stereo", "mono")
SPEAKER_VALUES = ("agent", "customer", "unknown")
REVIEW_STATUSES = ("pending", "confirmed", "dismissed")
SCORE_REASONS = ("analysis", "rescore", "review")


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def utcnow() -> datetime:
    """Now, timezone-aware in UTC: the one clock every stored timestamp uses."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    PostgreSQL keeps ``timestamptz`` itself, but SQLite has no timezone type: it would store
    the wall-clock digits of whatever offset came in and return naive values. Converting to
    UTC on the way in keeps SQLite's string ordering equal to time ordering (range queries
    work), and attaching UTC on the way out gives callers aware datetimes on every backend.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            # A naive time is ambiguous (call-centre local or UTC?); guessing would shift
            # M01/M02 results by hours, so refuse it.
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base holding the one ``MetaData`` that the migrations target."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONDocument,
    }


class CallRow(Base):
    """One recording, identified by the SHA-256 of its bytes, and its latest analysis."""

    __tablename__ = "calls"
    __table_args__ = (
        CheckConstraint(_in("status", STATUS_VALUES), name="status"),
        CheckConstraint(_in("channels", CHANNEL_LAYOUTS), name="channels"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(128), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    recording: Mapped[str] = mapped_column(String(512))
    source_path: Mapped[str | None] = mapped_column(Text)
    agent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # Since 0008 sealed (AES-GCM) and looked up by its keyed hash; the ``metadata`` JSON holds
    # the number masked (qa_service.privacy): see qa_service.db.rows.call_metadata.
    dialed_number: Mapped[str | None] = mapped_column(SealedText(PHONE))
    dialed_number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    contact_role: Mapped[str | None] = mapped_column(String(32))
    direction: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column(index=True)
    duration_s: Mapped[float | None] = mapped_column(Float)
    channels: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), index=True)
    score: Mapped[float | None] = mapped_column(Float)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    # ``metadata`` is reserved on declarative classes, hence the attribute name.
    sidecar: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONDocument)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Since 0002: the rubric version behind ``score`` (the current call_scores row), and the
    # organisation from the sidecar, as columns so that scorecards can filter on them.
    rubric_version: Mapped[str | None] = mapped_column(String(32))
    team_id: Mapped[str | None] = mapped_column(String(64), index=True)
    agency_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # Since 0004, the job queue's bookkeeping: the database is the record of every call's
    # progress, Redis only carries the jobs (see qa_service.worker).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(128))
    queued_at: Mapped[datetime | None]
    analysis_started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    # The recording's extension in the audio store (None: not in the store, e.g. a CLI run).
    audio_ext: Mapped[str | None] = mapped_column(String(16))
    uploaded_by: Mapped[str | None] = mapped_column(String(128))

    @validates("dialed_number")
    def _hash_number(self, _key: str, value: str | None) -> str | None:
        self.dialed_number_hash = number_digest(value)
        return value

    utterances: Mapped[list[UtteranceRow]] = relationship(
        back_populates="call",
        order_by="UtteranceRow.seq",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    findings: Mapped[list[FindingRow]] = relationship(
        back_populates="call",
        order_by="FindingRow.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    runs: Mapped[list[AnalysisRunRow]] = relationship(
        back_populates="call",
        order_by="AnalysisRunRow.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    # Since 0006: where the call stands in the review loop (None: not classified yet).
    review: Mapped[CallReviewRow | None] = relationship(viewonly=True, uselist=False, lazy="select")


class UtteranceRow(Base):
    """One transcribed turn; ``seq`` keeps the order the transcriber produced."""

    __tablename__ = "utterances"
    __table_args__ = (
        UniqueConstraint("call_id", "seq"),
        CheckConstraint(_in("speaker", SPEAKER_VALUES), name="speaker"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_id: Mapped[int] = mapped_column(IdType, ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(16))
    channel: Mapped[int] = mapped_column(Integer)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    # Since 0008 ``text`` and ``raw_text`` hold the transcript with personal numbers masked
    # (what search indexes and what readers without view_pii see); ``pii_sealed`` the
    # originals of the masked fields, sealed, or NULL when nothing was masked.
    text: Mapped[str] = mapped_column(Text)
    raw_text: Mapped[str | None] = mapped_column(Text)
    avg_logprob: Mapped[float | None] = mapped_column(Float)
    pii_sealed: Mapped[dict[str, Any] | None] = mapped_column(SealedJSON(TRANSCRIPT))

    call: Mapped[CallRow] = relationship(back_populates="utterances")


class FindingRow(Base):
    """One rule hit (rule ids: shared/spec/rules.md) awaiting or carrying a reviewer verdict."""

    __tablename__ = "findings"
    __table_args__ = (
        CheckConstraint(_in("speaker", SPEAKER_VALUES), name="speaker"),
        CheckConstraint(_in("review_status", REVIEW_STATUSES), name="review_status"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("calls.id", ondelete="CASCADE"), index=True
    )
    rule: Mapped[str] = mapped_column(String(8), index=True)
    speaker: Mapped[str | None] = mapped_column(String(16))
    start_s: Mapped[float | None] = mapped_column(Float)
    end_s: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    # Since 0008, as on utterances: ``text``/``evidence`` masked, the originals sealed here.
    pii_sealed: Mapped[dict[str, Any] | None] = mapped_column(SealedJSON(TRANSCRIPT))
    review_status: Mapped[str] = mapped_column(
        String(16), default="pending", server_default="pending"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    call: Mapped[CallRow] = relationship(back_populates="findings")


class AnalysisRunRow(Base):
    """One execution of the pipeline on a call: kept for every run, so failures stay visible."""

    __tablename__ = "analysis_runs"
    __table_args__ = (CheckConstraint(_in("status", RUN_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("calls.id", ondelete="CASCADE"), index=True
    )
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str | None] = mapped_column(String(256))
    versions: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    timings: Mapped[dict[str, Any]] = mapped_column(OrderedJSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)

    call: Mapped[CallRow] = relationship(back_populates="runs")


class DialAttemptRow(Base):
    """One outbound attempt from the dial log (CDR), the evidence behind rules M02 and M03."""

    __tablename__ = "dial_attempts"
    __table_args__ = (
        # Importing the same dial log twice must not double-count attempts (M02); the
        # number is sealed (0008), so its keyed hash stands for it.
        UniqueConstraint("dialed_number_hash", "started_at", "agent_id"),
        Index("ix_dial_attempts_customer_id_started_at", "customer_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_id: Mapped[str | None] = mapped_column(String(128))
    agent_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(64))
    dialed_number: Mapped[str] = mapped_column(SealedText(PHONE))
    dialed_number_hash: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    connected: Mapped[bool] = mapped_column(Boolean)
    duration_s: Mapped[float] = mapped_column(Float)

    @validates("dialed_number")
    def _hash_number(self, _key: str, value: str) -> str:
        self.dialed_number_hash = number_digest(value) or ""
        return value


class DoNotCallRow(Base):
    """A number whose holder must not be called again (imported, or a C02 finding)."""

    __tablename__ = "do_not_call"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # Sealed since 0008; one entry per number, kept unique by the keyed hash.
    dialed_number: Mapped[str] = mapped_column(SealedText(PHONE))
    dialed_number_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(Text, default="")  # masked (a refusal may quote one)
    source: Mapped[str] = mapped_column(String(16))
    source_call_id: Mapped[str | None] = mapped_column(String(128))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)

    @validates("dialed_number")
    def _hash_number(self, _key: str, value: str) -> str:
        self.dialed_number_hash = number_digest(value) or ""
        return value


class CallScoreRow(Base):
    """One score of a call under one rubric version; re-scoring appends, never rewrites.

    Exactly one row per call is current (a partial unique index keeps it so): the one
    ``calls.score`` mirrors. Older rows stay as the call's score history, so a rubric
    change or a reviewer's verdict can always be traced.
    """

    __tablename__ = "call_scores"
    __table_args__ = (
        CheckConstraint(_in("reason", SCORE_REASONS), name="reason"),
        Index(
            "uq_call_scores_current_call_id",
            "call_id",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("calls.id", ondelete="CASCADE"), index=True
    )
    rubric_version: Mapped[str] = mapped_column(String(32), index=True)
    rubric_digest: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    fatal: Mapped[bool] = mapped_column(Boolean)
    breakdown: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    is_current: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Since 0006: why a review score changed (which decision on which finding).
    note: Mapped[str | None] = mapped_column(Text)


# --- accounts (0003): users, teams, sessions, API tokens, the agent roster ----------------

ROLE_VALUES = ("admin", "manager", "supervisor", "inspector", "agent")
SESSION_END_REASONS = ("logout", "idle", "disabled", "password", "reset")


class UserRow(Base):
    """One person (or machine client) who may log in; never deleted, only disabled."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLE_VALUES), name="role"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # Normalised (NFKC, lower case) by the accounts service, so 'ZhangSan' is 'zhangsan'.
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    # The roster's agent id for role 'agent': the calls that agent may see.
    agent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    password_changed_at: Mapped[datetime]
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    teams: Mapped[list[UserTeamRow]] = relationship(
        order_by="UserTeamRow.team_id", cascade="all, delete-orphan", passive_deletes=True
    )


class UserTeamRow(Base):
    """A team a supervisor (or anyone) belongs to; a supervisor sees its teams' calls."""

    __tablename__ = "user_teams"

    user_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    team_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class PasswordHistoryRow(Base):
    """The hash of a password an account has had (the current one included), for reuse checks."""

    __tablename__ = "password_history"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuthSessionRow(Base):
    """A browser session: only hashes of its cookie token and CSRF token are stored."""

    __tablename__ = "auth_sessions"
    __table_args__ = (CheckConstraint(_in("end_reason", SESSION_END_REASONS), name="end_reason"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(16))


class ApiTokenRow(Base):
    """A bearer token for a machine client, acting as its user; stored as a SHA-256 hash."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, shown in lists so people can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AgentRow(Base):
    """One agent of the roster: the team and agency its calls are counted under."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(128))
    team_id: Mapped[str | None] = mapped_column(String(64), index=True)
    agency_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- review loop (0006): review state per call, its history, decisions, appeals ---------

REVIEW_STATE_VALUES = (
    "flagged",
    "passed",
    "in_review",
    "reviewed",
    "feedback_sent",
    "acknowledged",
    "appealed",
    "ruled",
)
DECISION_VALUES = ("confirmed", "dismissed", "added")
DISMISS_REASONS = (
    "asr_error",
    "wrong_speaker",
    "compliant_in_context",
    "rule_not_applicable",
    "other",
)
APPEAL_STATUSES = ("open", "upheld", "overturned")


class CallReviewRow(Base):
    """Where one analysed call stands in the review loop (qa_service.review.states).

    ``risk_tier`` orders the review queue (0 first: complaint intent the agent did not
    de-escalate); ``weak_evidence`` lists the weak-evidence kinds of the call's findings
    as ",kind,kind," so a LIKE filter works the same on SQLite and PostgreSQL.
    """

    __tablename__ = "call_reviews"
    __table_args__ = (
        CheckConstraint(_in("state", REVIEW_STATE_VALUES), name="state"),
        Index("ix_call_reviews_state_risk_tier", "state", "risk_tier"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("calls.id", ondelete="CASCADE"), unique=True
    )
    state: Mapped[str] = mapped_column(String(16))
    risk_tier: Mapped[int] = mapped_column(Integer)
    calibration: Mapped[bool] = mapped_column(Boolean, default=False)
    weak_evidence: Mapped[str] = mapped_column(String(128), default="")
    assignee_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    assigned_by_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL")
    )
    # None while claimed means no expiry (an assignment by a supervisor holds).
    lease_expires_at: Mapped[datetime | None]
    feedback_summary: Mapped[str | None] = mapped_column(Text)
    feedback_at: Mapped[datetime | None]
    appeal_deadline: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ReviewEventRow(Base):
    """One step of a call's review: who, when, from which state to which, and why."""

    __tablename__ = "review_events"
    __table_args__ = (CheckConstraint(_in("to_state", REVIEW_STATE_VALUES), name="to_state"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("calls.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL")
    )
    # The user name at the time (None: the system, e.g. analysis or an expired lease).
    actor: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewDecisionRow(Base):
    """An inspector's decision on one finding (or a finding the inspector added).

    The finding's rule, span, speaker and text are copied here so the decision stays
    readable (and exportable as a training label) whatever happens to the finding row.
    """

    __tablename__ = "review_decisions"
    __table_args__ = (
        CheckConstraint(_in("decision", DECISION_VALUES), name="decision"),
        CheckConstraint(
            "reason_code IS NULL OR " + _in("reason_code", DISMISS_REASONS), name="reason_code"
        ),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("calls.id", ondelete="CASCADE"), index=True
    )
    finding_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("findings.id", ondelete="SET NULL"), unique=True
    )
    decision: Mapped[str] = mapped_column(String(16))
    reason_code: Mapped[str | None] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[str] = mapped_column(String(8), index=True)
    speaker: Mapped[str | None] = mapped_column(String(16))
    start_s: Mapped[float | None] = mapped_column(Float)
    end_s: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(32))
    coaching_note: Mapped[str | None] = mapped_column(Text)
    # A supervisor overturned this finding on appeal: it no longer stands.
    overturned: Mapped[bool] = mapped_column(Boolean, default=False)
    decided_by_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL")
    )
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewAppealRow(Base):
    """An agent's appeal against one confirmed finding, and the supervisor's final ruling."""

    __tablename__ = "review_appeals"
    __table_args__ = (CheckConstraint(_in("status", APPEAL_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("calls.id", ondelete="CASCADE"), index=True
    )
    decision_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("review_decisions.id", ondelete="CASCADE"), unique=True
    )
    appellant_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL")
    )
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    ruling_note: Mapped[str | None] = mapped_column(Text)
    ruled_by_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ruled_at: Mapped[datetime | None]


# --- alerts (0007): complaint-intent and fatal-finding alerts, webhook deliveries ---------

ALERT_KIND_VALUES = ("complaint", "fatal")
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class AlertRow(Base):
    """An alert for the supervisors of a call's team (qa_service.alerts): one per call.

    ``kinds`` lists ``complaint`` (a C01 finding) and/or ``fatal`` (a fatal rubric item);
    ``rules`` the rule ids behind them. Streams read alerts by increasing ``id``.
    """

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("calls.id", ondelete="CASCADE"), unique=True
    )
    kinds: Mapped[list[str]] = mapped_column(JSON)
    rules: Mapped[list[str]] = mapped_column(JSON)
    team_id: Mapped[str | None] = mapped_column(String(64), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    acknowledged_by_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL")
    )
    acknowledged_at: Mapped[datetime | None]


class AlertDeliveryRow(Base):
    """One alert's POST to the configured webhook: retried with backoff until delivered."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "url"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        Index("ix_alert_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    alert_id: Mapped[int] = mapped_column(IdType, ForeignKey("alerts.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    # A sender holds the delivery until then (several web processes may send).
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


# --- audit trail and retention (0009) --------------------------------------------------

AUDIT_RESULTS = ("success", "failure")
ACTOR_KINDS = ("user", "cli", "system")


class AuditEventRow(Base):
    """One audit event, a link of the hash chain (see :mod:`qa_service.audit.chain`).

    Append-only: database triggers refuse UPDATE and DELETE (DELETE only of rows the
    retention run has checkpointed). ``seq`` is assigned under the chain-head lock, so it has
    no gaps; no foreign keys on purpose, so nothing cascades into the trail.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint(_in("result", AUDIT_RESULTS), name="result"),
        CheckConstraint(_in("actor_kind", ACTOR_KINDS), name="actor_kind"),
    )

    seq: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(IdType, index=True)
    actor_name: Mapped[str] = mapped_column(String(128), index=True)
    client_ip: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64), index=True)
    result: Mapped[str] = mapped_column(String(16))
    target: Mapped[str | None] = mapped_column(String(512))
    # Canonical JSON text, exactly what was hashed: JSONB would re-encode it.
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))


class AuditChainHeadRow(Base):
    """The one row (id 1) every append locks: the chain's last link and the purge horizon."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(IdType)
    last_hash: Mapped[str] = mapped_column(String(64))
    # Rows up to here were purged by retention (the triggers let only those be deleted).
    purged_through_seq: Mapped[int] = mapped_column(IdType)
    purged_through_hash: Mapped[str] = mapped_column(String(64))


class AuditReviewRow(Base):
    """A periodic review of the audit trail: who reviewed which period, when, and what."""

    __tablename__ = "audit_reviews"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    reviewed_at: Mapped[datetime] = mapped_column(index=True)
    reviewer_kind: Mapped[str] = mapped_column(String(16))
    reviewer_id: Mapped[int | None] = mapped_column(IdType)
    reviewer_name: Mapped[str] = mapped_column(String(128))
    period_from: Mapped[datetime]
    period_to: Mapped[datetime]
    events: Mapped[int] = mapped_column(Integer)
    first_seq: Mapped[int | None] = mapped_column(IdType)
    last_seq: Mapped[int | None] = mapped_column(IdType)
    # The chain's last hash at review time: an anchor a later verify can be held against.
    head_hash: Mapped[str] = mapped_column(String(64))
    chain_ok: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(Text)
    audit_seq: Mapped[int] = mapped_column(IdType)


class RetentionHoldRow(Base):
    """A hold keeping a call from the retention purge (e.g. litigation), until released."""

    __tablename__ = "retention_holds"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("calls.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None]


# --- complaints (0010): the complaint register, its linked calls, coaching trainings -----

COMPLAINT_SOURCES = ("agency", "hotline", "branch", "bank_forwarded", "other")
COMPLAINT_LEVELS = ("general", "serious", "major")
COMPLAINT_TYPES = ("abuse", "improper_method", "misinformation", "broken_promise", "other")
COMPLAINT_OUTCOMES = ("at_fault", "partly_at_fault", "not_at_fault")


class ComplaintRow(Base):
    """One customer complaint (qa_service.complaints): open until it has an ``outcome``.

    The customer is named by ``customer_id`` and/or a phone number (sealed, looked up by
    its keyed hash, as on calls). ``team_id``/``agency_id``/``agent_id`` are those of the
    most recent linked call: they decide which supervisors see the complaint and where the
    trends count it.
    """

    __tablename__ = "complaints"
    __table_args__ = (
        CheckConstraint(_in("source", COMPLAINT_SOURCES), name="source"),
        CheckConstraint(_in("level", COMPLAINT_LEVELS), name="level"),
        CheckConstraint(_in("type", COMPLAINT_TYPES), name="type"),
        CheckConstraint("outcome IS NULL OR " + _in("outcome", COMPLAINT_OUTCOMES), name="outcome"),
        CheckConstraint("customer_id IS NOT NULL OR phone_hash IS NOT NULL", name="customer"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # The bank's complaint number (工单号): importing the same list twice adds nothing.
    reference: Mapped[str | None] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    phone: Mapped[str | None] = mapped_column(SealedText(PHONE))
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    team_id: Mapped[str | None] = mapped_column(String(64), index=True)
    agency_id: Mapped[str | None] = mapped_column(String(64), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    outcome: Mapped[str | None] = mapped_column(String(16), index=True)
    outcome_by_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL")
    )
    outcome_by: Mapped[str | None] = mapped_column(String(128))
    outcome_at: Mapped[datetime | None]
    follow_up: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @validates("phone")
    def _hash_phone(self, _key: str, value: str | None) -> str | None:
        self.phone_hash = number_digest(value)
        return value


class ComplaintCallRow(Base):
    """A call of the complaint's customer in the window before the complaint arrived."""

    __tablename__ = "complaint_calls"
    __table_args__ = (UniqueConstraint("complaint_id", "call_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    complaint_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("complaints.id", ondelete="CASCADE"), index=True
    )
    call_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("calls.id", ondelete="CASCADE"), index=True
    )
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingRow(Base):
    """A re-training a supervisor gave an agent (on one rule, or on the score as a whole)."""

    __tablename__ = "coaching_trainings"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64), index=True)
    rule: Mapped[str | None] = mapped_column(String(8))
    trained_at: Mapped[datetime] = mapped_column(index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_by_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL")
    )
    recorded_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
