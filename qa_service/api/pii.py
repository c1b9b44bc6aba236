"""What of a call's personal data each caller may read (the ``view_pii`` permission).

Roles holding ``view_pii`` (manager, supervisor, inspector; see
:mod:`qa_service.accounts.roles`) read calls as stored; everyone else reads them through
:func:`qa_service.privacy.masking.mask_analysis`: numbers keep their last four digits (a
mobile its first three too). Every route that returns call content goes through here, so
a new route cannot forget to mask.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from qa_service.accounts.roles import Permission, Principal
from qa_service.db.listing import CallPage
from qa_service.db.sealed import number_digest
from qa_service.db.tables import CallRow
from qa_service.domain import CallAnalysis
from qa_service.errors import InputError, PermissionDenied
from qa_service.ingest.dial_log import normalize_phone_number
from qa_service.privacy.masking import mask_analysis, mask_number, mask_text


def sees_pii(principal: Principal) -> bool:
    return principal.can(Permission.VIEW_PII)


def readable_analysis(analysis: CallAnalysis, principal: Principal) -> CallAnalysis:
    """The call as this caller may read it: as stored, or with every number masked."""
    return analysis if sees_pii(principal) else mask_analysis(analysis)


def call_numbers(row: CallRow, principal: Principal) -> dict[str, Any]:
    """The call's dialled number and customer id, masked unless the caller sees PII."""
    number, customer = row.dialed_number, row.customer_id
    if not sees_pii(principal):
        number = mask_number(number) if number else number
        customer = mask_text(customer) if customer else customer
    return {"dialed_number": number, "customer_id": customer}


def readable_page(page: CallPage, principal: Principal) -> CallPage:
    """A call list page as this caller may read it (recording names can hold numbers)."""
    if sees_pii(principal):
        return page
    items = tuple(replace(s, recording=mask_text(s.recording)) for s in page.items)
    return replace(page, items=items)


def number_filter(number: str, principal: Principal) -> str:
    """The keyed hash to filter calls by a dialled number.

    Only for callers who see numbers: a reader of masked numbers could otherwise recover
    the hidden digits by trying the 10,000 candidates against this filter.
    """
    if not sees_pii(principal):
        raise PermissionDenied(
            "无权按号码查询 / filtering by number needs the view_pii permission",
            permission=Permission.VIEW_PII.value,
        )
    try:
        normalized = normalize_phone_number(number)
    except ValueError as exc:
        raise InputError(f"号码无效 / invalid number: {exc}", field="number") from exc
    return number_digest(normalized) or ""
