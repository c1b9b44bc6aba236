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


class CallNotFound(QAServiceError):
    code = "call_not_found"


class RubricError(InputError):
    """A QA rubric file cannot be used; nothing is scored with it."""

    code = "invalid_rubric"
