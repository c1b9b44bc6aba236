"""The agency evaluation report over HTTP (what ``qa-service report agency`` prints): each
collection agency month by month — compliance, violation mix, fatal calls, complaint
signals and complaints, dialling discipline from the dial log.

Managers only: the report spans every team and agency, and a supervisor's scope is teams.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from qa_service.accounts.roles import Permission, Principal, Role
from qa_service.api.deps import State, require
from qa_service.db.tables import utcnow
from qa_service.errors import PermissionDenied
from qa_service.reports.scorecards import Period

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

Viewer = Annotated[Principal, Depends(require(Permission.VIEW_AGGREGATES))]
FromQ = Annotated[date | None, Query(alias="from", description="开始日期（含），默认约 6 个月前")]
ToQ = Annotated[date | None, Query(alias="to", description="结束日期（含），默认今天")]


@router.get("/agency")
def get_agency_report(
    state: State,
    principal: Viewer,
    agency: Annotated[str | None, Query(max_length=64, description="只看该机构")] = None,
    date_from: FromQ = None,
    date_to: ToQ = None,
) -> dict[str, Any]:
    """The agency evaluation report, by agency and month, as JSON (definitions included)."""
    from qa_service.db.repository import do_not_call_entries
    from qa_service.db.scores import agent_organisations, dial_attempts_between, scored_calls
    from qa_service.reports.agency import build_agency_report
    from qa_service.rules.metadata import MetadataParams
    from qa_service.trends.records import load_complaints

    if principal.role is not Role.MANAGER:
        raise PermissionDenied(
            "外包机构考核报表仅管理层可查看 / the agency report is for managers only",
            role=principal.role.value,
        )
    settings = state.settings
    end = date_to or utcnow().astimezone(settings.local_tz).date()
    period = Period(date_from or end - timedelta(days=182), end)
    start_at, end_at = period.bounds(settings.local_tz)
    with state.sessions() as session:
        calls = scored_calls(session, start=start_at, end=end_at)
        attempts = dial_attempts_between(session, start=start_at, end=end_at)
        organisations = agent_organisations(session)
        do_not_call = do_not_call_entries(session)
        complaints = load_complaints(session, principal=principal, start=start_at, end=end_at)
    report = build_agency_report(
        calls,
        attempts,
        do_not_call,
        period=period,
        params=MetadataParams.from_settings(settings),
        organisations=organisations,
        agency=agency,
        complaints=complaints,
    )
    return report.as_dict()
