"""The agent roster (GBK and UTF-8-BOM exports, bad rows) and who sees which calls."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qa_service.accounts.roles import Principal, Role
from qa_service.accounts.roster import (
    RosterEntry,
    import_roster,
    list_roster,
    organisation_for_agent,
)
from qa_service.accounts.scope import can_see_call, visible_calls
from qa_service.db.tables import CallReviewRow, CallRow
from qa_service.errors import RosterError

ROSTER = (
    "工号,姓名,团队,外包机构\n"
    "A07,张三,一组,华信外包\n"
    "A08,李四,二组,华信外包\n"
    ",王五,一组,华信外包\n"  # line 4: no agent id
    "A09,赵六,,华信外包\n"  # line 5: no team
    "A07,张三,三组,华信外包\n"  # line 6: A07 again
    "A10,钱七,二组,华信外包,多余\n"  # line 7: a value too many
)


def _call(n: int, agent_id: str | None, team_id: str | None = None) -> CallRow:
    return CallRow(
        call_id=f"C-{n:03d}",
        sha256=f"{n:064x}",
        recording=f"C-{n:03d}.wav",
        agent_id=agent_id,
        team_id=team_id,
        status="analyzed",
    )


def _seed_calls(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add_all(
            [
                _call(1, "A07"),
                _call(2, "A07", team_id="旧组"),
                _call(3, "A08"),
                _call(4, "A99", team_id="一组"),  # not on the roster: the sidecar's team
                _call(5, None),
            ]
        )
        session.flush()
        # Inspectors see the calls in review: all but C-005, which passed, and C-004, which
        # was not classified but was uploaded by the inspector "u".
        for n, state in ((1, "flagged"), (2, "in_review"), (3, "ruled"), (5, "passed")):
            pk = session.scalars(select(CallRow.id).where(CallRow.call_id == f"C-{n:03d}")).one()
            session.add(CallReviewRow(call_id=pk, state=state, risk_tier=3, weak_evidence=""))
        session.scalars(select(CallRow).where(CallRow.call_id == "C-004")).one().uploaded_by = "u"


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig"])
def test_roster_import_keeps_good_rows_and_reports_bad_ones(
    sessions: sessionmaker[Session], tmp_path: Path, encoding: str
) -> None:
    _seed_calls(sessions)
    path = tmp_path / "roster.csv"
    path.write_bytes(ROSTER.encode(encoding))
    with sessions.begin() as session:
        result = import_roster(session, csv_path=path)
    assert (result.created, result.updated, result.imported) == (2, 0, 2)
    assert [r.line for r in result.rejected] == [4, 5, 6, 7]
    reasons = [r.reason for r in result.rejected]
    assert "工号为空" in reasons[0] and "团队为空" in reasons[1]
    assert "第 2 行" in reasons[2] and "表头只有 4 列" in reasons[3]
    # Existing calls of the listed agents now sit under their team and agency.
    assert result.calls_updated == 3
    with sessions() as session:
        calls = {c.call_id: (c.team_id, c.agency_id) for c in session.scalars(select(CallRow))}
        assert organisation_for_agent(session, "A07") == RosterEntry(
            "A07", "张三", "一组", "华信外包"
        )
        assert organisation_for_agent(session, "A99") is None
        assert [e.agent_id for e in list_roster(session)] == ["A07", "A08"]
    assert calls == {
        "C-001": ("一组", "华信外包"),
        "C-002": ("一组", "华信外包"),
        "C-003": ("二组", "华信外包"),
        "C-004": ("一组", None),
        "C-005": (None, None),
    }


def test_reimporting_moves_an_agent_and_counts_unchanged_rows(
    sessions: sessionmaker[Session],
) -> None:
    _seed_calls(sessions)
    rows = [{"agent_id": "A07", "name": "张三", "team": "一组"}, {"工号": "A08", "组别": "二组"}]
    with sessions.begin() as session:
        import_roster(session, rows=rows)
    rows[0]["team"] = "三组"
    with sessions.begin() as session:
        again = import_roster(session, rows=rows)
    assert (again.created, again.updated, again.unchanged, again.calls_updated) == (0, 1, 1, 2)
    with sessions() as session:
        teams = session.scalars(select(CallRow.team_id).where(CallRow.agent_id == "A07")).all()
    assert set(teams) == {"三组"}


def test_roster_without_a_team_column_is_refused(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "roster.csv"
    path.write_text("工号,姓名\nA07,张三\n", encoding="utf-8")
    with sessions.begin() as session, pytest.raises(RosterError, match="团队"):
        import_roster(session, csv_path=path)


# --- scope -----------------------------------------------------------------------------


def _principal(
    role: Role, *, agent_id: str | None = None, teams: tuple[str, ...] = ()
) -> Principal:
    return Principal(
        user_id=1,
        username="u",
        display_name="u",
        role=role,
        agent_id=agent_id,
        team_ids=frozenset(teams),
    )


CASES = [
    (_principal(Role.AGENT, agent_id="A07"), {"C-001", "C-002"}),
    (_principal(Role.AGENT, agent_id="A08"), {"C-003"}),
    (_principal(Role.AGENT), set()),  # an agent account without its id sees nothing
    (_principal(Role.SUPERVISOR, teams=("二组",)), {"C-003"}),
    (_principal(Role.SUPERVISOR, teams=("旧组", "二组")), {"C-002", "C-003"}),
    (_principal(Role.SUPERVISOR), set()),
    (_principal(Role.INSPECTOR), {"C-001", "C-002", "C-003", "C-004"}),
    (_principal(Role.MANAGER), {"C-001", "C-002", "C-003", "C-004", "C-005"}),
    (_principal(Role.ADMIN), set()),
]


@pytest.mark.parametrize(("principal", "expected"), CASES, ids=lambda c: getattr(c, "role", ""))
def test_each_role_sees_its_calls_in_sql_and_in_python(
    sessions: sessionmaker[Session], principal: Principal, expected: set[str]
) -> None:
    _seed_calls(sessions)
    with sessions.begin() as session:  # the roster puts A08's calls under 二组
        import_roster(session, rows=[{"agent_id": "A08", "team": "二组"}])
    with sessions() as session:
        queried = set(session.scalars(select(CallRow.call_id).where(visible_calls(principal))))
        checked = {
            c.call_id for c in session.scalars(select(CallRow)) if can_see_call(principal, c)
        }
    assert queried == expected
    assert checked == expected
