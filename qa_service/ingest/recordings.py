"""Ingest stage: find recordings, read their sidecar metadata, decode and fingerprint them.

This is the first pipeline stage: everything after it works on an :class:`IngestedCall` and
never touches the file system. Every way a user's input can be unusable (missing, empty, not
audio, too short, a malformed sidecar) ends here as a :class:`QAServiceError` the caller turns
into an error object, so one bad recording never stops a batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qa_service.domain import CallMetadata, IngestedCall, Speaker
from qa_service.errors import AudioTooShort, MetadataError
from qa_service.ingest.audio import check_audio_file, decode_audio
from qa_service.ingest.dial_log import DEFAULT_OFFSET, normalize_phone_number

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".amr", ".aac", ".m4a", ".ogg", ".opus"})

_DEFAULT_CHANNEL_MAP = {0: Speaker.AGENT, 1: Speaker.CUSTOMER}
_HAS_TIME = re.compile(r"\d[Tt ]\d{1,2}:\d{2}")


def discover_recordings(paths: Sequence[Path]) -> list[Path]:
    """Expand directories into their audio files; keep every other path as given.

    A directory yields its audio files by extension, sorted by name, not recursing; hidden
    files are skipped because macOS leaves ``._name.wav`` resource forks beside copied audio.
    A file path is kept even with a non-audio extension or when it does not exist, so that the
    caller reports it as an error instead of it vanishing. A path met twice is kept once.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(
                sorted(
                    (
                        child
                        for child in path.iterdir()
                        if child.suffix.lower() in AUDIO_EXTENSIONS
                        and not child.name.startswith(".")
                        and child.is_file()
                    ),
                    key=lambda p: p.name,
                )
            )
        else:
            found.append(path)
    seen: set[Path] = set()
    unique = []
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def sha256_file(path: Path) -> tuple[str, int]:
    """SHA-256 hex digest and size in bytes, read in chunks (recordings can be large)."""
    with Path(path).open("rb") as f:
        digest = hashlib.file_digest(f, "sha256")
        return digest.hexdigest(), f.tell()


def sidecar_path(recording: Path) -> Path:
    """Where the call centre's metadata for ``recording`` lives: ``<stem>.json`` beside it."""
    return recording.with_suffix(".json")


def load_metadata(recording: Path, *, assume_offset: tzinfo = DEFAULT_OFFSET) -> CallMetadata:
    """Read and validate the sidecar of ``recording``; without one, the file stem is the id.

    ``recording`` in the result is always the actual file name (a sidecar copied beside a
    transcoded file still names the original). A ``started_at`` without an offset is taken
    as ``assume_offset`` (the call centre's local time). Raises :class:`MetadataError`
    naming the sidecar and the field.
    """
    recording = Path(recording)
    sidecar = sidecar_path(recording)
    if not sidecar.is_file():
        return CallMetadata(call_id=recording.stem, recording=recording.name)
    return parse_metadata_bytes(
        sidecar.read_bytes(),
        source=str(sidecar),
        recording=recording.name,
        assume_offset=assume_offset,
    )


def parse_metadata_bytes(
    data: bytes, *, source: str, recording: str, assume_offset: tzinfo = DEFAULT_OFFSET
) -> CallMetadata:
    """Validate sidecar JSON bytes (a file's, or an upload's ``metadata`` field).

    The same rules as :func:`load_metadata`; ``source`` names the input in error messages.
    """
    return parse_metadata(
        _decode_json(data, source), source=source, recording=recording, assume_offset=assume_offset
    )


def parse_metadata(
    raw: object, *, source: str, recording: str, assume_offset: tzinfo = DEFAULT_OFFSET
) -> CallMetadata:
    """Validate decoded sidecar JSON into :class:`CallMetadata`, or raise MetadataError.

    ``recording`` is the file name the metadata belongs to; ``source`` names the input
    (sidecar path, upload field) in error messages.
    """
    if not isinstance(raw, dict):
        raise MetadataError(
            f"{source}：元数据文件应为 JSON 对象（{{...}}） / "
            f"{source}: the sidecar must hold a JSON object ({{...}})",
            sidecar=source,
        )
    try:
        parsed = _Sidecar.model_validate(raw)
    except ValidationError as exc:
        raise _metadata_error(source, exc) from exc
    started_at = parsed.started_at
    if started_at is not None and started_at.tzinfo is None:
        started_at = started_at.replace(tzinfo=assume_offset)
    if started_at is not None:
        try:  # the store and the hour rules convert it; 9999-12-31T23:59-05:00 cannot be
            started_at.astimezone(UTC)
        except OverflowError as exc:
            raise MetadataError(
                f"{source}：字段 started_at 的值 {started_at.isoformat()} 超出可用的时间范围 / "
                f"{source}: field 'started_at' {started_at.isoformat()} is out of range",
                sidecar=source,
                field="started_at",
            ) from exc
    return CallMetadata(
        call_id=parsed.call_id,
        recording=recording,
        agent_id=parsed.agent_id,
        customer_id=parsed.customer_id,
        dialed_number=parsed.dialed_number,
        contact_role=parsed.contact_role,
        direction=parsed.direction,
        started_at=started_at,
        duration_s=parsed.duration_s,
        channels=parsed.channels,
        channel_map=(
            {int(k): Speaker(v) for k, v in parsed.channel_map.items()}
            if parsed.channel_map is not None
            else None
        ),
        has_sidecar=True,
        team_id=parsed.team_id,
        agency_id=parsed.agency_id,
    )


def ingest_recording(
    path: Path,
    *,
    min_duration_s: float = 1.0,
    sample_rate: int = 16000,
    assume_offset: tzinfo = DEFAULT_OFFSET,
    max_duration_s: float | None = None,
) -> IngestedCall:
    """Turn one recording path into an :class:`IngestedCall`, or raise why it cannot be used.

    The metadata is read before the audio so that a malformed sidecar is reported even when
    the audio is fine. Where the sidecar's ``channels`` disagrees with the file, the file
    wins (the exporter's field is often a default); a stereo file without a channel map is
    taken as channel 0 agent, channel 1 customer, as in the corpus and its README.
    The call's audio is held in temporary files: close ``call.audio`` when done with it.
    """
    path = Path(path)
    check_audio_file(path)
    metadata = load_metadata(path, assume_offset=assume_offset)
    audio = decode_audio(path, sample_rate=sample_rate, max_duration_s=max_duration_s)
    try:
        if audio.duration_s < min_duration_s:
            raise AudioTooShort(
                f"{path}：录音只有 {audio.duration_s:.2f} 秒，短于最短要求 {min_duration_s:g} 秒 / "
                f"{path}: the recording lasts {audio.duration_s:.2f} s, shorter than the "
                f"{min_duration_s:g} s minimum",
                path=path,
                duration_s=round(audio.duration_s, 2),
                min_duration_s=min_duration_s,
            )
        digest, size = sha256_file(path)
    except BaseException:
        audio.close()
        raise
    return IngestedCall(
        path=path,
        sha256=digest,
        size_bytes=size,
        metadata=_reconcile_channels(metadata, audio.n_channels, path),
        audio=audio,
    )


def _reconcile_channels(metadata: CallMetadata, n_channels: int, path: Path) -> CallMetadata:
    layout = "stereo" if n_channels >= 2 else "mono"
    if metadata.channels is not None and metadata.channels != layout:
        logger.warning(
            "%s: sidecar declares %s but the file has %d channel(s); using the file",
            path,
            metadata.channels,
            n_channels,
        )
    # Mono has no channel to attribute; a stereo file without a map follows the convention.
    channel_map = None if layout == "mono" else metadata.channel_map or dict(_DEFAULT_CHANNEL_MAP)
    return dataclasses.replace(metadata, channels=layout, channel_map=channel_map)


def _decode_json(data: bytes, sidecar: str) -> object:
    try:
        # utf-8-sig: Windows exporters often start the file with a byte-order mark.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MetadataError(
            f"{sidecar}：元数据文件不是 UTF-8 编码（第 {exc.start} 字节） / "
            f"{sidecar}: the sidecar is not UTF-8 (byte {exc.start})",
            sidecar=sidecar,
        ) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MetadataError(
            f"{sidecar}：元数据 JSON 语法错误，第 {exc.lineno} 行第 {exc.colno} 列：{exc.msg} / "
            f"{sidecar}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            sidecar=sidecar,
            line=exc.lineno,
            column=exc.colno,
        ) from exc
    except (ValueError, RecursionError) as exc:
        # Valid JSON Python will not read: an integer past 4300 digits, or nesting deeper
        # than the decoder's recursion limit (hostile uploads).
        raise MetadataError(
            f"{sidecar}：元数据 JSON 无法读取（数字过长或嵌套过深） / "
            f"{sidecar}: unreadable JSON (a number too long or nesting too deep): {exc}",
            sidecar=sidecar,
        ) from exc


# Chinese hints for the pydantic error types a sidecar can meet; the English side keeps
# pydantic's own wording.
_ZH_HINTS = {
    "literal_error": "应为 {expected}",
    "greater_than_equal": "不能小于 {ge}",
    "string_too_short": "不能为空",
    "string_type": "应为字符串",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "finite_number": "应为有限的数字",
    "datetime_from_date_parsing": "应为 ISO 8601 时间，如 2026-11-06T14:32:18+08:00",
    "datetime_parsing": "应为 ISO 8601 时间，如 2026-11-06T14:32:18+08:00",
    "datetime_type": "应为 ISO 8601 时间，如 2026-11-06T14:32:18+08:00",
    "dict_type": '应为对象，如 {{"0": "agent", "1": "customer"}}',
}


def _metadata_error(sidecar: str, exc: ValidationError) -> MetadataError:
    problems = exc.errors()
    first = problems[0]
    field = ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        zh, en = f"缺少必填字段 {field}", f"required field '{field}' is missing"
    else:
        shown = json.dumps(first.get("input"), ensure_ascii=False, default=str)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        context = {k: str(v).replace("' or '", "' 或 '") for k, v in first.get("ctx", {}).items()}
        hint = _ZH_HINTS.get(first["type"], "").format(**context)
        reason = first["msg"]
        if first["type"] == "value_error":  # our validators write "中文 / English"
            hint, _, reason = str(first.get("ctx", {}).get("error", "")).partition(" / ")
        zh = f"字段 {field} 的值 {shown} 无效" + (f"（{hint}）" if hint else "")
        en = f"field '{field}' has an invalid value {shown}: {reason}"
    if len(problems) > 1:
        zh += f"（另有 {len(problems) - 1} 处错误）"
        en += f" (and {len(problems) - 1} more)"
    return MetadataError(f"{sidecar}：{zh} / {sidecar}: {en}", sidecar=sidecar, field=field)


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


class _Sidecar(BaseModel):
    """The sidecar as exported (see corpus README); extra keys are the exporter's business."""

    # Exporters write numeric ids as JSON numbers; a number is as good an id as a string.
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    call_id: str = Field(min_length=1)
    agent_id: str | None = None
    customer_id: str | None = None
    dialed_number: str | None = None
    contact_role: Literal["debtor", "third_party"] | None = None
    direction: Literal["outbound", "inbound"] | None = None
    started_at: datetime | None = None
    duration_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    channels: Literal["stereo", "mono"] | None = None
    channel_map: dict[str, Literal["agent", "customer"]] | None = None
    # Optional organisation keys some exporters add; scorecards group by them.
    team_id: str | None = None
    agency_id: str | None = None

    @field_validator("call_id", mode="before")
    @classmethod
    def _strip_id(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @field_validator("team_id", "agency_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        # Exporters write "" for "not in a team"; that must group as 未分组, not as "".
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("dialed_number")
    @classmethod
    def _normalise_number(cls, value: str | None) -> str | None:
        # Same form as the dial log and the do-not-call list, so that the M rules can match
        # "+86 138-0013-8000" in a sidecar against 13800138000 in the list.
        if value is None or not value.strip():
            return None
        return normalize_phone_number(value)

    @field_validator("started_at", mode="before")
    @classmethod
    def _require_time_of_day(cls, value: object) -> object:
        # pydantic would read a bare date as midnight, or a number as a Unix time; either
        # would put the call at the wrong hour and trigger (or hide) the forbidden-hours rule.
        if value is not None and not (isinstance(value, str) and _HAS_TIME.search(value)):
            raise ValueError(
                "应为带时刻的 ISO 8601 时间，如 2026-11-06T14:32:18+08:00 / "
                "expected an ISO 8601 date and time such as 2026-11-06T14:32:18+08:00"
            )
        return value

    @field_validator("contact_role", "direction", "channels", mode="before")
    @classmethod
    def _case_insensitive(cls, value: object) -> object:
        return _lower(value)

    @field_validator("channel_map", mode="before")
    @classmethod
    def _normalise_map(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k).strip(): _lower(v) for k, v in value.items()}
        return value

    @field_validator("channel_map")
    @classmethod
    def _check_map(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        for key in value:
            # A channel number, not any digit string: int() refuses more than 4300 digits.
            if not (key.isascii() and key.isdigit() and len(key) <= 3):
                raise ValueError(
                    f"声道编号 {key!r} 应为数字，如 '0' / "
                    f"channel key {key!r} is not a channel number such as '0'"
                )
        speakers = list(value.values())
        for speaker in set(speakers):
            if speakers.count(speaker) > 1:
                # Two channels both "agent" would put the customer's words in the agent's
                # mouth and flag them against the agent.
                raise ValueError(
                    f"不止一个声道标为 {speaker!r} / more than one channel is mapped to {speaker!r}"
                )
        return value
