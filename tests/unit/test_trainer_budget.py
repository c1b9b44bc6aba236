"""The encoder-head trainer's shared false-alarm budget (models/train_encoder_head.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from trainer_support import load_trainer

ROOT = Path(__file__).resolve().parents[2]


def _family(rng: np.random.Generator, n_harmless: int = 200, n_pos: int = 40):
    """Rows (prob, y, group, harmless, line) for rules P01 and P02 over shared lines."""
    trainer = load_trainer()
    j1, j2 = trainer.LABELS.index("P01"), trainer.LABELS.index("P02")
    prob, fy, fg, harmless, line = [], [], [], [], []
    for i in range(n_harmless):  # every harmless line is scored for both rules
        for j, p in ((j1, rng.uniform(0, 0.9)), (j2, rng.uniform(0, 0.9))):
            prob.append(p), fy.append(0.0), fg.append(j), harmless.append(True), line.append(i)
    for k in range(n_pos):
        i = n_harmless + k
        j = j1 if k % 2 else j2
        prob.append(rng.uniform(0.85, 1.0)), fy.append(1.0), fg.append(j)
        harmless.append(False), line.append(i)
    return trainer, tuple(np.array(a) for a in (prob, fy, fg, harmless, line))


def test_shared_budget_caps_the_union_of_false_alarms() -> None:
    trainer, (prob, fy, fg, harmless, line) = _family(np.random.default_rng(3))
    # Each rule alone flags ~4 % of harmless lines at 0.86; together ~8 %.
    threshold = {"P01": 0.86, "P02": 0.86}
    report: dict[str, dict] = {"P01": {}, "P02": {}}
    trainer.shared_budget(
        threshold, prob, fy, fg, harmless, line, budget=0.02, rules=["P01", "P02"], report=report
    )
    n = 200
    flagged = np.zeros(n, dtype=bool)
    for rule in ("P01", "P02"):
        j = trainer.LABELS.index(rule)
        sel = (fg == j) & harmless
        flagged[line[sel]] |= prob[sel] >= threshold[rule]
    assert flagged.sum() <= int(0.02 * n)
    assert report["P_family"]["harmless_flagged"] <= 0.02
    # Thresholds only ever go up, and positives above them still count as recall.
    assert all(t >= 0.86 for t in threshold.values())
    assert 0.0 < report["P01"]["oof_recall_shared_budget"] <= 1.0


def test_shared_budget_leaves_thresholds_alone_when_within_budget() -> None:
    trainer, (prob, fy, fg, harmless, line) = _family(np.random.default_rng(5))
    threshold = {"P01": 0.95, "P02": 0.95}
    report: dict[str, dict] = {"P01": {}, "P02": {}}
    trainer.shared_budget(
        threshold, prob, fy, fg, harmless, line, budget=0.05, rules=["P01", "P02"], report=report
    )
    assert threshold == {"P01": 0.95, "P02": 0.95}
