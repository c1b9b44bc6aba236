"""The agent roster: which team and agency each agent works for.

Supervisors see their teams' calls and reports are cut by agency, but a recording's sidecar
often names only the agent. The roster (a CSV export from the agency's HR or dialler:
agent id, name, team, agency) fills that in: importing it updates the agents table *and*
puts existing calls of those agents under their team and agency; the analysis save path
asks :func:`organisation_for_agent` for new calls. The roster is the authority on the
current organisation, so a re-import moves an agent's calls with it.

Files come as Excel writes them (UTF-8 with or without BOM, GBK/GB18030, Chinese headers).
A bad row is reported with its line and reason and skipped; the good rows are kept.
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import charset_normalizer
from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from qa_service.db.rows import storage_errors
from qa_service.db.tables import AgentRow, CallRow, utcnow
from qa_service.errors import FileNotFound, RosterError

# Header cells after _normalise_header (NFKC, lower case, no spaces).
_COLUMNS: dict[str, tuple[str, ...]] = {
    "agent_id": (
        "agent_id", "agentid", "agent", "工号", "坐席工号", "坐席id", "坐席编号", "员工编号",
    ),
    "name": ("name", "agent_name", "姓名", "坐席姓名", "名字", "员工姓名"),
    "team_id": ("team", "team_id", "teamid", "团队", "组别", "小组", "班组", "团队编号"),
    "agency_id": (
        "agency", "agency_id", "agencyid", "机构", "外包机构", "外包公司", "公司", "机构编号",
    ),
}  # fmt: skip
_REQUIRED = ("agent_id", "team_id")
_MAX_LENGTH = {"agent_id": 64, "name": 128, "team_id": 64, "agency_id": 64}
_LABELS_ZH = {"agent_id": "工号", "name": "姓名", "team_id": "团队", "agency_id": "机构"}


@dataclass(frozen=True)
class RosterEntry:
    """One agent and the organisation its calls belong to."""

    agent_id: str
    name: str | None
    team_id: str | None
    agency_id: str | None


@dataclass(frozen=True)
class RejectedRow:
    """A roster row that was not imported: its line in the file and why (Chinese / English)."""

    line: int
    reason: str


@dataclass(frozen=True)
class ImportResult:
    """What a roster import did; ``rejected`` rows were skipped, all others were applied."""

    created: int
    updated: int
    unchanged: int
    calls_updated: int
    rejected: tuple[RejectedRow, ...]

    @property
    def imported(self) -> int:
        return self.created + self.updated + self.unchanged


def import_roster(
    session: Session,
    *,
    csv_path: Path | str | None = None,
    data: bytes | None = None,
    rows: Iterable[Mapping[str, str | None]] | None = None,
    source: str | None = None,
) -> ImportResult:
    """Import a roster from a CSV file, CSV bytes (an upload) or dict rows; flushes.

    ``rows`` are mappings keyed by any accepted header (``agent_id``/工号, ``name``/姓名,
    ``team``/团队, ``agency``/机构); their "line" in messages counts from 2, as if under a
    header line. Raises :class:`RosterError` only when the file as a whole is unusable
    (empty, unknown encoding, no agent-id or team column).
    """
    given = sum(x is not None for x in (csv_path, data, rows))
    if given != 1:
        raise ValueError("give exactly one of csv_path, data, rows")
    if csv_path is not None:
        path = Path(csv_path)
        if not path.is_file():
            raise FileNotFound(f"{path}：文件不存在 / {path}: file not found", path=path)
        entries, rejected = parse_roster(path.read_bytes(), source=source or str(path))
    elif data is not None:
        entries, rejected = parse_roster(data, source=source or "upload")
    else:
        assert rows is not None
        entries, rejected = _entries_from_mappings(rows, source or "rows")
    created, updated, unchanged, calls = _apply(session, entries)
    return ImportResult(
        created=created,
        updated=updated,
        unchanged=unchanged,
        calls_updated=calls,
        rejected=tuple(rejected),
    )


def parse_roster(data: bytes, *, source: str) -> tuple[list[RosterEntry], list[RejectedRow]]:
    """The good entries and the rejected rows of roster CSV bytes (``source`` names it)."""
    if not data.strip():
        raise RosterError(f"{source}：名单文件是空的 / {source}: the roster is empty", path=source)
    text = _decode(data)
    if text is None:
        raise RosterError(
            f"{source}：无法识别名单的文字编码（支持 UTF-8、GBK/GB18030、UTF-16） / "
            f"{source}: cannot tell the roster's text encoding (UTF-8, GBK/GB18030, UTF-16)",
            path=source,
        )
    first = text.lstrip().partition("\n")[0]
    counts = {d: first.count(d) for d in (",", "\t", ";")}
    delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    reader = _Reader(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), source)
    header: list[str] = []
    for cells in reader:
        if any(cell.strip() for cell in cells):
            header = cells
            break
    columns = _map_columns(header, source)
    records: list[tuple[int, dict[str, str]]] = []
    rejected: list[RejectedRow] = []
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue  # Excel leaves ",,," lines
        if any(cell.strip() for cell in cells[len(header) :]):
            rejected.append(
                RejectedRow(
                    line,
                    f"有 {len(cells)} 个值，但表头只有 {len(header)} 列 / "
                    f"{len(cells)} values but {len(header)} columns",
                )
            )
            continue
        values = {
            name: cells[index].strip() if index < len(cells) else ""
            for name, index in columns.items()
        }
        records.append((line, values))
    entries = _validate(records, rejected)
    return entries, sorted(rejected, key=lambda r: r.line)


class _Reader:
    """A csv reader whose csv.Error (an unclosed quote running past the 128 KiB field
    limit) is a RosterError naming the line."""

    def __init__(self, reader: Iterator[list[str]], source: str) -> None:
        self._reader, self._source = reader, source

    @property
    def line_num(self) -> int:
        return int(getattr(self._reader, "line_num", 0))

    def __iter__(self) -> _Reader:
        return self

    def __next__(self) -> list[str]:
        try:
            return next(self._reader)
        except csv.Error as exc:
            line = self.line_num + 1
            raise RosterError(
                f"{self._source}：第 {line} 行无法按 CSV 读取（常见原因：引号未闭合）：{exc} / "
                f"{self._source}: line {line} cannot be read as CSV (often an unclosed quote): "
                f"{exc}",
                path=self._source,
                line=line,
            ) from exc


def _entries_from_mappings(
    rows: Iterable[Mapping[str, str | None]], source: str
) -> tuple[list[RosterEntry], list[RejectedRow]]:
    lookup = {alias: name for name, aliases in _COLUMNS.items() for alias in aliases}
    records = []
    for line, row in enumerate(rows, start=2):
        values: dict[str, str] = {}
        for key, value in row.items():
            name = lookup.get(_normalise_header(key))
            if name is not None:
                values[name] = (value or "").strip()
        records.append((line, values))
    rejected: list[RejectedRow] = []
    return _validate(records, rejected), rejected


def _validate(
    records: list[tuple[int, dict[str, str]]], rejected: list[RejectedRow]
) -> list[RosterEntry]:
    entries: list[RosterEntry] = []
    seen: dict[str, int] = {}
    for line, values in records:
        problem = _row_problem(values)
        agent = values.get("agent_id", "")
        if problem is None and agent in seen:
            first = seen[agent]
            problem = f"工号 {agent} 与第 {first} 行重复 / agent id repeats line {first}"
        if problem is not None:
            rejected.append(RejectedRow(line, problem))
            continue
        seen[agent] = line
        entries.append(
            RosterEntry(
                agent_id=agent,
                name=values.get("name") or None,
                team_id=values.get("team_id") or None,
                agency_id=values.get("agency_id") or None,
            )
        )
    return entries


def _row_problem(values: dict[str, str]) -> str | None:
    for name in _REQUIRED:
        if not values.get(name):
            return f"{_LABELS_ZH[name]}为空 / {name} is empty"
    for name, limit in _MAX_LENGTH.items():
        if len(values.get(name, "")) > limit:
            return (
                f"{_LABELS_ZH[name]}超过 {limit} 个字符 / {name} is longer than {limit} characters"
            )
    return None


def _map_columns(header: list[str], source: str) -> dict[str, int]:
    lookup = {alias: name for name, aliases in _COLUMNS.items() for alias in aliases}
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        name = lookup.get(_normalise_header(cell))
        if name is not None and name not in columns:
            columns[name] = index
    missing = [name for name in _REQUIRED if name not in columns]
    if missing:
        zh = "、".join(_LABELS_ZH[name] for name in missing)
        found = ", ".join(cell.strip() for cell in header)
        raise RosterError(
            f"{source}：名单缺少 {zh} 列（如 工号/坐席工号、团队/组别）；文件中的列为 {found} / "
            f"{source}: the roster lacks the {', '.join(missing)} column(s); found {found}",
            path=source,
        )
    return columns


def _normalise_header(name: str) -> str:
    key = unicodedata.normalize("NFKC", name).replace("\ufeff", "").lower()
    return "".join(key.split())


def _decode(data: bytes) -> str | None:
    """As :mod:`qa_service.ingest.dial_log` reads exports: UTF-16 by BOM, UTF-8 (BOM or
    not), GB18030 (a superset of GBK), else charset-normalizer's guess."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:  # GB18030 accepts BOM-less UTF-16's NUL bytes
            return text
    match = charset_normalizer.from_bytes(data).best()
    return None if match is None else str(match)


def _apply(session: Session, entries: list[RosterEntry]) -> tuple[int, int, int, int]:
    created = updated = unchanged = calls = 0
    now = utcnow()
    with storage_errors("import_roster"):
        existing = {
            row.agent_id: row
            for chunk in _chunks([e.agent_id for e in entries], 500)
            for row in session.scalars(select(AgentRow).where(AgentRow.agent_id.in_(chunk)))
        }
        for entry in entries:
            row = existing.get(entry.agent_id)
            if row is None:
                session.add(
                    AgentRow(
                        agent_id=entry.agent_id,
                        name=entry.name,
                        team_id=entry.team_id,
                        agency_id=entry.agency_id,
                        created_at=now,
                        updated_at=now,
                    )
                )
                created += 1
            elif (row.name, row.team_id, row.agency_id) != (
                entry.name,
                entry.team_id,
                entry.agency_id,
            ):
                row.name, row.team_id, row.agency_id = entry.name, entry.team_id, entry.agency_id
                updated += 1
            else:
                unchanged += 1
            calls += _move_calls(session, entry)
        session.flush()
    return created, updated, unchanged, calls


def _move_calls(session: Session, entry: RosterEntry) -> int:
    """Put the agent's stored calls under its team (and agency, when the roster names one)."""
    values: dict[str, str | None] = {"team_id": entry.team_id}
    differs = [CallRow.team_id.is_distinct_from(entry.team_id)]
    if entry.agency_id is not None:
        values["agency_id"] = entry.agency_id
        differs.append(CallRow.agency_id.is_distinct_from(entry.agency_id))
    result = session.execute(
        update(CallRow)
        .where(CallRow.agent_id == entry.agent_id, or_(*differs))
        .values(**values)
        .execution_options(synchronize_session="fetch")
    )
    return int(cast("CursorResult[Any]", result).rowcount)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def organisation_for_agent(session: Session, agent_id: str | None) -> RosterEntry | None:
    """The roster entry of an agent (team, agency), or None if the roster does not list it.

    For the analysis save path: when it returns an entry, its team and agency go on the
    new call; otherwise the sidecar's values stand.
    """
    if not agent_id:
        return None
    with storage_errors("organisation_for_agent", agent_id=agent_id):
        row = session.scalars(select(AgentRow).where(AgentRow.agent_id == agent_id)).first()
    if row is None:
        return None
    return RosterEntry(
        agent_id=row.agent_id, name=row.name, team_id=row.team_id, agency_id=row.agency_id
    )


def list_roster(session: Session) -> list[RosterEntry]:
    """Every agent on the roster, by agent id."""
    with storage_errors("list_roster"):
        rows = session.scalars(select(AgentRow).order_by(AgentRow.agent_id)).all()
    return [
        RosterEntry(agent_id=r.agent_id, name=r.name, team_id=r.team_id, agency_id=r.agency_id)
        for r in rows
    ]
