"""The encoder-head trainer's data guards and seed ensemble (models/train_encoder_head.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from trainer_support import load_trainer

ROOT = Path(__file__).resolve().parents[2]


def test_near_index_finds_paraphrases_by_shared_bigrams_only() -> None:
    near = load_trainer().NearIndex(["你再不还钱，我们就去你单位找你领导。", "好的，我下周一还。"])
    assert near.near("你再不还钱，我们就去你单位找领导。")  # one character dropped
    assert near.near("好的我下周一还")  # punctuation does not count
    assert not near.near("您好，我是受银行委托的催收专员。")
    assert not near.near("你再不还钱")  # a shared opening is not a copy
    assert not near.near("")


def test_ensemble_is_one_mlp_whose_logits_are_the_members_mean() -> None:
    trainer = load_trainer()
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 7)).astype(np.float32)
    y = (rng.uniform(size=(64, 3)) > 0.5).astype(np.float32)
    mask = np.ones_like(y)
    hp = dict(hidden=8, epochs=2, lr=1e-2, weight_decay=0.0, dropout=0.0)
    merged = trainer.train_ensemble(x, y, mask, members=3, seed=11, **hp)
    parts = [trainer.train_mlp(x, y, mask, seed=11 + 1000 * m, **hp) for m in range(3)]
    assert merged["w1"].shape == (7, 24) and merged["w2"].shape == (24, 3)
    mean = np.mean([trainer.mlp_logits(x, p) for p in parts], axis=0)
    np.testing.assert_allclose(trainer.mlp_logits(x, merged), mean, rtol=1e-5, atol=1e-5)
    # Members differ: an ensemble of one seed repeated would be no ensemble.
    assert not np.allclose(trainer.mlp_logits(x, parts[0]), trainer.mlp_logits(x, parts[1]))


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "models" / "data"
    _write(data / "utterances.jsonl", [{"speaker": "agent", "text": "模板句子一", "labels": []}])
    _write(data / "heldout.jsonl", [])
    _write(
        data / "written" / "w.jsonl",
        [
            {"speaker": "agent", "text": "三天之内不还，我们的人就上门找你。", "labels": ["P01"]},
            {"speaker": "agent", "text": "请您通过银行官方渠道还款。", "labels": []},
        ],
    )
    blind = tmp_path / "tests" / "data" / "blind"
    _write(
        blind / "set_x.jsonl",
        [{"id": "X-1", "speaker": "customer", "text": "我要投诉你们", "labels": ["C01"]}],
    )
    _write(
        blind / "set_y.jsonl",
        [
            {
                "id": "Y-1",
                "speaker": "agent",
                "text": "三天之内不还，我们的人就上门找你！",
                "labels": ["P01"],
            }
        ],
    )
    (data / "retired_sets.txt").write_text("# seen sets\ntests/data/blind/set_x.jsonl\n", "utf-8")
    (data / "unseen_sets.txt").write_text("tests/data/blind/set_y.jsonl  # final\n", "utf-8")
    return data


def test_retired_sets_train_and_unseen_sets_keep_their_near_copies_out(data_dir: Path) -> None:
    rows = load_trainer().load_rows(data_dir)
    texts = {r["text"]: r for r in rows}
    assert texts["我要投诉你们"]["source"] == "written"  # a retired blind line trains
    assert texts["我要投诉你们"]["labels"] == ["C01"]
    assert "请您通过银行官方渠道还款。" in texts
    # The written line is a near copy of a line of the unseen set: dropped.
    assert "三天之内不还，我们的人就上门找你。" not in texts
    assert texts["模板句子一"]["source"] == "template"  # templates are not screened


def test_a_listed_set_that_is_missing_is_an_error(data_dir: Path) -> None:
    with (data_dir / "retired_sets.txt").open("a", encoding="utf-8") as f:
        f.write("tests/data/blind/missing.jsonl\n")
    with pytest.raises(SystemExit, match="missing.jsonl"):
        load_trainer().load_rows(data_dir)


def test_the_repository_keeps_its_final_blind_set_out_of_training() -> None:
    trainer = load_trainer()
    unseen = trainer.listed_sets(ROOT / "models" / "data", "unseen")
    retired = trainer.listed_sets(ROOT / "models" / "data", "retired")
    assert unseen and not set(unseen) & set(retired)
    assert ROOT / "tests" / "data" / "blind" / "set_o.jsonl" in unseen
