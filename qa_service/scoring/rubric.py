"""The QA rubric as data (``scoring/*.yaml``): load it, validate it, or refuse it.

A score nobody can explain, or one that silently changes when someone edits a file, is worse
than none. So the rubric is plain YAML a QA manager can read, every stored score records the
rubric's ``version`` and a digest of its content, and a malformed file is refused as a whole
with a message naming the file, the line and the field: nothing is ever scored with half a
rubric or with a typo quietly read as a default.

Pure: no database, no pydantic; the result is frozen dataclasses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qa_service.errors import RubricError
from qa_service.rules.catalogue import RULES

FULL_MARKS = 100.0

_TOP_KEYS = {"version", "title_zh", "title_en", "pass_mark", "sections"}
_SECTION_KEYS = {"id", "name_zh", "name_en", "items"}
_ITEM_KEYS = {"id", "name_zh", "name_en", "rules", "deduction", "cap", "weight", "fatal"}


@dataclass(frozen=True)
class RubricItem:
    """One scored item: the rules it covers and what each occurrence costs.

    The item deducts ``min(cap, deduction × occurrences) × weight``; a fatal item (一票否决)
    scores the whole call 0 as soon as one of its rules is found.
    """

    id: str
    section_id: str
    name_zh: str
    name_en: str
    rules: tuple[str, ...]
    deduction: float
    cap: float
    weight: float = 1.0
    fatal: bool = False

    @property
    def informational(self) -> bool:
        """Shown in the breakdown but never costs points (e.g. customer signals)."""
        return not self.fatal and (self.deduction == 0 or self.weight == 0)


@dataclass(frozen=True)
class RubricSection:
    id: str
    name_zh: str
    name_en: str
    items: tuple[RubricItem, ...]


@dataclass(frozen=True)
class Rubric:
    """A validated rubric. ``digest`` fingerprints its content (not its comments or layout)."""

    version: str
    pass_mark: float
    sections: tuple[RubricSection, ...]
    title_zh: str = ""
    title_en: str = ""
    source: str = ""
    digest: str = field(default="", compare=False)
    _by_rule: Mapping[str, RubricItem] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_rule = {rule: item for item in self.items for rule in item.rules}
        object.__setattr__(self, "_by_rule", by_rule)
        if not self.digest:
            object.__setattr__(self, "digest", _digest(self))

    @property
    def items(self) -> tuple[RubricItem, ...]:
        return tuple(item for section in self.sections for item in section.items)

    @property
    def fatal_rules(self) -> frozenset[str]:
        return frozenset(rule for item in self.items if item.fatal for rule in item.rules)

    def item_for_rule(self, rule: str) -> RubricItem | None:
        """The item that scores ``rule``, or None when the rubric does not cover it."""
        return self._by_rule.get(rule)


def _digest(rubric: Rubric) -> str:
    content = {
        "version": rubric.version,
        "pass_mark": rubric.pass_mark,
        "sections": [asdict(section) for section in rubric.sections],
    }
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- YAML with line numbers ----------------------------------------------------------


class _Map(dict[Any, Any]):
    """A YAML mapping that remembers the line of itself and of each value."""

    line: int = 0
    lines: dict[Any, int]


class _Seq(list[Any]):
    """A YAML sequence that remembers the line of itself and of each element."""

    line: int = 0
    lines: list[int]


class _DuplicateKey(Exception):
    def __init__(self, key: object, line: int) -> None:
        super().__init__(key)
        self.key, self.line = key, line


class _MarkingLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry line numbers for error messages."""


def _construct_map(loader: _MarkingLoader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            # PyYAML keeps the last of two equal keys; a rubric edited by hand must not
            # have one of two deductions silently win.
            raise _DuplicateKey(key, key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = value_node.start_mark.line + 1
    return out


def _construct_seq(loader: _MarkingLoader, node: yaml.SequenceNode) -> _Seq:
    out = _Seq(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [child.start_mark.line + 1 for child in node.value]
    return out


_MarkingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_MarkingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


# --- validation ----------------------------------------------------------------------


class _Checker:
    """Reads values out of the marked YAML, raising a RubricError that points at them."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, line: int | None, where: str, zh: str, en: str) -> RubricError:
        at_zh = f"第 {line} 行，" if line else ""
        at_en = f"line {line}, " if line else ""
        return RubricError(
            f"{self.path}：{at_zh}字段 {where}：{zh} / {self.path}: {at_en}field '{where}': {en}",
            path=self.path,
            line=line or "",
            field=where,
        )

    def keys(self, node: _Map, allowed: set[str], where: str) -> None:
        for key in node:
            if key not in allowed:
                # A misspelt optional key (say "wieght") would otherwise fall back to its
                # default without anyone noticing.
                name = f"{where}.{key}" if where else str(key)
                raise self.fail(
                    node.lines.get(key, node.line),
                    name,
                    f"未知字段（允许的字段：{'、'.join(sorted(allowed))}）",
                    f"unknown field (allowed: {', '.join(sorted(allowed))})",
                )

    def required(self, node: _Map, key: str, where: str) -> Any:
        name = f"{where}.{key}" if where else key
        if key not in node or node[key] is None:
            line = node.lines.get(key, node.line)
            raise self.fail(line, name, "缺少必填字段", "required field is missing")
        return node[key]

    def text(self, node: _Map, key: str, where: str, *, required: bool = True) -> str:
        name = f"{where}.{key}" if where else key
        if not required and node.get(key) is None:
            return ""
        value = self.required(node, key, where)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(
                node.lines.get(key),
                name,
                f"应为非空文本（当前为 {value!r}；数字请加引号）",
                f"expected non-empty text, got {value!r} (quote numbers)",
            )
        return value.strip()

    def number(self, node: _Map, key: str, where: str, *, default: float | None = None) -> float:
        name = f"{where}.{key}" if where else key
        if default is not None and node.get(key) is None:
            return default
        value = self.required(node, key, where)
        # bool is an int in Python; "deduction: yes" is a mistake, not 1 point.
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise self.fail(
                node.lines.get(key),
                name,
                f"应为数字（当前为 {value!r}）",
                f"expected a number, got {value!r}",
            )
        if value < 0:
            raise self.fail(
                node.lines.get(key),
                name,
                f"不能为负数（当前为 {value}）",
                f"must not be negative, got {value}",
            )
        return float(value)

    def mapping(self, value: Any, line: int, where: str) -> _Map:
        if not isinstance(value, _Map):
            raise self.fail(
                line, where, "应为映射（key: value）", "expected a mapping (key: value)"
            )
        return value

    def sequence(self, node: _Map, key: str, where: str) -> _Seq:
        name = f"{where}.{key}" if where else key
        value = self.required(node, key, where)
        if not isinstance(value, _Seq) or not value:
            raise self.fail(node.lines.get(key), name, "应为非空列表", "expected a non-empty list")
        return value


def load_rubric(path: Path) -> Rubric:
    """Read and validate a rubric file; raise :class:`RubricError` naming file, line, field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise RubricError(
            f"{path}：评分表文件不存在 / {path}: rubric file not found", path=path
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RubricError(
            f"{path}：无法读取评分表（需 UTF-8 文本）/ {path}: cannot read the rubric "
            f"(UTF-8 text expected): {exc}",
            path=path,
        ) from exc
    return parse_rubric(text, source=path)


def parse_rubric(text: str, *, source: Path | str = "<rubric>") -> Rubric:
    """Validate rubric YAML ``text``; ``source`` is what error messages call the file."""
    check = _Checker(Path(source))
    try:
        data = yaml.load(text, Loader=_MarkingLoader)  # a SafeLoader subclass: no tags run code
    except _DuplicateKey as exc:
        raise check.fail(exc.line, str(exc.key), "重复的字段", "duplicate key") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        where_zh = f"第 {line} 行第 {column} 列，" if line else ""
        where_en = f"line {line}, column {column}: " if line else ""
        raise RubricError(
            f"{source}：{where_zh}YAML 语法错误：{problem} / {source}: {where_en}invalid YAML: "
            f"{problem}",
            path=source,
            line=line or "",
        ) from exc
    top = check.mapping(data, 1, "(文件 / file)")
    check.keys(top, _TOP_KEYS, "")
    version = check.text(top, "version", "")
    pass_mark = check.number(top, "pass_mark", "")
    if pass_mark > FULL_MARKS:
        raise check.fail(
            top.lines.get("pass_mark"),
            "pass_mark",
            f"应在 0–100 之间（当前为 {pass_mark:g}）",
            f"must be between 0 and 100, got {pass_mark:g}",
        )
    sections = _sections(check, top)
    return Rubric(
        version=version,
        pass_mark=pass_mark,
        sections=sections,
        title_zh=check.text(top, "title_zh", "", required=False),
        title_en=check.text(top, "title_en", "", required=False),
        source=str(source),
    )


def _sections(check: _Checker, top: _Map) -> tuple[RubricSection, ...]:
    raw_sections = check.sequence(top, "sections", "")
    sections: list[RubricSection] = []
    section_ids: set[str] = set()
    item_ids: dict[str, str] = {}
    rule_owner: dict[str, str] = {}
    for s_index, raw in enumerate(raw_sections):
        where = f"sections[{s_index}]"
        node = check.mapping(raw, raw_sections.lines[s_index], where)
        check.keys(node, _SECTION_KEYS, where)
        section_id = check.text(node, "id", where)
        if section_id in section_ids:
            raise check.fail(
                node.lines["id"],
                f"{where}.id",
                f"分区 id {section_id} 重复",
                f"duplicate section id {section_id}",
            )
        section_ids.add(section_id)
        raw_items = check.sequence(node, "items", where)
        items = []
        for i_index, raw_item in enumerate(raw_items):
            item_where = f"{where}.items[{i_index}]"
            item_node = check.mapping(raw_item, raw_items.lines[i_index], item_where)
            item = _item(check, item_node, item_where, section_id)
            if item.id in item_ids:
                raise check.fail(
                    item_node.lines["id"],
                    f"{item_where}.id",
                    f"项目 id {item.id} 重复（已在 {item_ids[item.id]} 使用）",
                    f"duplicate item id {item.id} (already used at {item_ids[item.id]})",
                )
            item_ids[item.id] = item_where
            for r_index, rule in enumerate(item.rules):
                if rule in rule_owner:
                    # One finding must cost points once: two items on one rule would
                    # double-count it and make the breakdown ambiguous.
                    raise check.fail(
                        item_node["rules"].lines[r_index],
                        f"{item_where}.rules",
                        f"规则 {rule} 已归入项目 {rule_owner[rule]}，一条规则只能属于一个项目",
                        f"rule {rule} is already mapped to item {rule_owner[rule]}; "
                        "a rule belongs to one item only",
                    )
                rule_owner[rule] = item.id
            items.append(item)
        sections.append(
            RubricSection(
                id=section_id,
                name_zh=check.text(node, "name_zh", where),
                name_en=check.text(node, "name_en", where, required=False),
                items=tuple(items),
            )
        )
    return tuple(sections)


def _item(check: _Checker, node: _Map, where: str, section_id: str) -> RubricItem:
    check.keys(node, _ITEM_KEYS, where)
    item_id = check.text(node, "id", where)
    rules_node = check.sequence(node, "rules", where)
    rules: list[str] = []
    for r_index, rule in enumerate(rules_node):
        line = rules_node.lines[r_index]
        if not isinstance(rule, str) or rule not in RULES:
            raise check.fail(
                line,
                f"{where}.rules",
                f"未知的规则编号 {rule!r}（见 shared/spec/rules.md）",
                f"unknown rule id {rule!r} (see shared/spec/rules.md)",
            )
        if rule in rules:
            raise check.fail(
                line, f"{where}.rules", f"规则 {rule} 重复", f"rule {rule} is listed twice"
            )
        rules.append(rule)
    deduction = check.number(node, "deduction", where)
    cap = check.number(node, "cap", where)
    if cap < deduction:
        raise check.fail(
            node.lines.get("cap"),
            f"{where}.cap",
            f"扣分上限 {cap:g} 小于单次扣分 {deduction:g}",
            f"cap {cap:g} is below the deduction per occurrence {deduction:g}",
        )
    fatal = node.get("fatal", False)
    if not isinstance(fatal, bool):
        raise check.fail(
            node.lines.get("fatal"),
            f"{where}.fatal",
            f"应为 true 或 false（当前为 {fatal!r}）",
            f"expected true or false, got {fatal!r}",
        )
    return RubricItem(
        id=item_id,
        section_id=section_id,
        name_zh=check.text(node, "name_zh", where),
        name_en=check.text(node, "name_en", where, required=False),
        rules=tuple(rules),
        deduction=deduction,
        cap=cap,
        weight=check.number(node, "weight", where, default=1.0),
        fatal=fatal,
    )
