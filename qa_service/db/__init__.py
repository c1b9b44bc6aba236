"""Persistence layer: ORM tables, engines and migrations, and the repository functions.

A thin layer around the pipeline (STYLE.md): stages hand it domain dataclasses and never
import SQLAlchemy themselves.
"""

from qa_service.db.repository import (
    add_do_not_call,
    dial_attempts_for_customer,
    dial_attempts_for_number,
    do_not_call_entries,
    do_not_call_numbers,
    find_call_id_by_sha256,
    get_call,
    list_calls,
    save_analysis,
    save_dial_attempts,
)
from qa_service.db.scores import (
    agent_organisations,
    count_undated_calls,
    dial_attempts_between,
    findings_for_call,
    findings_for_period,
    record_score,
    scored_calls,
    scores_for_call,
)
from qa_service.db.session import (
    current_revision,
    make_engine,
    make_session_factory,
    migrate,
)

__all__ = [
    "add_do_not_call",
    "agent_organisations",
    "count_undated_calls",
    "dial_attempts_between",
    "findings_for_call",
    "findings_for_period",
    "record_score",
    "scored_calls",
    "scores_for_call",
    "current_revision",
    "dial_attempts_for_customer",
    "dial_attempts_for_number",
    "do_not_call_entries",
    "do_not_call_numbers",
    "find_call_id_by_sha256",
    "get_call",
    "list_calls",
    "make_engine",
    "make_session_factory",
    "migrate",
    "save_analysis",
    "save_dial_attempts",
]
