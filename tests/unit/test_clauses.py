"""Clause scanning: a violation inside a long turn is scored, and located, on its own."""

from __future__ import annotations

from qa_service.text.clauses import scan_segments, split_clauses


def test_clauses_follow_punctuation_and_keep_offsets() -> None:
    text = "您的欠款五千元已经逾期，再不还我们就去你单位找你领导。好的那就先这样，再见。"
    clauses = split_clauses(text)
    assert [c.text for c in clauses] == [
        "您的欠款五千元已经逾期",
        "再不还我们就去你单位找你领导",
        "好的那就先这样，再见",  # "再见" is too short alone and joins the clause before
    ]
    for c in clauses:
        assert text[c.start : c.end] == c.text


def test_short_fragments_join_their_neighbour() -> None:
    # "好的" alone means nothing; it belongs to the clause after it.
    clauses = split_clauses("好的，你今天必须把钱还上")
    assert [c.text for c in clauses] == ["好的，你今天必须把钱还上"]
    # At the end of the text, a fragment joins the clause before it.
    assert [c.text for c in split_clauses("你今天必须把钱还上，懂吗")] == [
        "你今天必须把钱还上，懂吗"
    ]


def test_unpunctuated_long_text_is_cut_at_word_boundaries() -> None:
    text = (
        "您好您的信用卡已经逾期三个月了欠款一共是两万三千元"
        "如果您再不还款我们就派人去您家里找您的家人谈一谈"
    )
    clauses = split_clauses(text)
    assert len(clauses) >= 3
    assert "".join(c.text for c in clauses) == text
    assert all(len(c.text) <= 32 for c in clauses)


def test_segments_are_the_whole_neighbour_pairs_and_long_clauses() -> None:
    text = "你这个月要是再拖，后果你自己负责，我们就等着看吧，好的先这样。"
    segs = [s.text for s in scan_segments(text)]
    assert "你这个月要是再拖，后果你自己负责" in segs  # a condition and its consequence
    assert text in segs
    # A short clause is never judged without a neighbour: it has lost its context.
    assert "你这个月要是再拖" not in segs and "我们就等着看吧" not in segs
    # A short turn is too short to dilute anything: it is scored whole only.
    assert [s.text for s in scan_segments("你要是再拖，后果自负。")] == ["你要是再拖，后果自负。"]
    long_clause = "我们会安排同事在你家小区门口一直等你回来"
    segs = [s.text for s in scan_segments(f"欠款八千元，{long_clause}，好的今天先这样吧。")]
    assert long_clause in segs
    assert scan_segments("") == []
    assert [s.text for s in scan_segments("喂")] == ["喂"]
