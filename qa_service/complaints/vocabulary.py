"""The complaint vocabulary of the bank's service plan: sources, levels, types, outcomes.

Stored as short English codes (the database's check constraints list them); people read
the Chinese labels. :func:`parse_choice` reads either form, as the bank's complaint list
writes it (the Chinese label, a common variant, or the code).
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from typing import TypeVar


class Source(StrEnum):
    """Where the complaint was received."""

    AGENCY = "agency"
    HOTLINE = "hotline"
    BRANCH = "branch"
    BANK_FORWARDED = "bank_forwarded"
    OTHER = "other"


class Level(StrEnum):
    """Severity as the plan grades complaints."""

    GENERAL = "general"
    SERIOUS = "serious"
    MAJOR = "major"


class ComplaintType(StrEnum):
    ABUSE = "abuse"
    IMPROPER_METHOD = "improper_method"
    MISINFORMATION = "misinformation"
    BROKEN_PROMISE = "broken_promise"
    OTHER = "other"


class Outcome(StrEnum):
    """Whether the agency was at fault; a complaint is open until it has one."""

    AT_FAULT = "at_fault"
    PARTLY_AT_FAULT = "partly_at_fault"
    NOT_AT_FAULT = "not_at_fault"


# Chinese labels per vocabulary (by kind: Source.OTHER and ComplaintType.OTHER are both
# "other", and StrEnum members with equal values are equal dictionary keys).
LABELS_ZH: dict[type[StrEnum], dict[str, str]] = {
    Source: {
        "agency": "机构受理",
        "hotline": "银行客服热线/催收专线",
        "branch": "银行网点",
        "bank_forwarded": "银行转办",
        "other": "其他渠道",
    },
    Level: {"general": "一般", "serious": "严重", "major": "重大"},
    ComplaintType: {
        "abuse": "辱骂或态度恶劣",
        "improper_method": "催收方式不当",
        "misinformation": "错误或误导信息",
        "broken_promise": "承诺未兑现",
        "other": "其他",
    },
    Outcome: {"at_fault": "有责", "partly_at_fault": "部分有责", "not_at_fault": "无责"},
}

# Further spellings seen in banks' complaint lists (compared after _key: NFKC, lower case,
# no spaces, dashes or underscores).
_ALIASES: dict[type[StrEnum], dict[str, tuple[str, ...]]] = {
    Source: {
        "agency": ("机构", "本机构", "外包机构", "公司受理", "自行受理"),
        "hotline": ("热线", "客服热线", "银行热线", "催收专线", "专线", "客服电话"),
        "branch": ("网点", "支行", "分行", "营业网点"),
        "bank_forwarded": ("转办", "银行转交", "银行转派", "转派", "监管转办"),
        "other": ("其他", "其它"),
    },
    Level: {
        "general": ("一般投诉", "普通"),
        "serious": ("严重投诉", "较重"),
        "major": ("重大投诉", "特别重大"),
    },
    ComplaintType: {
        "abuse": ("辱骂", "态度恶劣", "服务态度", "态度"),
        "improper_method": ("催收方式", "方式不当", "暴力催收", "骚扰", "催收手段不当"),
        "misinformation": ("误导", "错误信息", "信息错误", "误导信息"),
        "broken_promise": ("未兑现承诺", "承诺不兑现", "违背承诺"),
        "other": ("其它",),
    },
    Outcome: {
        "at_fault": ("有责任", "全责"),
        "partly_at_fault": ("部分责任", "部分有责任"),
        "not_at_fault": ("无责任", "不成立", "无责投诉"),
    },
}

_E = TypeVar("_E", bound=StrEnum)


def label(kind: type[StrEnum], value: str | None) -> str:
    """The Chinese label of a code of ``kind`` (the code itself if unknown, "" for None)."""
    if value is None:
        return ""
    return LABELS_ZH[kind].get(str(value), str(value))


def _key(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", unicodedata.normalize("NFKC", text)).lower()


def parse_choice(kind: type[_E], text: str) -> _E:
    """The member of ``kind`` that ``text`` names: code, Chinese label or a known variant.

    Raises ValueError ("中文 / English") listing the accepted labels.
    """
    wanted = _key(text)
    labels, aliases = LABELS_ZH[kind], _ALIASES.get(kind, {})
    for member in kind:
        names = (member.value, labels[member.value], *aliases.get(member.value, ()))
        if any(_key(name) == wanted for name in names):
            return member
    accepted = "、".join(labels[m.value] for m in kind)
    raise ValueError(f"{text!r} 不是 {accepted} 之一 / {text!r} is not one of {accepted}")
