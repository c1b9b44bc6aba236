"""Error hierarchy: every failure a user can meet carries a stable code and context.

Codes are what the JSON output's ``error.code`` carries; messages are Chinese first
because call-centre staff read them, with the English gist after a " / ".
"""

from __future__ import annotations


class QAServiceError(Exception):
    """Base of every error this service raises on purpose."""

    code = "internal_error"

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message}
        if self.context:
            out["context"] = {k: str(v) for k, v in self.context.items()}
        return out


class InputError(QAServiceError):
    """The user gave something that cannot be used as it is."""

    code = "invalid_input"


class FileNotFound(InputError):
    code = "file_not_found"


class EmptyFile(InputError):
    code = "empty_file"


class UnsupportedFormat(InputError):
    code = "unsupported_format"


class ImplausibleAudio(UnsupportedFormat):
    """A header claims what no call recording has (thousands of channels, days of audio)."""

    code = "implausible_audio"


class AudioDecodeError(InputError):
    code = "audio_decode_error"


class AudioTooShort(InputError):
    code = "audio_too_short"


class MetadataError(InputError):
    code = "invalid_metadata"


class DialLogError(InputError):
    code = "invalid_dial_log"


class DoNotCallListError(InputError):
    code = "invalid_do_not_call_list"


class LexiconError(QAServiceError):
    """A rule lexicon file is unreadable or breaks the lexicon schema (names file and entry)."""

    code = "invalid_lexicon"


class ModelError(QAServiceError):
    """A model is missing, incomplete or fails verification."""

    code = "model_error"


class StorageError(QAServiceError):
    code = "storage_error"


class ScratchSpaceError(StorageError):
    """The temporary directory that holds decoded audio during analysis is full or unusable.

    Not the recording's fault: the analysis can succeed later, or on another machine.
    """

    code = "scratch_space_error"


class CallNotFound(QAServiceError):
    code = "call_not_found"


class FindingNotFound(CallNotFound):
    """No finding with this id, or on a call the caller may not see (404 either way)."""

    code = "finding_not_found"


class AppealNotFound(CallNotFound):
    """No appeal with this id, or on a call the caller may not see (404 either way)."""

    code = "appeal_not_found"


class AlertNotFound(QAServiceError):
    """No such alert, or not one the caller receives (404 either way, like a call)."""

    code = "alert_not_found"


class RubricError(InputError):
    """A QA rubric file cannot be used; nothing is scored with it."""

    code = "invalid_rubric"


class RecordingTooLarge(InputError):
    """An upload passed the size limit while it streamed in; nothing of it was kept."""

    code = "recording_too_large"


class SettingsError(QAServiceError):
    """A setting is missing or malformed; the service refuses to start (names the setting)."""

    code = "invalid_setting"


class QueueUnavailable(QAServiceError):
    """The job queue (Redis) cannot be reached."""

    code = "queue_unavailable"


# --- accounts and access (mapped to HTTP statuses in qa_service.api) -----------------------


class AuthenticationFailed(QAServiceError):
    """Wrong user name or password, or an unknown, expired or revoked session or token."""

    code = "authentication_failed"


class AccountLocked(QAServiceError):
    """Too many failed logins: the account is locked for a while."""

    code = "account_locked"


class TooManyRequests(QAServiceError):
    """Too many failed logins from one client: refused for a while (context: retry_after_s)."""

    code = "too_many_requests"


class AccountDisabled(AuthenticationFailed):
    code = "account_disabled"


class PasswordExpired(QAServiceError):
    """The password is past its maximum age: it must be changed before anything else."""

    code = "password_expired"


class PasswordPolicyError(InputError):
    """A new password breaks the policy; the message says which clause, in Chinese."""

    code = "password_policy"


class PermissionDenied(QAServiceError):
    """The caller's role may not do this (calls outside the caller's scope are CallNotFound)."""

    code = "permission_denied"


class Conflict(QAServiceError):
    """The request conflicts with the current state (e.g. a duplicate user name)."""

    code = "conflict"


class RangeNotSatisfiable(InputError):
    """An HTTP Range that does not fit the recording (context: its size in bytes)."""

    code = "range_not_satisfiable"


class CsrfRejected(PermissionDenied):
    """A state-changing browser request without its session's CSRF token."""

    code = "csrf_failed"


class UserNotFound(QAServiceError):
    """No account has this id or user name."""

    code = "user_not_found"


class RosterError(InputError):
    """An agent roster file cannot be read at all (bad rows are reported, not raised)."""

    code = "invalid_roster"


class ComplaintNotFound(CallNotFound):
    """No complaint with this id, or one outside the caller's scope (404 either way)."""

    code = "complaint_not_found"


class ComplaintListError(InputError):
    """The bank's complaint list cannot be read (bad rows are reported, not raised)."""

    code = "invalid_complaint_list"
