"""Each finding cites its source (issue 10): every rule of the catalogue names the clause it
enforces, shown with each finding in the call detail and listed at GET /api/v1/rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import Service, add_role_users, bearer, make_service, seed_call
from fastapi.testclient import TestClient

from qa_service.errors import LexiconError
from qa_service.rules.catalogue import CITATIONS_PATH, RULES, citation_for, load_citations

# Every rule id of shared/spec/rules.md.
RULE_IDS = (
    *(f"P{i:02d}" for i in range(1, 11)),
    "C01", "C02", "C03", "R01", "R03", "R04", "A01", "A02", "M01", "M02", "M03",
)  # fmt: skip
CARD_MEASURES = "商业银行信用卡业务监督管理办法"
GB_T = "GB/T 45251-2025"


def _documents(rule_id: str) -> set[str]:
    citation = citation_for(rule_id)
    assert citation is not None
    return {clause.title_zh for clause in citation.clauses}


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_every_rule_cites_at_least_one_clause(rule_id: str) -> None:
    citation = citation_for(rule_id)
    assert citation is not None, rule_id
    assert citation.summary_zh and citation.clauses
    for clause in citation.clauses:
        assert clause.title_zh and clause.requirement_zh
        assert clause.article or clause.section_zh or clause.source == "gbt_45251"


def test_the_catalogue_and_the_citations_cover_the_same_rules() -> None:
    assert set(RULES) == set(RULE_IDS) == set(load_citations())


def test_the_sources_the_plan_names_are_cited_where_they_apply() -> None:
    # Art. 68: no violence, coercion, threats or insults; no collecting from third parties.
    for rule_id in ("P01", "P02", "P06", "M03"):
        assert CARD_MEASURES in _documents(rule_id), rule_id
    # GB/T 45251-2025: the 22:00-08:00 ban, at most 3 effective contacts a day, no
    # disclosure to third parties.
    for rule_id in ("M01", "M02", "P06", "P09"):
        assert GB_T in _documents(rule_id), rule_id
    m01 = citation_for("M01")
    m02 = citation_for("M02")
    assert m01 is not None and any("22:00" in c.requirement_zh for c in m01.clauses)
    assert m02 is not None and any("3 次" in c.requirement_zh for c in m02.clauses)
    # The ten prohibitions come from the bank's service plan.
    for i in range(1, 11):
        assert "信用卡中心催收业务外包服务方案" in _documents(f"P{i:02d}")


def test_only_article_numbers_we_are_sure_of_are_given() -> None:
    articles = {
        (clause.title_zh, clause.article)
        for citation in load_citations().values()
        for clause in citation.clauses
        if clause.article
    }
    assert articles == {(CARD_MEASURES, "第六十八条")}


def test_a_citations_file_missing_a_rule_is_refused(tmp_path: Path) -> None:
    text = CITATIONS_PATH.read_text(encoding="utf-8")
    broken = tmp_path / "citations.yaml"
    broken.write_text(text.replace("  M03:\n", "  M99:\n"), encoding="utf-8")
    with pytest.raises(LexiconError, match="M03"):
        load_citations(broken)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    service = make_service(f"sqlite:///{tmp_path / 'qa.sqlite3'}", tmp_path)
    add_role_users(service)
    seed_call(service, "cited", rules=("P03", "M01"))
    yield service
    service.state.engine.dispose()


def test_call_detail_shows_each_findings_citation(service: Service) -> None:
    client = TestClient(service.app)
    body = client.get("/api/v1/calls/cited", headers=bearer(service.tokens["manager"])).json()
    assert [f["rule"] for f in body["findings"]] == ["P03", "M01"]
    for finding in body["findings"]:
        # output.md's fields are all still there.
        assert {"rule", "speaker", "start", "end", "text", "source", "confidence"} <= set(finding)
        citation = finding["citation"]
        assert citation["rule"] == finding["rule"] and citation["summary"]
        assert all(c["document"] and c["requirement"] for c in citation["clauses"])
    p03 = body["findings"][0]["citation"]
    assert p03["name"] == "冒充公检法" and "检察院" in p03["summary"]


def test_rules_route_lists_the_catalogue_with_citations(service: Service) -> None:
    client = TestClient(service.app)
    response = client.get("/api/v1/rules", headers=bearer(service.tokens["agent"]))
    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["id"] for item in items] == list(RULE_IDS)
    p06 = next(item for item in items if item["id"] == "P06")
    documents = {c["document"] for c in p06["citation"]["clauses"]}
    assert {CARD_MEASURES, GB_T} <= documents
    assert client.get("/api/v1/rules").status_code == 401
