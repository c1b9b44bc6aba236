"""The rule catalogue (``shared/spec/rules.md``): ids are a contract, names are for people.

Each rule also cites the clause it enforces (``lexicons/citations.yaml``: the bank's
service plan, 商业银行信用卡业务监督管理办法, GB/T 45251-2025, the QA rubric), so whoever
reads a finding sees *why* it is a violation. The citations are data, loaded on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from qa_service.errors import LexiconError

CITATIONS_PATH = Path(__file__).resolve().parents[2] / "lexicons" / "citations.yaml"


@dataclass(frozen=True)
class Rule:
    id: str
    name_zh: str
    name_en: str

    @property
    def family(self) -> str:
        return self.id[0]


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("P01", "威胁恐吓", "threats / intimidation"),
        Rule("P02", "辱骂侮辱", "insults / abuse"),
        Rule("P03", "冒充公检法", "impersonating or invoking authorities"),
        Rule("P04", "冒充律师/伪造文书", "lawyers, legal documents, credit reports"),
        Rule("P05", "虚假承诺减免", "unauthorised waivers or instalments"),
        Rule("P06", "第三方催收/泄露", "pressing or disclosing to third parties"),
        Rule("P07", "骚扰", "harassment"),
        Rule("P08", "淫秽/P图", "obscene content, doctored images"),
        Rule("P09", "侵犯隐私/公开曝光", "privacy violation, public exposure"),
        Rule("P10", "私下收款/非录音渠道", "off-channel collection"),
        Rule("C01", "投诉倾向", "complaint intent"),
        Rule("C02", "第三方拒绝联系", "third party refuses contact"),
        Rule("C03", "还款困难", "hardship"),
        Rule("R01", "身份表明", "identity disclosure missing"),
        Rule("R03", "礼貌结束", "courteous closing missing"),
        Rule("R04", "投诉未升级", "complaint not de-escalated"),
        Rule("A01", "长时间静音", "dead air"),
        Rule("A02", "抢话", "agent interruption"),
        Rule("M01", "禁止时段", "forbidden hours"),
        Rule("M02", "超频呼叫", "call frequency"),
        Rule("M03", "拒绝后再拨", "do-not-call breach"),
    )
}

FAMILY_NAMES_ZH = {
    "P": "禁止行为（十禁）",
    "C": "客户信号",
    "R": "规范项",
    "A": "声学指标",
    "M": "呼叫元数据",
}


def rule_label(rule_id: str) -> str:
    """'P03 冒充公检法' — how people see a rule id."""
    rule = RULES.get(rule_id)
    return f"{rule_id} {rule.name_zh}" if rule else rule_id


# --- citations: the clause each rule enforces ------------------------------------------


@dataclass(frozen=True)
class Clause:
    """One requirement of one source document, described (not quoted) in Chinese."""

    source: str  # key in citations.yaml's ``sources``
    title_zh: str  # the document, e.g. 商业银行信用卡业务监督管理办法
    title_en: str
    kind: str  # regulation, national standard, client bank's policy, QA rubric
    requirement_zh: str
    section_zh: str | None = None  # the part of the document, when it has no article number
    article: str | None = None  # only where certain, e.g. 第六十八条

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "document": self.title_zh,
            "document_en": self.title_en,
            "kind": self.kind,
            "section": self.section_zh,
            "article": self.article,
            "requirement": self.requirement_zh,
        }


@dataclass(frozen=True)
class Citation:
    """Why a rule's finding matters: one sentence, and the clauses the rule enforces."""

    rule: str
    summary_zh: str
    clauses: tuple[Clause, ...]

    def as_dict(self) -> dict[str, Any]:
        rule = RULES.get(self.rule)
        return {
            "rule": self.rule,
            "name": rule.name_zh if rule else None,
            "summary": self.summary_zh,
            "clauses": [clause.as_dict() for clause in self.clauses],
        }


def _text(node: Any, where: str, path: Path, *, required: bool = True) -> str | None:
    if node is None and not required:
        return None
    if not isinstance(node, str) or not node.strip():
        raise LexiconError(
            f"{path}：{where} 应为非空文本 / {path}: {where} must be non-empty text",
            path=path,
            entry=where,
        )
    return node.strip()


def _clause(node: Any, where: str, path: Path, sources: dict[str, Any]) -> Clause:
    if not isinstance(node, dict):
        raise LexiconError(f"{path}：{where} 格式错误 / {path}: {where} must be a mapping")
    key = _text(node.get("source"), f"{where}.source", path) or ""
    source = sources.get(key)
    if not isinstance(source, dict):
        raise LexiconError(
            f"{path}：{where} 引用了未定义的来源 {key} / {path}: {where} names unknown source "
            f"{key!r}",
            path=path,
            entry=where,
        )
    return Clause(
        source=key,
        title_zh=_text(source.get("title_zh"), f"sources.{key}.title_zh", path) or "",
        title_en=_text(source.get("title_en"), f"sources.{key}.title_en", path) or "",
        kind=_text(source.get("kind"), f"sources.{key}.kind", path) or "",
        requirement_zh=_text(node.get("requirement_zh"), f"{where}.requirement_zh", path) or "",
        section_zh=_text(node.get("section_zh"), f"{where}.section_zh", path, required=False),
        article=_text(node.get("article"), f"{where}.article", path, required=False),
    )


@lru_cache(maxsize=4)
def load_citations(path: Path = CITATIONS_PATH) -> dict[str, Citation]:
    """The citation of every rule, from ``path``; LexiconError names a missing or bad entry.

    Every rule of :data:`RULES` must be cited, and nothing but them.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LexiconError(
            f"无法读取规则依据文件 {path}：{exc} / cannot read the citations file {path}: {exc}",
            path=path,
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("rules"), dict):
        raise LexiconError(f"{path} 缺少 rules / {path} has no 'rules' mapping", path=path)
    sources = data.get("sources") or {}
    rules: dict[str, Any] = data["rules"]
    unknown = sorted(set(rules) - RULES.keys())
    missing = sorted(RULES.keys() - set(rules))
    if unknown or missing:
        raise LexiconError(
            f"{path}：规则依据与规则目录不一致（缺少 {missing}，多余 {unknown}） / {path}: "
            f"citations do not match the catalogue (missing {missing}, unknown {unknown})",
            path=path,
        )
    out: dict[str, Citation] = {}
    for rule_id in RULES:
        node = rules[rule_id]
        if not isinstance(node, dict) or not isinstance(node.get("clauses"), list):
            raise LexiconError(
                f"{path}：{rule_id} 缺少 clauses / {path}: rule {rule_id} has no clauses list",
                path=path,
                entry=rule_id,
            )
        clauses = tuple(
            _clause(c, f"{rule_id}.clauses[{i}]", path, sources)
            for i, c in enumerate(node["clauses"])
        )
        if not clauses:
            raise LexiconError(
                f"{path}：{rule_id} 没有任何依据条款 / {path}: rule {rule_id} cites nothing",
                path=path,
                entry=rule_id,
            )
        summary = _text(node.get("summary_zh"), f"{rule_id}.summary_zh", path) or ""
        out[rule_id] = Citation(rule=rule_id, summary_zh=summary, clauses=clauses)
    return out


def citation_for(rule_id: str) -> Citation | None:
    """The citation of ``rule_id`` (None for an id outside the catalogue)."""
    return load_citations().get(rule_id)
