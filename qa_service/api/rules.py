"""The rule catalogue with the clause each rule enforces (``lexicons/citations.yaml``).

Every signed-in role may read it: an agent contesting a finding needs the rule behind it
as much as the inspector who confirmed it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from qa_service.api.deps import Caller
from qa_service.rules.catalogue import FAMILY_NAMES_ZH, RULES, load_citations

router = APIRouter(prefix="/api/v1/rules", tags=["rules"])


def citation_json(rule_id: str) -> dict[str, Any] | None:
    """The ``citation`` object shown with a finding of ``rule_id`` (None if uncited)."""
    citation = load_citations().get(rule_id)
    return citation.as_dict() if citation is not None else None


@router.get("")
def list_rules(_principal: Caller) -> dict[str, Any]:
    """Every rule id with its names, family and citation."""
    citations = load_citations()
    return {
        "items": [
            {
                "id": rule.id,
                "name_zh": rule.name_zh,
                "name_en": rule.name_en,
                "family": rule.family,
                "family_name": FAMILY_NAMES_ZH.get(rule.family),
                "citation": citations[rule.id].as_dict(),
            }
            for rule in RULES.values()
        ]
    }
