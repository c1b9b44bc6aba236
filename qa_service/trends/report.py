"""The trend report for a caller: pick the periods, load their records, compute the tables."""

from __future__ import annotations

from datetime import date, tzinfo

from sqlalchemy.orm import Session

from qa_service.accounts.roles import Principal
from qa_service.trends.figures import Dimension, TrendReport, build_trends
from qa_service.trends.periods import Granularity, bounds, labels_between
from qa_service.trends.records import load_trend_data


def trend_report(
    session: Session,
    *,
    principal: Principal,
    start: date,
    end: date,
    granularity: Granularity,
    dimension: Dimension,
    tz: tzinfo,
) -> TrendReport:
    """Every trend table for the periods touching ``start``..``end``, in the caller's scope.

    The period before the first is loaded too: it is the first period's baseline.
    """
    periods = labels_between(start, end, granularity)
    since, until = bounds(periods, granularity, tz)
    data = load_trend_data(session, principal=principal, start=since, end=until)
    return build_trends(data, periods=periods, granularity=granularity, dimension=dimension, tz=tz)
