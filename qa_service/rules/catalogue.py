"""The rule catalogue (``shared/spec/rules.md``): ids are a contract, names are for people."""

from __future__ import annotations

from dataclasses import dataclass


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
