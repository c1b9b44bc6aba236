"""Finding customers' numbers in transcripts and metadata.

Collection calls are full of numbers: amounts, dates, days overdue, counts, and the personal
ones this module looks for — bank card numbers (13–19 digits, Luhn), PRC resident ID numbers
(18 characters, ISO 7064 MOD 11-2 check character, ``X`` allowed), mobile numbers (11
digits, ``1[3-9]``), landlines (0 + area code + 7–8 digits) and bank account numbers (a long
digit run said right after 账号/卡号/账户…).

People say numbers in groups and ASR writes them as it hears them: ``6222 0212 3456``,
``138-0013-8000``, ``幺三八零零幺三八零零零``, or mixed. A *run* here is digits (ASCII,
full-width or Chinese numerals: 幺/一 二/两 三 … 零/〇/洞) in groups separated by at most a
few spaces, dashes or commas; a number is a window of consecutive groups whose digits pass
one of the validators above. Validators, not patterns, keep amounts and dates out: an
amount (followed by 元/块/万 …) is never a number, and a date or a count is too short or
fails every check.

When ASR cuts a number at a pause, the pieces land in consecutive utterances of the same
speaker; :func:`find_in_utterances` reads those as one text and returns each number's spans
per utterance. Pure Python on strings: no framework, usable from any layer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class NumberKind(StrEnum):
    CARD = "card"
    ID_CARD = "id_card"
    MOBILE = "mobile"
    LANDLINE = "landline"
    ACCOUNT = "account"


@dataclass(frozen=True)
class NumberMatch:
    """One number in a text: ``text[start:end]`` as written, ``digits`` normalised.

    ``digit_positions`` are the offsets (within the text) of the characters that are digits
    of the number, in order; masking replaces those, and leaves the separators alone.
    """

    kind: NumberKind
    start: int
    end: int
    digits: str
    digit_positions: tuple[int, ...]


@dataclass(frozen=True)
class UtteranceSpan:
    """The part of one number that lies in one utterance (a number split by ASR has two).

    ``positions`` are the masked characters' offsets in the utterance's text; ``keep`` are
    those among them left visible (the last four digits of the whole number, and a mobile
    number's first three).
    """

    index: int  # which utterance
    kind: NumberKind
    start: int
    end: int
    positions: tuple[int, ...]
    keep: frozenset[int]


_CHINESE_DIGITS = {
    "零": "0",
    "〇": "0",
    "洞": "0",
    "幺": "1",
    "一": "1",
    "壹": "1",
    "二": "2",
    "两": "2",
    "贰": "2",
    "三": "3",
    "叁": "3",
    "四": "4",
    "肆": "4",
    "五": "5",
    "伍": "5",
    "六": "6",
    "陆": "6",
    "七": "7",
    "柒": "7",
    "八": "8",
    "捌": "8",
    "九": "9",
    "玖": "9",
}
DIGIT_VALUES: dict[str, str] = {
    **{str(d): str(d) for d in range(10)},
    **{chr(0xFF10 + d): str(d) for d in range(10)},  # full-width ０-９
    **_CHINESE_DIGITS,
}
# An ID card's check character (value 10) is written X; ASR may give lower case or ×.
_CHECK_X = frozenset("Xx×")
# What may stand between two groups of one number. Not ':' or '.', which join times and
# decimals; not a line break, which :func:`find_in_utterances` uses between speakers.
_SEPARATORS = frozenset(" \t\u00a0\u3000-－‐‑–—_,，、。")
_MAX_GAP = 3
_MAX_GROUPS = 24

# A run followed by one of these (after its cents, if any) is an amount or a percentage,
# never a personal number.
_AMOUNT_AFTER = re.compile(
    r"(?:[.．]\d+)?\s*(?:元|块|圆|园|万|亿|千|百|角|毛|分钱|%|％|美元|人民币)"
)
_AMOUNT_BEFORE = re.compile(r"[￥¥$]\s*$")
# Words that make a long digit run an account number (within a few characters before it).
_ACCOUNT_CONTEXT = re.compile(
    r"(?:账号|帐号|账户|帐户|卡号|户号|银行卡|储蓄卡|借记卡|信用卡|对公|收款|汇款|转账|转到)"
)
_CONTEXT_CHARS = 12

_MOBILE = re.compile(r"1[3-9]\d{9}")
_MOBILE_86 = re.compile(r"861[3-9]\d{9}")
# 010 and 02x are three-digit area codes; the rest (0[3-9]xx) four. Local numbers start 2-8.
_LANDLINE = re.compile(r"0(?:10|2\d|[3-9]\d{2})[2-8]\d{6,7}")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every bank card number carries in its last digit."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of an 18-character resident ID number."""
    total = sum(int(ch) * w for ch, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def id_card_valid(value: str) -> bool:
    """An 18-character PRC resident ID: 17 digits, a plausible birth date, the check char."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    check = value[17].upper()
    if check != "X" and not check.isdigit():
        return False
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if not 1900 <= born.year <= 2100:
        return False
    return id_check_char(value[:17]) == check


def classify(digits: str, *, account_context: bool = False) -> NumberKind | None:
    """Which kind of personal number ``digits`` (normalised, no separators) is, if any."""
    n = len(digits)
    if n == 18 and id_card_valid(digits):
        return NumberKind.ID_CARD
    if not digits.isdigit():
        return None
    if (n == 11 and _MOBILE.fullmatch(digits)) or (n == 13 and _MOBILE_86.fullmatch(digits)):
        return NumberKind.MOBILE
    if 10 <= n <= 12 and _LANDLINE.fullmatch(digits):
        return NumberKind.LANDLINE
    if 13 <= n <= 19 and digits[0] in "345689" and luhn_valid(digits):
        return NumberKind.CARD
    if account_context and 10 <= n <= 25:
        return NumberKind.ACCOUNT
    return None


@dataclass(frozen=True)
class _Group:
    positions: tuple[int, ...]  # offsets of its digit characters
    digits: str


def _digit_at(text: str, i: int) -> str | None:
    ch = text[i]
    value = DIGIT_VALUES.get(ch)
    if value is not None:
        return value
    if ch in _CHECK_X and i > 0 and text[i - 1] in DIGIT_VALUES:
        after = text[i + 1] if i + 1 < len(text) else ""
        if not (after.isascii() and after.isalpha()):
            return "X"
    return None


def _runs(text: str) -> list[list[_Group]]:
    """Digit runs: groups of digit characters joined by at most ``_MAX_GAP`` separators."""
    runs: list[list[_Group]] = []
    current: list[_Group] = []
    i, n = 0, len(text)
    while i < n:
        if _digit_at(text, i) is None:
            if current:
                # A short stretch of separators followed by a digit continues the run.
                j = i
                while j < n and j - i < _MAX_GAP and text[j] in _SEPARATORS:
                    j += 1
                if j > i and j < n and _digit_at(text, j) is not None:
                    i = j
                    continue
                runs.append(current)
                current = []
            i += 1
            continue
        positions: list[int] = []
        digits: list[str] = []
        while i < n:
            value = _digit_at(text, i)
            if value is None:
                break
            positions.append(i)
            digits.append(value)
            i += 1
        current.append(_Group(tuple(positions), "".join(digits)))
    if current:
        runs.append(current)
    return runs


def _is_amount(text: str, start: int, end: int) -> bool:
    return bool(_AMOUNT_AFTER.match(text, end) or _AMOUNT_BEFORE.search(text, 0, start))


def _has_account_context(text: str, start: int) -> bool:
    return bool(_ACCOUNT_CONTEXT.search(text, max(0, start - _CONTEXT_CHARS), start))


def _window(
    text: str, positions: tuple[int, ...], digits: str, account_context: bool
) -> tuple[NumberKind, tuple[int, ...], str] | None:
    """Classify a window, also without a Chinese numeral at either edge (一/两 in words)."""
    candidates = [(positions, digits)]
    if text[positions[0]] in _CHINESE_DIGITS:
        candidates.append((positions[1:], digits[1:]))
    if text[positions[-1]] in _CHINESE_DIGITS:
        candidates.append((positions[:-1], digits[:-1]))
    for pos, dig in candidates:
        if not pos:
            continue
        start, end = pos[0], pos[-1] + 1
        if _is_amount(text, start, end):
            continue
        kind = classify(dig, account_context=account_context)
        if kind is not None:
            return kind, pos, dig
    return None


def _match_run(text: str, groups: list[_Group]) -> list[NumberMatch]:
    """Greedy, left to right: at each group the longest window that is a number.

    Strong kinds (checked digits or a fixed shape) win over an account number, which only
    its context makes one, so a list of two phone numbers after 账号 stays two numbers.
    """
    matches: list[NumberMatch] = []
    groups = groups[:_MAX_GROUPS] if len(groups) > _MAX_GROUPS else groups
    i = 0
    while i < len(groups):
        found: tuple[int, tuple[NumberKind, tuple[int, ...], str]] | None = None
        context = _has_account_context(text, groups[i].positions[0])
        for account in (False, True) if context else (False,):
            for j in range(len(groups) - 1, i - 1, -1):
                positions = tuple(p for g in groups[i : j + 1] for p in g.positions)
                digits = "".join(g.digits for g in groups[i : j + 1])
                if len(digits) > 25:
                    continue
                hit = _window(text, positions, digits, account)
                if hit is not None:
                    found = (j, hit)
                    break
            if found is not None:
                break
        if found is None:
            i += 1
            continue
        j, (kind, positions, digits) = found
        matches.append(NumberMatch(kind, positions[0], positions[-1] + 1, digits, positions))
        i = j + 1
    return matches


def find_numbers(text: str) -> list[NumberMatch]:
    """Every personal number in ``text``, in order of appearance."""
    out: list[NumberMatch] = []
    for groups in _runs(text):
        out.extend(_match_run(text, groups))
    return out


def visible_digits(kind: NumberKind, count: int) -> tuple[set[int], int]:
    """Which digits of a number stay visible: (indexes from the start, count at the end).

    The last four always (what a customer is asked to confirm); a mobile number also keeps
    its first three (the carrier prefix), the usual 138****5678.
    """
    head = {0, 1, 2} if kind is NumberKind.MOBILE and count >= 11 else set()
    return head, min(4, count)


def _keep(match: NumberMatch) -> frozenset[int]:
    head, tail = visible_digits(match.kind, len(match.digit_positions))
    positions = match.digit_positions
    kept = {positions[i] for i in head}
    kept.update(positions[len(positions) - tail :])
    return frozenset(kept)


def find_in_utterances(utterances: Sequence[tuple[str, str]]) -> list[list[UtteranceSpan]]:
    """Numbers in a conversation, as spans per utterance (``(speaker, text)`` in order).

    Consecutive utterances of one speaker are read as one text, so a number ASR cut in
    two at a pause is found whole and masked in both pieces. Another speaker's turn in
    between ends any number.
    """
    joined: list[str] = []
    offsets: list[int] = []
    at = 0
    previous: str | None = None
    for speaker, text in utterances:
        if joined:
            # A space may join two groups of one number; a line break never does.
            sep = " " if speaker == previous else "\n"
            joined.append(sep)
            at += len(sep)
        offsets.append(at)
        joined.append(text)
        at += len(text)
        previous = speaker
    whole = "".join(joined)
    spans: list[list[UtteranceSpan]] = [[] for _ in utterances]
    if not utterances:
        return spans
    for match in find_numbers(whole):
        keep = _keep(match)
        by_utterance: dict[int, list[int]] = {}
        for pos in match.digit_positions:
            index = _utterance_of(offsets, pos)
            by_utterance.setdefault(index, []).append(pos)
        for index, positions in by_utterance.items():
            base = offsets[index]
            local = tuple(p - base for p in positions)
            spans[index].append(
                UtteranceSpan(
                    index=index,
                    kind=match.kind,
                    start=local[0],
                    end=local[-1] + 1,
                    positions=local,
                    keep=frozenset(p - base for p in positions if p in keep),
                )
            )
    return spans


def _utterance_of(offsets: list[int], position: int) -> int:
    lo, hi = 0, len(offsets) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if offsets[mid] <= position:
            lo = mid
        else:
            hi = mid - 1
    return lo
