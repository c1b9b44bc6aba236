"""The rule lexicon's data model (entries, hits) and the loader that validates
``lexicons/rules/*.yaml``.

Why it is its own module: the lexicon is edited by QA leads, not engineers, so every mistake
a person can make in YAML (an unknown rule id, an empty term list, a typo in a key, a
missing rationale) must be refused at start-up with the file and entry named — this module
is that gate. :mod:`qa_service.detection.lexicon` scans text with what it returns (and re-exports
everything public here, so callers import from one place).

File layout (one file per rule, named after it; ``_common.yaml`` holds shared groups and the
negation cues)::

    rule: P03
    groups: {action: [抓, 逮捕, 拘留]}        # local word lists, used as "@action"
    terms:      [{id, why, weight?, terms: [...], negatable?, pinyin?, near_miss?,
                  whole_word?, ignore?}]
    patterns:   [{id, why, weight?, slots: [[...], "@group"], within?, order?: any|given}]
    exceptions: [{id, why, terms | slots}]      # cancel the rule's hits in that sentence
    examples: [句子, ...]            # similarity rule: a clause close in meaning fires
    counter_examples: [句子, ...]    # harmless look-alikes the clause must be farther from

``within`` is the most characters allowed between one slot and the next (default 8);
``order: given`` keeps the slots in the written order, ``any`` (default) allows any order
but not across a comma. ``negatable: false`` for entries whose wording contains the
negation (别再打了); ``pinyin: false`` for terms whose homophones are everyday words;
``whole_word`` makes a term of any length respect jieba's word boundaries; ``ignore`` lists
real words that sound like a term and must not count as it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from qa_service.errors import LexiconError
from qa_service.rules.catalogue import RULES

# The rules a lexicon can speak to: prohibitions and customer signals.
LEXICON_RULES = tuple(rule_id for rule_id, rule in RULES.items() if rule.family in "PC")

_TERM_KEYS = {
    "id",
    "why",
    "weight",
    "terms",
    "negatable",
    "pinyin",
    "near_miss",
    "whole_word",
    "ignore",
}
_PATTERN_KEYS = (_TERM_KEYS - {"terms"}) | {"slots", "within", "order"}
_SECTIONS = ("terms", "patterns", "exceptions")
_EXAMPLE_SECTIONS = ("examples", "counter_examples")
_DEFAULT_WEIGHT = 0.6
_DEFAULT_WITHIN = 8
_MAX_WITHIN = 40


@dataclass(frozen=True)
class ProximityPattern:
    """Slots of alternatives that must all occur, each within ``within`` chars of the next."""

    slots: tuple[tuple[str, ...], ...]
    within: int = _DEFAULT_WITHIN
    ordered: bool = False


@dataclass(frozen=True)
class LexiconEntry:
    rule: str
    entry_id: str
    why: str
    weight: float = _DEFAULT_WEIGHT
    terms: tuple[str, ...] = ()
    pattern: ProximityPattern | None = None
    exception: bool = False  # cancels the rule's hits in the same sentence
    negatable: bool = True
    pinyin: bool = True
    near_miss: bool | None = None  # None: only for terms of four syllables or more
    whole_word: bool = False
    ignore: frozenset[str] = frozenset()  # real words that sound like a term
    source: str = ""


@dataclass(frozen=True)
class NegationRules:
    window: int = 4
    declarative: tuple[str, ...] = ()
    imperative: tuple[str, ...] = ()
    breakers: tuple[str, ...] = ()
    imperative_breakers: tuple[str, ...] = ()
    not_negation: frozenset[str] = frozenset()
    # "你也不想你孩子出点什么事吧": in a clause that ends in 吧/吗 these cues ask a
    # rhetorical question — a veiled threat, not a denial.
    rhetorical: tuple[str, ...] = ()


@dataclass(frozen=True)
class Lexicon:
    entries: tuple[LexiconEntry, ...]
    negation: NegationRules
    user_words: tuple[tuple[str, int | None, str | None], ...] = ()
    # Similarity rules: example sentences per rule, and harmless counter-examples per
    # rule ("*" holds the shared ones of _common.yaml).
    examples: dict[str, tuple[str, ...]] = field(default_factory=dict)
    counter_examples: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(sorted({e.rule for e in self.entries}))

    def entry(self, rule: str, entry_id: str) -> LexiconEntry:
        for e in self.entries:
            if e.rule == rule and e.entry_id == entry_id:
                return e
        raise KeyError(f"{rule}/{entry_id}")


class HitKind(StrEnum):
    """How a hit was found."""

    TERM = "term"  # the term's own characters
    PINYIN = "pinyin"  # a term heard as a homophone
    PROXIMITY = "proximity"  # all slots of a pattern close together
    EXCEPTION = "exception"  # the rule's compliant wording, with none of its words to excuse


@dataclass(frozen=True)
class LexiconHit:
    """One piece of lexicon evidence in one text, with what a reviewer needs to judge it.

    ``weight`` is the entry's weight times the match quality (1.0 characters, 0.9 toneless
    pinyin, 0.8 fuzzy pinyin, 0.7 one-syllable near miss). ``negated`` hits are returned
    so a reviewer can see why a violation-looking phrase did not count.
    """

    rule: str
    entry_id: str
    kind: HitKind
    start: int  # character offsets into the scanned text, end exclusive
    end: int
    matched_text: str
    term: str  # the lexicon term; for a pattern the slot terms joined by "…"
    weight: float
    why: str
    negated: bool = False
    negated_by: str = ""  # the negation cue or the exception phrase that cancelled it
    via: str = "chars"  # chars | pinyin | fuzzy | near_miss | across_words (weakest slot)


def load_lexicon(
    directory: Path, *, user_dictionary: Path | None = None, require_all: bool = True
) -> Lexicon:
    """Read and validate ``<rule>.yaml`` files (and ``_common.yaml``) from ``directory``.

    ``require_all`` refuses a lexicon that leaves any P/C rule without entries, so a
    missing file is an error rather than a rule that silently never fires.
    """
    if not directory.is_dir():
        raise _fail(directory, "", "词库目录不存在", "lexicon directory not found")
    common_path = directory / "_common.yaml"
    common = _read_yaml(common_path) if common_path.exists() else {}
    negation = _parse_negation(common.get("negation") or {}, common_path)
    shared = _parse_groups(common.get("groups"), common_path, {})
    entries: list[LexiconEntry] = []
    seen: set[str] = set()
    examples: dict[str, tuple[str, ...]] = {}
    counter_examples: dict[str, tuple[str, ...]] = {}
    shared_counter = _sentences(common.get("counter_examples"), "counter_examples", common_path)
    if shared_counter:
        counter_examples["*"] = shared_counter
    for path in sorted(directory.glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        raw = _read_yaml(path)
        rule = raw.get("rule")
        if rule not in LEXICON_RULES:
            raise _fail(
                path, "", f"未知规则编号 {rule!r}（应为 P01–P10、C01–C03）", "unknown rule id"
            )
        if path.stem != rule or rule in seen:
            raise _fail(
                path,
                "",
                f"规则 {rule} 应在且只在 {rule}.yaml 中定义",
                "a rule lives in exactly one file named after it",
            )
        seen.add(rule)
        unknown = set(raw) - {"rule", "name", "groups", *_SECTIONS, *_EXAMPLE_SECTIONS}
        if unknown:
            raise _fail(path, "", f"未知字段 {sorted(unknown)}", "unknown keys")
        groups = _parse_groups(raw.get("groups"), path, shared)
        ids: set[str] = set()
        for section in _SECTIONS:
            items = raw.get(section) or []
            if not isinstance(items, list):
                raise _fail(path, section, "应为列表", "must be a list")
            for i, item in enumerate(items):
                entry = _parse_entry(item, rule, section, f"{section}[{i}]", path, groups)
                if entry.entry_id in ids:
                    raise _fail(path, entry.entry_id, "条目 id 重复", "duplicate entry id")
                ids.add(entry.entry_id)
                entries.append(entry)
        for section in _EXAMPLE_SECTIONS:
            sentences = _sentences(raw.get(section), section, path)
            if sentences:
                target = examples if section == "examples" else counter_examples
                target[rule] = sentences
        if not any(e.rule == rule and not e.exception for e in entries):
            raise _fail(path, "", "没有任何词条", "no terms or patterns")
    missing = sorted(set(LEXICON_RULES) - seen)
    if require_all and missing:
        raise _fail(directory, "", f"缺少规则 {missing}", "lexicon lacks rules")
    words = _read_user_dictionary(user_dictionary) if user_dictionary else ()
    return Lexicon(
        entries=tuple(entries),
        negation=negation,
        user_words=words,
        examples=examples,
        counter_examples=counter_examples,
    )


def _fail(path: Path, where: str, zh: str, en: str) -> LexiconError:
    """An error naming file and entry; Chinese first (QA leads read it), English after."""
    place = f"{path.name} {where}".strip()
    context: dict[str, object] = {"file": path.name}
    if where:
        context["entry"] = where
    return LexiconError(f"词库 {place}：{zh} / lexicon {place}: {en}", **context)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        # libyaml's loader where installed: the pure-Python one takes a tenth of a second
        # for the fourteen files, which every start-up and test pays.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 (safe)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _fail(path, "", f"无法读取（{exc}）", "unreadable YAML") from exc
    if not isinstance(raw, dict):
        raise _fail(path, "", "顶层应为映射", "top level must be a mapping")
    return raw


def _words(
    value: object,
    where: str,
    path: Path,
    groups: dict[str, tuple[str, ...]],
    *,
    allow_empty: bool = False,
) -> tuple[str, ...]:
    """A list of words with ``@group`` references expanded (a bare ``@group`` string too)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise _fail(path, where, "应为词语列表", "must be a list of words")
    out: list[str] = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)  # 12378 written without quotes
        if not isinstance(item, str) or not item.strip():
            raise _fail(path, where, f"有空词或非文字项 {item!r}", "empty or non-text term")
        item = item.strip()
        if item.startswith("@") and item[1:] not in groups:
            raise _fail(path, where, f"引用了未定义的词组 {item}", "unknown group")
        out.extend(groups[item[1:]] if item.startswith("@") else [item])
    if not out and not allow_empty:
        raise _fail(path, where, "词语列表为空", "empty term list")
    return tuple(dict.fromkeys(out))


def _parse_groups(
    raw: object, path: Path, shared: dict[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    if raw is not None and not isinstance(raw, dict):
        raise _fail(path, "groups", "应为映射", "must be a mapping")
    groups = dict(shared)
    for name, words in (raw or {}).items():
        groups[str(name)] = _words(words, f"groups.{name}", path, groups)
    return groups


def _parse_negation(raw: object, path: Path) -> NegationRules:
    if not isinstance(raw, dict):
        raise _fail(path, "negation", "应为映射", "must be a mapping")
    window = raw.get("window", 4)
    if isinstance(window, bool) or not isinstance(window, int) or not 0 < window <= 20:
        raise _fail(path, "negation.window", "应为 1–20 的整数", "must be an integer 1–20")

    def words(key: str) -> tuple[str, ...]:
        return _words(raw.get(key) or [], f"negation.{key}", path, {}, allow_empty=True)

    return NegationRules(
        window=window,
        declarative=words("declarative"),
        imperative=words("imperative"),
        breakers=words("breakers"),
        imperative_breakers=words("imperative_breakers"),
        not_negation=frozenset(words("not_negation")),
        rhetorical=words("rhetorical"),
    )


def _parse_entry(
    raw: object, rule: str, section: str, where: str, path: Path, groups: dict[str, tuple[str, ...]]
) -> LexiconEntry:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
        raise _fail(path, where, "应为带 id 的映射", "an entry is a mapping with an id")
    where = f"{where} (id={raw['id']})"
    allowed = {"terms": _TERM_KEYS, "patterns": _PATTERN_KEYS}.get(
        section, _TERM_KEYS | _PATTERN_KEYS
    )
    if set(raw) - allowed:
        raise _fail(path, where, f"未知字段 {sorted(set(raw) - allowed)}", "unknown keys")
    why = raw.get("why")
    if not isinstance(why, str) or not why.strip():
        raise _fail(path, where, "缺少 why（一句理由）", "entry has no rationale")
    weight = raw.get("weight", _DEFAULT_WEIGHT)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        raise _fail(path, where, "weight 应在 0–1 之间", "weight must be within 0–1")
    if ("terms" in raw) == ("slots" in raw):
        raise _fail(path, where, "应有 terms 或 slots 之一", "needs terms or slots, not both")
    for flag in ("negatable", "pinyin", "whole_word", "near_miss"):
        if raw.get(flag) is not None and not isinstance(raw[flag], bool):
            raise _fail(path, where, f"{flag} 应为 true/false", f"{flag} must be boolean")
    pattern = None
    if "slots" in raw:
        slots, within, order = (
            raw["slots"],
            raw.get("within", _DEFAULT_WITHIN),
            raw.get("order", "any"),
        )
        if not isinstance(slots, list) or len(slots) < 2:
            raise _fail(path, where, "slots 至少要两个槽", "a pattern needs two or more slots")
        if (
            isinstance(within, bool)
            or not isinstance(within, int)
            or not (0 <= within <= _MAX_WITHIN)
        ):
            raise _fail(path, where, f"within 应为 0–{_MAX_WITHIN} 的整数", "bad within")
        if order not in ("any", "given"):
            raise _fail(path, where, "order 只能是 any 或 given", "order is any or given")
        pattern = ProximityPattern(
            slots=tuple(
                _words(s, f"{where} slot {k + 1}", path, groups) for k, s in enumerate(slots)
            ),
            within=within,
            ordered=order == "given",
        )
    return LexiconEntry(
        rule=rule,
        entry_id=raw["id"],
        why=why.strip(),
        weight=float(weight),
        terms=_words(raw["terms"], where, path, groups) if "terms" in raw else (),
        pattern=pattern,
        exception=section == "exceptions",
        negatable=raw.get("negatable", True),
        pinyin=raw.get("pinyin", True),
        near_miss=raw.get("near_miss"),
        whole_word=raw.get("whole_word", False),
        ignore=frozenset(_words(raw.get("ignore") or [], where, path, {}, allow_empty=True)),
        source=path.name,
    )


def _sentences(raw: object, section: str, path: Path) -> tuple[str, ...]:
    """A similarity section: a list of distinct, non-empty sentences."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail(path, section, "应为句子列表", "must be a list of sentences")
    out: list[str] = []
    for i, item in enumerate(raw):
        if not isinstance(item, str) or len(item.strip()) < 2:
            raise _fail(path, f"{section}[{i}]", f"应为一句话，而不是 {item!r}", "not a sentence")
        if item.strip() in out:
            raise _fail(path, f"{section}[{i}]", f"句子重复：{item.strip()}", "duplicate sentence")
        out.append(item.strip())
    return tuple(out)


def _read_user_dictionary(path: Path) -> tuple[tuple[str, int | None, str | None], ...]:
    """jieba's user-dictionary lines (word [freq] [tag]); ``#`` starts a comment line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, "", f"无法读取分词词典（{exc}）", "unreadable user dictionary") from exc
    words = []
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) > 3 or (len(parts) > 1 and not parts[1].isdigit()):
            raise _fail(
                path, f"第 {number} 行", "格式应为「词 词频 词性」", "expected 'word freq tag'"
            )
        words.append(
            (
                parts[0],
                int(parts[1]) if len(parts) > 1 else None,
                parts[2] if len(parts) > 2 else None,
            )
        )
    return tuple(words)
